"""The alert stage: one module per channel behind one Notifier protocol; rendering apart.

    render.py    AlertMessage -> webhook JSON, email subject/text/HTML (pure)
    feedhealth.py  HealthMessage (a feed's change of health state) -> the same (pure)
    digest.py    many AlertMessages -> one digest: webhook JSON, subject, text, HTML (pure)
    signing.py   Standard Webhooks v1 signature (HMAC-SHA256), by hand
    webhook.py   WebhookNotifier: signed POST, status -> DeliveryError mapping
    email.py     EmailNotifier: multipart email over SMTP (STARTTLS or implicit TLS)
    log.py       LogNotifier: one structlog event per alert
    apprise.py   AppriseNotifier: Slack, Discord, Telegram, ntfy, ... through Apprise URLs
    attempt.py   one attempt's exceptions -> DeliveryError, the same way for every channel
    routes.py    ChannelRoute (severity floor, digest, burst, rate limit), routes_for

The notifiers are imported from their modules (`from monitor.alert.webhook import
WebhookNotifier`); this package's own module holds only the protocol, so no channel module
imports a module that imports it back.

A notifier knows nothing of the database or of retries: it makes one attempt and either
returns (delivered) or raises DeliveryError, with `.permanent` (do not retry) and
`.retry_after` (seconds the peer asked for). monitor.delivery owns backoff and bookkeeping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from monitor.models import AlertMessage, HealthMessage


@runtime_checkable
class Notifier(Protocol):
    """One configured alert channel."""

    name: str
    """The channel name from monitor.yaml."""

    async def send(self, msg: AlertMessage) -> None:
        """Deliver one alert, one attempt. Raises DeliveryError on failure; nothing else."""
        ...

    async def send_digest(
        self, digest_id: str, msgs: Sequence[AlertMessage], window: dt.timedelta
    ) -> None:
        """Deliver many alerts as one message (one email, one POST, one log event), one
        attempt; `digest_id` (e.g. `dgst_<hex>`: no dots or whitespace) identifies it on every
        retry, as the alert id does for `send`. An empty digest sends nothing. Raises
        DeliveryError on failure; nothing else."""
        ...

    async def send_health(self, msg: HealthMessage) -> None:
        """Deliver one feed health change (`feed_health`), one attempt; its id identifies it
        on every retry. Raises DeliveryError on failure; nothing else."""
        ...

    async def aclose(self) -> None:
        """Release connections; the notifier is not used afterwards."""
        ...
