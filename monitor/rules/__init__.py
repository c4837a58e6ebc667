"""The watchlist engine: loading, the query language, the compiled matcher (pure, no I/O
except reading the watchlist files).

    from monitor.rules import load_watchlist, compile_query
    wl = load_watchlist(Path("config/watchlist.yaml"))   # ConfigError: FILE:LINE:COL lines
    hits = wl.match(item, feed_tags)                      # [Hit(rule_id, terms, snippet)]
    compile_query('"Kim Jong-un" NEAR/10 missile*').match_text(text)

Modules, in the order the data flows and the imports run: text (folding, tokens), query
(grammar.lark -> syntax tree), regexsafe (/regex/ terms) -> nodes (node classes, the item as
they see it) -> matcher (index, hits, snippets, CompiledQuery) -> compiler (syntax tree ->
nodes, validation, anchors; `compile_query`) -> watchlist (YAML models, loader, Watchlist).
"""

from monitor.rules.compiler import QueryParts, compile_query
from monitor.rules.matcher import CompiledQuery
from monitor.rules.watchlist import Rule, Watchlist, load_watchlist

__all__ = ["CompiledQuery", "QueryParts", "Rule", "Watchlist", "compile_query", "load_watchlist"]
