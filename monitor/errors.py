"""The error tree. Stages raise these. Where each is caught, once:

- FetchError, ParseError: by the orchestrator (pipeline), which records them on the feed's
  row as that feed's failure: data, never an exception out of the cycle;
- DeliveryError: by delivery, which turns it into a retry or a dead delivery;
- ConfigError and everything else that reaches the top: by `cli`, which picks the exit code
  (ConfigError 2, others 1); the daemon's reload keeps the old rules on a ConfigError.

    MonitorError
    ├── ConfigError          bad monitor.yaml / watchlist.yaml / arguments   (exit 2)
    │   └── QueryError       a watchlist query that cannot be parsed (.column)
    │       └── QueryPartsError  (rules.compiler) every problem of a structured query
    ├── FetchError           one feed could not be fetched (kept on the feed as data)
    │   ├── FetchTimeout     the whole-request deadline passed
    │   ├── FetchTooLarge    the body passed max_bytes after decompression
    │   ├── FetchBlocked     scheme or address refused by the safety policy
    │   └── FetchHTTPError   a non-2xx/304 status
    ├── ParseError           bytes that are not a feed at all
    ├── ExtractError         an item's page holds no article we can read (full text: kept
    │                        on the item as data, never the feed's failure)
    ├── StoreError           the database failed
    └── DeliveryError        one delivery attempt failed
                             (.permanent: do not retry; .retry_after: seconds asked by the peer)

Library exceptions (httpx, aiosmtplib, SQLAlchemy, feedparser) are converted at the stage
boundary with `raise XError(...) from exc`, so callers never see a library type.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error monitor raises on purpose."""

    exit_code = 1


class ConfigError(MonitorError):
    """Invalid configuration; `str()` is one or more `FILE:LINE:COL: message` lines."""

    exit_code = 2

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__("\n".join(self.problems))

    @classmethod
    def of(cls, problems: list[str]) -> ConfigError:
        """One error carrying every problem found (the first is its message)."""
        return cls(problems[0], problems=problems)


class QueryError(ConfigError):
    """A query that does not parse. `column` is 1-based within the query text."""

    def __init__(self, message: str, *, query: str = "", column: int = 0) -> None:
        self.query = query
        self.column = column
        super().__init__(message)


class FetchError(MonitorError):
    """A feed fetch failed. `status` is the HTTP status when there was one."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class FetchTimeout(FetchError):
    pass


class FetchTooLarge(FetchError):
    pass


class FetchBlocked(FetchError):
    pass


class FetchHTTPError(FetchError):
    pass


class ParseError(MonitorError):
    pass


class ExtractError(MonitorError):
    """An item's linked page is not HTML, or no article text was found in it."""


class StoreError(MonitorError):
    pass


class DeliveryError(MonitorError):
    """One delivery attempt failed.

    permanent: retrying cannot help (a 4xx other than 408/429, an SMTP 5xx, bad config).
    retry_after: seconds the peer asked us to wait (Retry-After), if it said.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        self.permanent = permanent
        self.retry_after = retry_after
        super().__init__(message)
