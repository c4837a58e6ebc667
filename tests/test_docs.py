"""The documents keep up with the code: every monitor.yaml key is in docs/configuration.md,
every command and option in the README's command table."""

from __future__ import annotations

import click

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


# --- the command table ----------------------------------------------------------------------


def _readme_commands() -> list[str]:
    """The rows of the README's command table (## Commands), as text."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `monitor ")]


def _commands() -> dict[str, click.Command]:
    """Every command a user can run, by its path (`opml import`), groups that do something
    on their own (`alerts`) included."""
    from monitor.cli import cli

    found: dict[str, click.Command] = {}

    def walk(group: click.Group, prefix: str) -> None:
        for name, cmd in group.commands.items():
            path = f"{prefix}{name}"
            if not isinstance(cmd, click.Group) or cmd.invoke_without_command:
                found[path] = cmd
            if isinstance(cmd, click.Group):
                walk(cmd, path + " ")

    walk(cli, "")
    return found


def test_every_command_and_option_is_in_the_readme_table() -> None:
    rows = _readme_commands()
    for path, cmd in _commands().items():
        mine = [r for r in rows if f"monitor {path}" in r]
        assert mine, f"`monitor {path}` is not in the README's command table"
        for param in cmd.params:
            if isinstance(param, click.Option) and "--config" not in param.opts:
                # (--config is on every command, documented once beside the table)
                flag = max(param.opts, key=len)
                assert any(flag in r for r in mine), f"{flag} of `monitor {path}` undocumented"


def test_every_command_in_the_readme_table_answers_help() -> None:
    from monitor.cli import run_cli

    commands = _commands()
    for row in _readme_commands():
        named = [p for p in commands if f"`monitor {p}" in row]
        assert named, f"README row names no real command: {row[:60]}"
        for path in named:
            assert run_cli([*path.split(), "--help"]) == 0


def test_global_options_are_documented() -> None:
    from monitor.cli import cli

    readme = (ROOT / "README.md").read_text()
    for param in cli.params:
        if isinstance(param, click.Option) and "--help" not in param.opts:
            flag = max(param.opts, key=len)
            assert flag in readme, f"global option {flag} is not in the README"
