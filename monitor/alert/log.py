"""The log channel: each alert as one structlog event `alert` on the `monitor.alert` logger,
each digest as one event `alert_digest`, each feed health change as one event `feed_health`.

The default channel when none is configured, and what `make run` shows for the seed demo, so
the line carries the rule and the title. Feed text is put on one line (no forged log lines).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import structlog

from monitor.alert import digest, feedhealth, render
from monitor.models import AlertMessage, HealthMessage


class LogNotifier:
    """Writes alerts to the log; cannot fail, so never raises DeliveryError."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._log = structlog.get_logger("monitor.alert")

    async def send(self, msg: AlertMessage) -> None:
        self._log.info(
            "alert",
            channel=self.name,
            alert_id=msg.id,
            rule=msg.rule_id,
            rule_name=render.one_line(msg.rule_name),
            severity=msg.severity,
            title=render.one_line(msg.title, 300),
            url=render.one_line(msg.url) or None,
            source=render.one_line(msg.source) or None,
            feed=msg.feed,
            terms=[render.one_line(t) for t in msg.terms],
            snippet=render.one_line(msg.snippet, 300),
            also_reported_by=[render.one_line(s) for s in msg.also_reported_by],
        )

    async def send_digest(
        self, digest_id: str, msgs: Sequence[AlertMessage], window: dt.timedelta
    ) -> None:
        """One event `alert_digest` with the count, the severities and, for each alert, its
        id, rule, severity and title (120 characters), in the order given. An empty digest
        logs nothing."""
        if not msgs:
            return
        self._log.info(
            "alert_digest",
            channel=self.name,
            digest_id=digest_id,
            window=digest.format_window(window),
            count=len(msgs),
            severities=dict(digest.severity_counts(msgs)),
            alerts=digest.log_entries(msgs),
        )

    async def send_health(self, msg: HealthMessage) -> None:
        """One event `feed_health` (warning when a feed fails or goes stale)."""
        emit = self._log.info if msg.state == "ok" else self._log.warning
        emit("feed_health", channel=self.name, **feedhealth.log_fields(msg))

    async def aclose(self) -> None:
        return None
