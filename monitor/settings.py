"""monitor.yaml as pydantic models: every key has a default and a description.

`load_settings(path)` reads the file through `yamlconf`, so every problem (unknown key, bad
duration, missing ${VAR}) is reported as `FILE:LINE:COL: message`. Only `cli` and `scheduler`
read settings; the stages receive plain values.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor import __version__, yamlconf
from monitor.alert.signing import decode_secret
from monitor.errors import ConfigError
from monitor.severity import Severity
from monitor.units import Duration, Size, format_duration
from monitor.web import is_web_url

DEFAULT_CONFIG = "config/monitor.yaml"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PollSettings(Strict):
    interval: Duration = Field(
        dt.timedelta(minutes=10), description="Default poll interval per feed."
    )
    jitter: Duration = Field(
        dt.timedelta(seconds=30),
        description="Random delay added to each due time, so feeds do not poll in lockstep; "
        "never more than a tenth of the feed's interval.",
    )
    concurrency: int = Field(
        50, ge=1, le=1000, description="Fetches in flight, all hosts together."
    )
    per_host: int = Field(2, ge=1, le=50, description="Fetches in flight to one host.")
    timeout: Duration = Field(
        dt.timedelta(seconds=30), description="Deadline for a whole request, slow servers included."
    )
    max_bytes: Size = Field(15_000_000, ge=1024, description="Body cap after decompression.")
    max_redirects: int = Field(5, ge=0, le=5, description="Redirects followed per fetch.")
    allow_private_networks: bool = Field(
        False,
        description="Allow private, loopback and link-local addresses (tests, intranet feeds).",
    )
    user_agent: str = Field(
        f"monitor/{__version__} (news monitoring; +https://github.com/monitor)",
        description="User-Agent sent with every fetch: it names monitor and its version.",
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Worker processes that parse feeds and extract pages (unset: one per core, "
        "at least 2). Each has the CPU deadline and memory limit below.",
    )
    parse_timeout: Duration = Field(
        dt.timedelta(seconds=10),
        description="CPU time one parse (or page extraction) may take; past it the worker is "
        "killed and replaced, and the feed recorded as failed.",
    )
    parse_memory: Size = Field(
        384_000_000,
        ge=64_000_000,
        description="Address space of a worker process; a parse that needs more fails, and its "
        "worker is replaced.",
    )
    adaptive: bool = Field(
        True,
        description="Each feed's interval follows its posting cadence (half its usual gap "
        "between new items), within min_interval and max_interval; a feed's own `interval:` "
        "pins it. Until a feed's cadence is known it is polled every `interval`.",
    )
    min_interval: Duration = Field(
        dt.timedelta(minutes=2), description="Shortest adaptive interval."
    )
    max_interval: Duration = Field(dt.timedelta(hours=2), description="Longest adaptive interval.")
    failing_after: int = Field(
        3, ge=1, le=1000, description="Consecutive errors before a feed counts as failing."
    )
    stale_after: int = Field(
        5,
        ge=1,
        le=1000,
        description="A feed with no new item for this many times its usual gap between new "
        "items (at least a day) is stale.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> PollSettings:
        if self.min_interval > self.max_interval:
            raise ValueError("poll.min_interval is longer than poll.max_interval")
        return self


class FeedSettings(Strict):
    id: str = Field(
        description="Stable feed id, used in rules (`feeds:`), alerts and the database."
    )
    url: str = Field(description="http(s) URL, or a local file path (demo, tests).")
    interval: Duration | None = Field(
        None, description="Poll interval for this feed; default poll.interval."
    )
    tags: tuple[str, ...] = Field((), description="Tags that rules can name in `feeds:`.")
    backfill: bool = Field(
        False, description="Alert on the items already in the feed at its first poll."
    )
    full_text: bool | Literal["auto"] = Field(
        False,
        description="`true`: fetch each new item's linked page and match its article text "
        "(without site chrome) as the item's content; `auto`: only when the feed's items are "
        'teasers (most of them under 50 words of text: docs/design.md, "Full text"). A page '
        "that fails leaves the item as the feed gave it, with the reason on the item.",
    )
    pages_dir: str | None = Field(
        None,
        description="Read linked pages from this local directory instead of the network, "
        "each as the file named like the last part of its URL's path (the demo, offline "
        "mirrors). Only the configuration can name one.",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("feed id: letters, digits and _ . : - only, at most 200 characters")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        scheme = urlsplit(v).scheme.lower()
        if scheme in ("http", "https") or scheme == "" or len(scheme) == 1:  # C: on Windows
            return v
        if scheme == "file":
            return v
        raise ValueError(f"unsupported URL scheme {scheme!r}: use http, https or a local path")


class ChannelBase(Strict):
    """What every channel has: routing by severity, and batching into digests."""

    min_severity: Severity = Field(
        "info", description="Alerts below this severity are not sent here."
    )
    digest: Duration | None = Field(
        None,
        description="Hold alerts and send one digest per window (e.g. 1h) instead of one each.",
    )
    burst: int | None = Field(
        10,
        ge=1,
        description="More than this many alerts due at once go out as one digest, so a burst "
        "of matches never becomes a flood of messages.",
    )
    rate_limit: int | None = Field(
        None,
        ge=1,
        description="At most this many messages per hour (a digest counts as one); alerts over "
        "the limit wait and then go out together as one digest.",
    )


class WebhookChannel(ChannelBase):
    type: Literal["webhook"] = Field(description="`webhook`: a signed JSON POST per alert.")
    url: str = Field(description="Where alerts are POSTed.")
    secret: str | None = Field(
        None, description="Standard Webhooks secret (whsec_...); unsigned when absent."
    )
    timeout: Duration = Field(
        dt.timedelta(seconds=15), description="Deadline per delivery attempt."
    )
    burst: int | None = Field(
        None,
        ge=1,
        description="Unset: one POST per alert, however many are due (a SIEM expects one "
        "event each); set: more than this many due at once go out as one digest POST.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not is_web_url(v):
            raise ValueError("webhook url must be an absolute http or https URL")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        # Checked here, where check and run both read it: an empty ${VAR} or a secret that is
        # not base64 would otherwise pass `check` and stop `run` (the message never shows it).
        if v is None:
            return v
        if not v.strip():
            raise ValueError("the webhook secret is empty (is its ${VAR} set?)")
        decode_secret(v)
        return v


class SMTPSettings(Strict):
    host: str = Field(description="SMTP server host.")
    port: int = Field(587, ge=1, le=65535, description="587 for STARTTLS, 465 for implicit TLS.")
    starttls: bool = Field(True, description="Upgrade with STARTTLS (required before a login).")
    tls: bool = Field(False, description="Implicit TLS from the first byte (port 465).")
    username: str | None = Field(None, description="Login; never sent without TLS.")
    password: str | None = Field(None, description="Password; use ${SMTP_PASSWORD}.")
    validate_certs: bool = Field(True, description="Verify the server certificate.")
    ca_file: str | None = Field(
        None,
        description="PEM file of the CA(s) to trust for this server (a private CA), instead of "
        "the system's.",
    )
    timeout: Duration = Field(
        dt.timedelta(seconds=30), description="Deadline per delivery attempt."
    )

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ssl.create_default_context(cafile=v)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot use {v} as a CA file: {exc}") from None
        return v

    @model_validator(mode="after")
    def _login_needs_tls(self) -> SMTPSettings:
        if self.username and not (self.starttls or self.tls):
            raise ValueError("a login is never sent without TLS: set starttls: true or tls: true")
        return self


class EmailChannel(ChannelBase):
    type: Literal["email"] = Field(description="`email`: one email per alert over SMTP.")
    to: tuple[str, ...] = Field(min_length=1, description="Recipients.")
    from_: str = Field(alias="from", description="Sender address.")
    smtp: SMTPSettings = Field(description="The SMTP server.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AppriseChannel(ChannelBase):
    type: Literal["apprise"] = Field(
        description="`apprise`: Slack, Discord, Telegram, ntfy, Matrix, Teams… via Apprise URLs."
    )
    urls: tuple[str, ...] = Field(
        min_length=1,
        description="Apprise notification URLs, e.g. ${SLACK_URL}; keep tokens in env.",
    )
    timeout: Duration = Field(
        dt.timedelta(seconds=30), description="Deadline per delivery attempt."
    )


class LogChannel(ChannelBase):
    type: Literal["log"] = Field(description="`log`: alerts as log lines.")


class ServerSettings(Strict):
    listen: str = Field(
        "0.0.0.0:8080",
        description="HOST:PORT for /healthz, /metrics and /alerts.atom ([::1]:8080 for IPv6; "
        "port 0: any free port, logged at start).",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        split_listen(v)
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)


def split_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` -> (host, port); ValueError names what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("listen must be HOST:PORT, e.g. 0.0.0.0:8080 or 127.0.0.1:0")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("write an IPv6 listen address in brackets: [::]:8080")
    return host, int(port)


AnyChannel = WebhookChannel | EmailChannel | AppriseChannel | LogChannel
Channel = Annotated[AnyChannel, Field(discriminator="type")]


class StorySettings(Strict):
    window: Duration = Field(
        dt.timedelta(days=3),
        description="Copies and light rewrites of one report seen within this window are one "
        "story: one alert per rule, naming every source. 0s: exact copies only.",
    )


class Settings(Strict):
    database: str = Field(
        "sqlite:///data/monitor.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db.",
    )
    watchlist: tuple[str, ...] = Field(
        ("config/watchlist.yaml",), description="Watchlist file, or a list of files."
    )
    poll: PollSettings = Field(
        default_factory=PollSettings, description="How feeds are fetched (all feeds)."
    )
    feeds: tuple[FeedSettings, ...] = Field((), description="The feeds to poll.")
    channels: dict[str, Channel] = Field(
        default_factory=dict, description="Named alert channels; a log channel when none."
    )
    retention: Duration = Field(
        dt.timedelta(days=180), description="Items older than this are purged."
    )
    server: ServerSettings = Field(default_factory=ServerSettings, description="The HTTP endpoint.")
    stories: StorySettings = Field(
        default_factory=StorySettings, description="One alert per story (docs/design.md)."
    )
    health_alerts: tuple[str, ...] = Field(
        (),
        description="Channels told when a feed starts failing, goes stale, or recovers (one "
        "signed `feed_health` message per change of state).",
    )

    @field_validator("watchlist", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @property
    def effective_channels(self) -> Mapping[str, AnyChannel]:
        """The configured channels, or one log channel `console` when none is configured."""
        return self.channels or {"console": LogChannel(type="log")}

    def feed_interval(self, feed: FeedSettings) -> dt.timedelta:
        return feed.interval or self.poll.interval

    def secrets(self) -> set[str]:
        """Values that must never appear in a log line (logs.redact): SMTP passwords, webhook
        secrets, whole webhook URLs (chat webhooks carry tokens in the path) and, in every URL,
        the password and query values named like credentials."""
        found: set[str] = set()
        urls = [self.database, *(f.url for f in self.feeds)]
        for ch in self.channels.values():
            if isinstance(ch, WebhookChannel):
                urls.append(ch.url)
                if urlsplit(ch.url).path.strip("/") or urlsplit(ch.url).query:
                    found.add(ch.url)
                if ch.secret:
                    found.add(ch.secret)
            elif isinstance(ch, EmailChannel) and ch.smtp.password:
                found.add(ch.smtp.password)
            elif isinstance(ch, AppriseChannel):
                found.update(ch.urls)  # the whole URL: most services keep a token in it
        for url in urls:
            found |= url_secrets(url)
        return found


_CREDENTIAL_KEY = re.compile(r"pass|secret|token|key|auth|sig|session|credential", re.I)


def url_secrets(url: str) -> set[str]:
    """The password of a URL and its query values whose names look like credentials."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return set()
    found = {password, unquote(password)} if password else set()
    for name, value in parse_qsl(parts.query):
        if value and _CREDENTIAL_KEY.search(name):
            found.add(value)
    return found


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate monitor.yaml; raises ConfigError with FILE:LINE:COL lines."""
    return read_settings(path, env)[0]


def read_settings(
    path: str | Path, env: Mapping[str, str] | None = None, *, read_only: bool = False
) -> tuple[Settings, list[str]]:
    """monitor.yaml and its warnings. `read_only` (feeds, alerts, test-rule: commands that
    send nothing): a channel whose ${VAR} is unset is not an error but a warning, and the
    channel is kept as a log channel of the same name, so rules naming it still load."""

    def in_channels(loc: tuple[int | str, ...]) -> bool:
        return read_only and len(loc) >= 2 and loc[0] == "channels"

    data, located = yamlconf.load(path, env, tolerate=in_channels)
    warnings: list[str] = []
    for name in dict.fromkeys(str(loc[1]) for loc, _var in located.missing):
        names = ", ".join(sorted({v for loc, v in located.missing if str(loc[1]) == name}))
        warnings.append(
            located.problem(
                ("channels", name),
                f"channels.{name}: {names} not set; this command sends nothing, so it goes on "
                "(run and once would refuse it)",
                key=True,
            )
        )
        data["channels"][name] = {"type": "log"}
    settings = yamlconf.validate(Settings, data, located)
    problems: list[str] = []
    seen: set[str] = set()
    for i, feed in enumerate(settings.feeds):
        if feed.id in seen:
            problems.append(
                located.problem(("feeds", i, "id"), f"feed id {feed.id!r} appears twice")
            )
        seen.add(feed.id)
    for i, name in enumerate(settings.health_alerts):
        if name not in settings.effective_channels:
            known = ", ".join(sorted(settings.effective_channels))
            problems.append(
                located.problem(
                    ("health_alerts", i),
                    f"health_alerts: no channel named {name!r} (channels: {known})",
                )
            )
    if problems:
        raise ConfigError.of(problems)
    return settings, warnings


def reference_rows() -> list[tuple[str, str, str]]:
    """(key, default, description) for every key of monitor.yaml, for docs/configuration.md.
    A test compares the document with these rows, so a new key cannot go undocumented."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            key = prefix + (info.alias or name)
            nested = _nested_model(info.annotation)
            if nested is not None and nested is not model:
                default = ""
                rows.append((key, default, info.description or ""))
                walk(nested, key + ".")
                continue
            default = (
                "(required)"
                if info.is_required()
                else _show(info.get_default(call_default_factory=True))
            )
            rows.append((key, default, info.description or ""))

    walk(Settings, "")
    rows.append(("feeds[]", "", "Each feed:"))
    walk(FeedSettings, "feeds[].")
    kinds = (
        (WebhookChannel, "webhook"),
        (EmailChannel, "email"),
        (AppriseChannel, "apprise"),
        (LogChannel, "log"),
    )
    for kind, label in kinds:
        walk(kind, f"channels.NAME ({label}).")
    return rows


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _show(value: Any) -> str:
    if isinstance(value, dt.timedelta):
        return format_duration(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def reference_markdown() -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{k}` | {d and f'`{d}`'} | {m} |" for k, d, m in reference_rows()]
    return "\n".join(lines) + "\n"
