"""The documents keep up with the code: every monitor.yaml key is in docs/configuration.md."""

from __future__ import annotations

from monitor.settings import reference_markdown
from tests.conftest import ROOT


def test_configuration_reference_is_current() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    start = doc.index("<!-- generated: settings -->\n") + len("<!-- generated: settings -->\n")
    end = doc.index("<!-- /generated -->")
    assert doc[start:end] == reference_markdown(), (
        "docs/configuration.md is stale: regenerate it from monitor.settings.reference_markdown()"
    )


def test_every_key_has_a_description() -> None:
    from monitor.settings import reference_rows

    missing = [key for key, _default, meaning in reference_rows() if not meaning]
    assert missing == []
