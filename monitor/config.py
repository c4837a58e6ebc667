"""The one way monitor.yaml and the watchlist are loaded: `check`, `run`, `once`, the
read-only commands and the hot reload all call these, so they can never disagree about
what is valid.

    load_config(path)        monitor.yaml, its channels, and the watchlist it names
    load_rules(settings)     the watchlist alone (hot reload), checked against the channels
                             and feeds of monitor.yaml

Every problem of both files comes out at once, as ConfigError lines `FILE:LINE:COL:
message`: a broken monitor.yaml does not hide the watchlist's problems (its `watchlist:`,
`channels:` and `feeds:` are read from the raw file then). Likely mistakes that are not
errors (a lower-case `and` read as a word) come back as warnings.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor import yamlconf
from monitor.alert.apprise import describe_apprise_url, validate_apprise_urls
from monitor.errors import ConfigError
from monitor.rules import Watchlist, load_watchlist
from monitor.settings import (
    DEFAULT_CONFIG,
    AppriseChannel,
    Settings,
    read_settings,
)


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    settings: Settings
    watchlist: Watchlist
    warnings: tuple[str, ...] = ()  # FILE:LINE:COL lines: shown, not refused


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, *, read_only: bool = False
) -> Config:
    """monitor.yaml and the watchlist, validated exactly as `run` uses them. `read_only`:
    for commands that send nothing, an unset channel ${VAR} is a warning (settings)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no configuration file there (looked for {path.absolute()}); "
            f"point to your monitor.yaml with --config PATH or MONITOR_CONFIG (default "
            f"{DEFAULT_CONFIG}, relative to the working directory)"
        )
    problems: list[str] = []
    warnings: list[str] = []
    settings: Settings | None = None
    try:
        settings, warnings = read_settings(path, env, read_only=read_only)
        check_channels(settings, path, env)
    except ConfigError as exc:
        problems.extend(exc.problems)
    refs = _References.of(settings) if settings is not None else _References.raw(path, env)
    watchlist: Watchlist | None = None
    try:
        watchlist = load_watchlist(refs.watchlist, env, channels=refs.channels, feeds=refs.feeds)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError.of(problems)
    assert settings is not None and watchlist is not None
    return Config(path, settings, watchlist, tuple(warnings) + watchlist.warnings)


def load_rules(settings: Settings, env: Mapping[str, str] | None = None) -> Watchlist:
    """The watchlist files of `settings`; every `notify:` must name a configured channel and
    every `feeds:` a configured feed id or tag (a typo there would silently match nothing)."""
    refs = _References.of(settings)
    return load_watchlist(refs.watchlist, env, channels=refs.channels, feeds=refs.feeds)


@dataclass(frozen=True, slots=True)
class _References:
    """What the watchlist refers to in monitor.yaml."""

    watchlist: tuple[str, ...]
    channels: Collection[str] | None  # None: unknown (not checked)
    feeds: Collection[str] | None  # feed ids and tags; None: unknown

    @classmethod
    def of(cls, settings: Settings) -> _References:
        names = {f.id for f in settings.feeds} | {t for f in settings.feeds for t in f.tags}
        return cls(settings.watchlist, set(settings.effective_channels), names)

    @classmethod
    def raw(cls, path: Path, env: Mapping[str, str] | None) -> _References:
        """The same, read from a monitor.yaml that did not validate (best effort: what is
        there and well-formed); None for a part we cannot read, which is then not checked."""
        try:
            data, _located = yamlconf.load(path, env, tolerate=lambda _loc: True)
        except ConfigError:
            data = None
        data = data if isinstance(data, dict) else {}
        watchlist: Any = data.get("watchlist", Settings.model_fields["watchlist"].default)
        if isinstance(watchlist, str):
            watchlist = (watchlist,)
        if not isinstance(watchlist, list | tuple) or not all(
            isinstance(w, str) for w in watchlist
        ):
            watchlist = ()
        channels = data.get("channels", {})
        feeds = data.get("feeds", [])
        names: set[str] | None = set() if isinstance(feeds, list) else None
        for f in feeds if isinstance(feeds, list) else []:
            if names is not None and isinstance(f, dict):
                names.add(str(f.get("id")))
                tags = f.get("tags")
                names.update(str(t) for t in (tags if isinstance(tags, list) else []))
        return cls(
            tuple(watchlist),
            {str(c) for c in channels} or {"console"} if isinstance(channels, dict) else None,
            names,
        )


def check_channels(
    settings: Settings, config: str | Path, env: Mapping[str, str] | None = None
) -> None:
    """Apprise URLs must be ones Apprise can use; said at load time with FILE:LINE:COL (the
    URL itself is never shown: it holds a token)."""
    problems: list[str] = []
    located = None
    for name, ch in settings.channels.items():
        if not isinstance(ch, AppriseChannel):
            continue
        bad = set(validate_apprise_urls(ch.urls))
        for i, url in enumerate(ch.urls):
            if url in bad:
                if located is None:
                    _data, located = yamlconf.load(config, env, tolerate=lambda _loc: True)
                problems.append(
                    located.problem(
                        ("channels", name, "urls", i),
                        f"channels.{name}.urls[{i}]: Apprise cannot use this URL "
                        f"({describe_apprise_url(url)}); see the Apprise wiki for its form",
                    )
                )
    if problems:
        raise ConfigError.of(problems)
