"""The shape of the code, checked (docs/design.md, "Shape"): imports run one way (no module
imports another that imports it back, directly or around a longer loop, TYPE_CHECKING imports
included), modules stay small, and the SQL stays in the store."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "monitor"
MAX_LINES = 500
MAX_PIPELINE_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """The monitor modules a module names in its imports, wherever they stand (function
    bodies and `if TYPE_CHECKING:` included). `from pkg import name` names the submodule
    pkg.name when there is one, else pkg itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m in MODULES}


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports() -> None:
    assert "monitor.rules.nodes" in GRAPH["monitor.rules.matcher"]
    assert "monitor.delivery" in GRAPH["monitor.scheduler"]


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert _cycles() == []


def test_rules_import_one_way() -> None:
    order = ["text", "query", "regexsafe", "nodes", "matcher", "compiler", "watchlist"]
    rank = {f"monitor.rules.{m}": i for i, m in enumerate(order)}
    for module, i in rank.items():
        later = [m for m in GRAPH[module] if rank.get(m, -1) > i]
        assert later == [], f"{module} imports {later}, which come after it"


def test_observers_do_not_import_an_orchestrator() -> None:
    for module in ("monitor.metrics", "monitor.server"):
        assert not GRAPH[module] & {"monitor.pipeline", "monitor.delivery", "monitor.scheduler"}


def test_modules_are_small() -> None:
    sizes = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in MODULES.items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}
    assert sizes["monitor.pipeline"] < MAX_PIPELINE_LINES


def test_the_sql_stays_in_the_store() -> None:
    callers = [n for n in MODULES if n.split(".")[1:2] in (["cli"], ["server"], ["metrics"])]
    assert "monitor.cli.views" in callers
    for name in callers:
        tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] in ("sqlalchemy", "sqlmodel")]
            assert bad == [], f"{name} imports {bad}: call a store function instead"


def _loaded(module: str, names: tuple[str, ...]) -> list[str]:
    """Which of `names` a fresh interpreter has imported once it has imported `module`."""
    import subprocess
    import sys

    probe = f"import sys, {module}; print(sorted(m for m in {names!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(out.stdout.strip()))


def test_the_parse_workers_load_no_database_code() -> None:
    """What a parse worker imports (monitor.jobs and everything under it, the forkserver's
    preload) holds no SQLAlchemy or SQLModel: 25 MB less in each worker and the forkserver."""
    assert _loaded("monitor.jobs", ("sqlalchemy", "sqlmodel", "aiohttp", "monitor.models")) == []


def test_commands_other_than_run_load_no_daemon_parts() -> None:
    """APScheduler, the HTTP endpoint and the file watcher are the daemon's (`run`): the CLI
    imports none of them for `once`, `feeds`, `check`..."""
    daemon = ("apscheduler", "watchfiles", "monitor.server", "aiohttp.web")
    assert _loaded("monitor.cli", daemon) == []


def test_a_workers_reply_and_the_story_step_load_no_parse_code(tmp_path: Path) -> None:
    """The daemon's process unpickles the workers' replies (records.py's types, sketch.py's
    sketches) and runs the story step (folding.py) without importing feedparser, lexbor,
    numpy or the modules that use them: 0.1-0.15 s of its first reply, and some 20 MB."""
    import datetime as dt
    import pickle
    import subprocess
    import sys

    from monitor.jobs import parse_and_match
    from monitor.rules.watchlist import load_watchlist

    (tmp_path / "w.yaml").write_text("rules:\n  - {id: r, query: missile}\n")
    body = (
        "<rss version='2.0'><channel><title>t</title><item><title>North Korea fires a missile"
        "</title><link>https://example.org/1</link><description>"
        + "North Korea fired a ballistic missile into the sea on Tuesday, officials said. " * 3
        + "</description></item></channel></rss>"
    ).encode()
    reply = parse_and_match(
        body, feed_id="f", base_url=None, fetched_at=dt.datetime.now(dt.UTC), feed_tags=(),
        watchlist=load_watchlist(tmp_path / "w.yaml"),
    )  # fmt: skip
    assert reply.hits and any(reply.sketches.values())  # a sketch crosses the pipe too
    (tmp_path / "reply.pkl").write_bytes(pickle.dumps(("ok", reply)))
    parse = ("feedparser", "selectolax", "numpy", "charset_normalizer", "monitor.jobs",
             "monitor.parse", "monitor.extract", "monitor.stories")  # fmt: skip
    probe = (
        "import pickle, sys, monitor.cli, monitor.storing, monitor.folding\n"
        f"status, reply = pickle.loads(open({str(tmp_path / 'reply.pkl')!r}, 'rb').read())\n"
        "assert reply.parsed.items and reply.sketches\n"
        f"print(sorted(m for m in {parse!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert ast.literal_eval(out.stdout.strip()) == []


def test_upgrading_a_new_database_loads_no_syntax_highlighting(tmp_path: Path) -> None:
    """Alembic's import of Mako does not bring in Pygments' HTML, JavaScript and CSS lexers
    (0.09 s of a new database's start-up): schema.upgrade marks Mako's plugin missing, and
    the revisions still run."""
    import subprocess
    import sys

    probe = (
        "import sys\nfrom monitor import db, schema\n"
        f"done = schema.upgrade(db.make_engine('sqlite:///{tmp_path / 'new.db'}'))\n"
        "assert done.revision == schema.HEAD, done\n"
        "print(sorted(m for m in sys.modules if m.startswith('pygments.lexers.')\n"
        "             and m != 'pygments.lexers._mapping'))"  # rich's, through structlog
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert ast.literal_eval(out.stdout.strip().splitlines()[-1]) == []


def test_the_daemons_process_loads_the_parse_code_only_when_a_feed_changed() -> None:
    """Parsing, extracting and sketching run in the workers: the CLI (a cycle of 304s, every
    command but `test-rule --file`) imports none of feedparser, trafilatura, lexbor or numpy
    (0.2 s of every start)."""
    parse = ("feedparser", "trafilatura", "selectolax", "numpy", "monitor.jobs", "monitor.parse")
    assert _loaded("monitor.cli", (*parse, "monitor.extract", "monitor.stories")) == []
