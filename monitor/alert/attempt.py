"""One delivery attempt's exceptions, turned into DeliveryError in one place for every channel.

    with attempt(where, timeout, scrub, classify):   # around the network part
        await send()

- a DeliveryError raised inside passes through as it is;
- TimeoutError (asyncio's deadline, aiosmtplib's) -> retryable "no answer within N s";
- any other exception goes to the channel's `classify`, which maps its library's errors to a
  DeliveryError (permanent or not) or returns None;
- anything left is "unexpected", retryable: nothing but DeliveryError may escape a Notifier.

`building(where, what, scrub)` wraps the composition of the request or message: a ValueError
or TypeError there is permanent (the same alert would fail the same way on every retry).
Every message goes through `scrub`, which removes the channel's secrets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from monitor.errors import DeliveryError

Classify = Callable[[Exception], DeliveryError | None]


@contextlib.contextmanager
def building(where: str, what: str, scrub: Callable[[str], str]) -> Iterator[None]:
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise DeliveryError(
            f"{where}: cannot build the {what}: {scrub(str(exc))}", permanent=True
        ) from None


@contextlib.contextmanager
def attempt(
    where: str, timeout: float, scrub: Callable[[str], str], classify: Classify
) -> Iterator[None]:
    try:
        yield
    except DeliveryError:
        raise
    except TimeoutError:
        raise DeliveryError(f"{where}: no answer within {timeout:g}s") from None
    except Exception as exc:
        mapped = classify(exc)
        if mapped is not None:
            raise mapped from None
        raise DeliveryError(f"{where}: unexpected {type(exc).__name__}: {scrub(str(exc))}") from exc
