"""Logging: one line per event; JSON when stdout is not a terminal (a container, a file),
readable key=value lines on a terminal. Everything goes through structlog."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

import structlog


def configure(level: str = "INFO", json: bool | None = None) -> None:
    if json is None:
        json = not sys.stdout.isatty()
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if json else _identity,
                _redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries log every request at INFO; their failures reach us as exceptions anyway.
    for noisy in (
        "httpx",
        "httpcore",
        "apscheduler",
        "mail.log",
        "watchfiles",
        "apprise",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _identity(
    _logger: object, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    return event


# --- secrets never reach a log line ---------------------------------------------------------
# Defence in depth: the code never logs a secret on purpose (URLs are logged redacted, error
# texts name only scheme, host and port), but an exception text from a library might quote
# one. So the known secret values, collected from the settings at start (`redact`), are
# replaced in every event, ours and the libraries', just before it is rendered.

REDACTED = "[REDACTED]"
MIN_SECRET = 4  # shorter values would blank out ordinary words
_secrets: tuple[str, ...] = ()


def redact(values: Iterable[str]) -> None:
    """From now on, replace these values (and their URL-encoded forms) in every log event
    (they replace the values given before)."""
    global _secrets
    forms: set[str] = set()
    for value in values:
        if len(value) >= MIN_SECRET:
            forms |= {value, quote(value, safe=""), quote_plus(value)}
    _secrets = tuple(sorted(forms, key=len, reverse=True))  # longest first: no partial leftovers


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if type(value) is tuple:  # exc_info among them: same shape, its objects untouched
        return tuple(_scrub(v) for v in value)
    return value


def _redact(
    _logger: object, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    if not _secrets:
        return event
    return {k: _scrub(v) for k, v in event.items()}
