"""monitor: poll feeds, normalize items, match watchlists, deliver alerts."""

__version__ = "0.1.0"
