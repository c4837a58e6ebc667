"""The watchlist engine: loading, the query language, the compiled matcher (pure, no I/O
except reading the watchlist files).

    from monitor.rules import load_watchlist, compile_query
    wl = load_watchlist(Path("config/watchlist.yaml"))   # ConfigError: FILE:LINE:COL lines
    hits = wl.match(item, feed_tags)                      # [Hit(rule_id, terms, snippet)]
    compile_query('"Kim Jong-un" NEAR/10 missile*').match_text(text)

Modules, in the order the data flows: text (folding, tokens), query (grammar.lark -> syntax
tree), regexsafe (/regex/ terms), compiler (nodes, validation, anchors), matcher (index, hits,
snippets), watchlist (YAML models, loader, Watchlist).
"""

from monitor.rules.matcher import CompiledQuery, compile_query
from monitor.rules.watchlist import SEVERITIES, Rule, Watchlist, load_watchlist

__all__ = ["SEVERITIES", "CompiledQuery", "Rule", "Watchlist", "compile_query", "load_watchlist"]
