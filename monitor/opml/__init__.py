"""OPML in and out, as feed entries for monitor.yaml.

Reading: the file is parsed by expat through defusedxml's SAX reader, which refuses entity
declarations and external references (billion laughs, quadratic blowup, `SYSTEM "file:…"`)
before anything is expanded or fetched. SAX also gives the line and column of every outline,
so each problem and each skipped outline is reported as `FILE:LINE:COL`.

Mapping: an outline with `xmlUrl` is a feed; an outline without one is a folder, and every
folder above a feed (and each part of its OPML 2.0 `category`) becomes a slugified tag. The id
is the slug of the outline's `text` (else `title`, else the URL's host), made unique against
the configuration and the rest of the file with `-2`, `-3`… Only http(s) URLs are taken; a URL
already in the configuration is skipped, and a URL twice in the file is one feed with the
tags of both places.

Writing: `append_to_config` adds the entries to the `feeds:` list through ruamel.yaml's
round trip, refuses to go on if that would change any existing line, validates the result
with the caller's checker and only then replaces the file (temporary file + os.replace).

Pure apart from reading and writing the files it is given; the caller passes plain values.

    model.py      outlines, notes, planned feeds
    reading.py    read_opml
    planning.py   plan_import, slug_id, slug_tag, url_key
    writing.py    render_feeds, append_to_config, export_opml
"""

from monitor.opml.model import Document, NewFeed, Note, Outline, Plan
from monitor.opml.planning import plan_import, slug_id, slug_tag, url_key
from monitor.opml.reading import read_opml
from monitor.opml.writing import append_to_config, export_opml, render_feeds

__all__ = [
    "Document",
    "NewFeed",
    "Note",
    "Outline",
    "Plan",
    "append_to_config",
    "export_opml",
    "plan_import",
    "read_opml",
    "render_feeds",
    "slug_id",
    "slug_tag",
    "url_key",
]
