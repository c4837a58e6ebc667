"""`opml import` and `opml export`: OPML in and out, as feed entries for monitor.yaml."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli.base import Env, err, out, pass_env
from monitor.errors import MonitorError
from monitor.settings import load_settings
from monitor.web import is_web_url


@click.group("opml")
def opml_group() -> None:
    """OPML in and out, as feed entries for monitor.yaml."""


@opml_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--tag", "tags", multiple=True, metavar="TAG", help="Add this tag to every feed (repeatable)."
)
@click.option(
    "--write", is_flag=True, help="Append the new feeds to the --config file instead of printing."
)
@pass_env
def opml_import(env: Env, file: Path, tags: tuple[str, ...], write: bool) -> None:
    """Read an OPML file; print its new feeds as monitor.yaml entries, or --write them.

    Folders become tags. Feeds already configured, outlines without xmlUrl and URLs that are
    not http(s) are skipped and listed on stderr. Only monitor.yaml is read (not the watchlist).
    """
    from monitor import opml

    if any(not t.strip() for t in tags):
        raise click.BadParameter("a tag cannot be empty", param_hint="--tag")
    config = Path(env.config)
    existing: list[tuple[str, str]] = []
    if write or config.exists():
        existing = [(f.id, f.url) for f in load_settings(config).feeds]
    else:
        err.print(f"note: no {config}: ids and URLs are not checked against it", markup=False)
    plan = opml.plan_import(opml.read_opml(file), existing, tags)
    for note in plan.notes:
        err.print(str(note), markup=False)
    skipped = sum(n.skipped for n in plan.notes)
    summary = f"{len(plan.feeds)} new feeds from {file}, {skipped} skipped"
    if not write:
        if plan.feeds:
            click.echo(opml.render_feeds(plan.feeds), nl=False)
        err.print(summary, markup=False)
        return
    if plan.feeds:
        opml.append_to_config(config, plan.feeds, check=load_settings)
    out.print(f"{config}: {summary}; {len(plan.feeds)} added", markup=False)


@opml_group.command("export")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the OPML to this file instead of stdout.",
)
@pass_env
def opml_export(env: Env, output: Path | None) -> None:
    """The configured feeds as OPML 2.0: a folder per first tag, every tag in `category`.

    Local-file feeds are left out (noted on stderr). Only monitor.yaml is read."""
    from monitor import opml
    from monitor.settings import url_secrets

    rows: list[tuple[str, str, tuple[str, ...]]] = []
    for f in load_settings(env.config).feeds:
        if not is_web_url(f.url):
            err.print(f"{f.id}: left out: a local file, not a URL a reader can fetch", markup=False)
            continue
        if url_secrets(f.url):
            err.print(f"{f.id}: note: its URL carries a credential, exported as is", markup=False)
        rows.append((f.id, f.url, f.tags))
    data = opml.export_opml(rows)
    if output is None:
        click.echo(data, nl=False)
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise MonitorError(f"cannot write {output}: {exc.strerror}") from None
    err.print(f"{output}: {len(rows)} feed{'' if len(rows) == 1 else 's'}", markup=False)
