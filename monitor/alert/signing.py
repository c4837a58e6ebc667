"""Standard Webhooks symmetric signatures (v1, HMAC-SHA256), written out by hand.

    signed content:  "{msg_id}.{timestamp}.{body}"      (body: the exact bytes sent)
    key:             base64-decode(secret without its "whsec_" prefix)
    header value:    "v1," + base64(HMAC-SHA256(key, signed content))

It is a few lines of the standard library on purpose: the tests verify what we send with the
independent `standardwebhooks` package, so a mistake here cannot be hidden by sharing its code.
See shared/reference/standard-webhooks.md, "Signature scheme".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret (the prefix is optional, as for the
    reference library; missing base64 padding is tolerated).

    Raises ValueError, whose message never contains the secret.
    """
    text = secret.strip()
    if text.startswith(SECRET_PREFIX):
        text = text[len(SECRET_PREFIX) :]
    text += "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value, `v1,<base64>`.

    msg_id and timestamp are part of the signed content, so neither may contain the `.`
    delimiter (the spec says so: otherwise two different messages could sign alike).
    """
    if not msg_id or "." in msg_id or any(ch.isspace() for ch in msg_id):
        raise ValueError("webhook id must be non-empty, without '.' or whitespace")
    key = decode_secret(secret)
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")
