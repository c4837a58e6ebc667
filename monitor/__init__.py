"""monitor: poll feeds, normalize items, match watchlists, deliver alerts."""

__version__ = "0.2.0.dev0"
