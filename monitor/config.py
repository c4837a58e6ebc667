"""The one way monitor.yaml and the watchlist are loaded: `check`, `run`, `once`, the
read-only commands and the hot reload all call these, so they can never disagree about
what is valid.

    load_config(path)        monitor.yaml, its channels, and the watchlist it names
    load_rules(settings)     the watchlist alone (hot reload), checked against the channels

Every problem comes out as ConfigError lines `FILE:LINE:COL: message`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor import yamlconf
from monitor.alert.apprise import describe_apprise_url, validate_apprise_urls
from monitor.errors import ConfigError
from monitor.rules import Watchlist, load_watchlist
from monitor.settings import AppriseChannel, Settings, load_settings


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    settings: Settings
    watchlist: Watchlist


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    settings = load_settings(path, env)
    check_channels(settings, path)
    return Config(Path(path), settings, load_rules(settings, env))


def load_rules(settings: Settings, env: Mapping[str, str] | None = None) -> Watchlist:
    """The watchlist files of `settings`; every `notify:` must name a configured channel (a
    typo there would otherwise silently send nothing)."""
    return load_watchlist(settings.watchlist, env, channels=set(settings.effective_channels))


def check_channels(settings: Settings, config: str | Path) -> None:
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
                    _data, located = yamlconf.load(config)
                problems.append(
                    located.problem(
                        ("channels", name, "urls", i),
                        f"channels.{name}.urls[{i}]: Apprise cannot use this URL "
                        f"({describe_apprise_url(url)}); see the Apprise wiki for its form",
                    )
                )
    if problems:
        raise ConfigError.of(problems)
