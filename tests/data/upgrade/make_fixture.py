"""Writes the 0.1.0 databases the upgrade test starts from (tests/test_migrations.py).

Run it with monitor 0.1.0 (commit 0dc4b88) on the path, from the repository root:

    git worktree add /tmp/monitor-0.1.0 0dc4b88
    PYTHONPATH=/tmp/monitor-0.1.0 python tests/data/upgrade/make_fixture.py sqlite
    PYTHONPATH=/tmp/monitor-0.1.0 python tests/data/upgrade/make_fixture.py postgresql

It polls feed-0.1.0.xml once with `backfill: true`, so every matching item alerts, and
delivers to two webhook channels served here: `ops` answers 200 (sent), `audit` answers 503
(pending, to retry). The database is then dumped as SQL: 0.1.0-sqlite.sql (sqlite3
iterdump) and 0.1.0-postgresql.sql (pg_dump --inserts).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "monitor_fixture_010"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503 if self.path == "/audit" else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main(backend: str) -> None:
    import monitor

    assert monitor.__version__ == "0.1.0", "run this with monitor 0.1.0 on the path"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "sqlite":
            path = Path(tmp) / "monitor.db"
            url = f"sqlite:///{path}"
        else:
            for sql in (f"DROP DATABASE IF EXISTS {PG_DB}", f"CREATE DATABASE {PG_DB}"):
                subprocess.run(["psql", PG_ADMIN, "-qc", sql], check=True)
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
        config = Path(tmp) / "monitor.yaml"
        config.write_text(
            f"""database: {url}
watchlist: {HERE / "watchlist.yaml"}
feeds:
  - id: upgrade
    url: {HERE / "feed-0.1.0.xml"}
    backfill: true
channels:
  ops: {{type: webhook, url: "http://127.0.0.1:{port}/ops", secret: {SECRET}}}
  audit: {{type: webhook, url: "http://127.0.0.1:{port}/audit"}}
server: {{listen: "127.0.0.1:0"}}
"""
        )
        from monitor.cli import run_cli

        assert run_cli(["--config", str(config), "once"]) == 0
        if backend == "sqlite":
            with sqlite3.connect(path) as conn:
                dump = "\n".join(conn.iterdump()) + "\n"
            (HERE / "0.1.0-sqlite.sql").write_text(dump)
        else:
            dump = subprocess.run(
                ["pg_dump", "--inserts", "--no-owner", "--no-privileges", "--no-comments",
                 f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            (HERE / "0.1.0-postgresql.sql").write_text(dump)
            subprocess.run(["psql", PG_ADMIN, "-qc", f"DROP DATABASE {PG_DB}"], check=True)
    server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
