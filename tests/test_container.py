"""The image as users run it: built from the Dockerfile with podman (or docker), started with no
configuration, watched from outside as an operator would (log, /healthz, the HEALTHCHECK,
/metrics, /alerts.atom, `stop`), and once more against PostgreSQL.

Building takes a minute when the dependencies change, so `make test` leaves the container
tests to `make container-test` (MONITOR_CONTAINER_TEST=1), which CI runs after `make test`.
Without podman or docker they are skipped, saying so. On these machines podman comes through
../shared/container (a wrapper that installs it, and a stand-in for the python base image,
since no registry is reachable); elsewhere the default base (python:3.12-slim) is pulled.
The static checks of the Dockerfile and the compose file at the end always run.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import feedparser
import httpx
import pytest
from ruamel.yaml import YAML

from tests.conftest import ROOT
from tests.test_server import samples

IMAGE = "localhost/monitor:container-test"
SHARED = ROOT.parent / "shared" / "container"
SEED_TITLE = "China president's North Korea visit to send strong message to US"
SEED_URL = "https://www.globalsecurity.org/wmd/library/news/dprk/2019/dprk-190618-presstv01.htm"
# The demo feed's Seoul item matches the same rule (watchlist.yaml says why): two alerts in all.
SEOUL_URL = "https://www.globalsecurity.org/wmd/library/news/dprk/2019/dprk-190509-yonhap01.htm"

container = pytest.mark.skipif(
    not os.environ.get("MONITOR_CONTAINER_TEST"),
    reason="builds and runs the image: `make container-test` (MONITOR_CONTAINER_TEST=1)",
)


@dataclass(frozen=True)
class Engine:
    cmd: tuple[str, ...]
    podman: bool
    base: str | None  # BASE_IMAGE build argument; None: the Dockerfile's default

    def run(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        proc = subprocess.run(
            [*self.cmd, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args[:2])} exited {proc.returncode}:\n{proc.stdout[-3000:]}"
                f"\n{proc.stderr[-3000:]}"
            )
        return proc.stdout


def find_engine() -> Engine | None:
    if (SHARED / "podman").exists():  # these machines: installs podman when missing
        base = subprocess.run(
            [str(SHARED / "make-base-image")], capture_output=True, text=True, check=True
        ).stdout.strip()
        return Engine((str(SHARED / "podman"),), podman=True, base=base)
    if shutil.which("podman"):
        return Engine(("podman",), podman=True, base=None)
    if shutil.which("docker"):
        info = subprocess.run(["docker", "info"], capture_output=True, check=False)
        if info.returncode == 0:
            return Engine(("docker",), podman=False, base=None)
    return None


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[container] {text}", flush=True)


@pytest.fixture(scope="module")
def engine() -> Engine:
    found = find_engine()
    if found is None:
        pytest.skip("no podman or docker on this machine")
    return found


@dataclass(frozen=True)
class Image:
    tag: str
    build_seconds: float


@pytest.fixture(scope="module")
def image(engine: Engine) -> Image:
    args = ["build", "--network=host", "-t", IMAGE]
    if engine.podman:
        args += ["--format", "docker"]  # OCI images drop HEALTHCHECK
    if engine.base is not None:
        args += ["--pull=never", "--build-arg", f"BASE_IMAGE={engine.base}"]
    started = time.monotonic()
    engine.run(*args, str(ROOT), timeout=1200)
    return Image(IMAGE, time.monotonic() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Container:
    """One running container with a unique name on the host network, its log followed."""

    def __init__(self, engine: Engine, image: str, env: dict[str, str]) -> None:
        self.engine = engine
        self.name = f"monitor-test-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        env = {"MONITOR_LISTEN": f"127.0.0.1:{self.port}", **env}
        args = ["run", "-d", "--name", self.name, "--network=host"]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        if not engine.podman:
            args += ["--health-interval=2s"]  # docker has no `healthcheck run`
        engine.run(*args, image)
        self.base = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._events: queue.Queue[dict[str, object]] = queue.Queue()
        self._follow = subprocess.Popen(
            [*engine.cmd, "logs", "-f", self.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # the container's stderr: a traceback if it crashed
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._follow.stdout is not None
        for line in self._follow.stdout:
            self.lines.append(line)
            with contextlib.suppress(ValueError):  # a traceback, podman's own messages
                self._events.put(json.loads(line))

    def wait_event(self, name: str, timeout: float) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                break
            if event.get("event") == name:
                return event
        raise AssertionError(f"no {name!r} in the log within {timeout}s\n{self.describe()}")

    def describe(self) -> str:
        """What an operator would look at: the container's state and its whole log."""
        state = self.engine.run(
            "inspect",
            "--format",
            "{{.State.Status}} exit={{.State.ExitCode}}",
            self.name,
            check=False,
        )
        return f"state: {state.strip()}\nlog (stdout and stderr):\n{''.join(self.lines)}"

    def healthy(self, timeout: float = 60) -> None:
        """The image's own HEALTHCHECK passes."""
        if self.engine.podman:
            self.engine.run("healthcheck", "run", self.name)
            return
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.engine.run("inspect", "--format", "{{.State.Health.Status}}", self.name)
            if status.strip() == "healthy":
                return
            time.sleep(0.5)  # the interval between two looks, not a wait for something
        raise AssertionError(f"health status {status.strip()!r} after {timeout}s")

    def stop(self) -> tuple[int, float]:
        started = time.monotonic()
        self.engine.run("stop", "-t", "10", self.name, timeout=30)
        elapsed = time.monotonic() - started
        code = self.engine.run("inspect", "--format", "{{.State.ExitCode}}", self.name)
        return int(code.strip()), elapsed

    def remove(self) -> None:
        self.engine.run("rm", "-f", "-v", self.name, check=False)
        if self._follow.poll() is None:
            self._follow.kill()
        self._follow.wait()


Start = Callable[..., Container]


@pytest.fixture
def start(engine: Engine, image: Image) -> Iterator[Start]:
    """Start a container of the image (with extra environment); always removed afterwards."""
    started: list[Container] = []

    def run(**env: str) -> Container:
        started.append(Container(engine, image.tag, env))
        return started[-1]

    try:
        yield run
    finally:
        for c in started:
            c.remove()


@container
def test_the_image_runs_the_seed_demo_as_an_operable_service(
    start: Start, image: Image, capsys: pytest.CaptureFixture[str]
) -> None:
    say(capsys, f"image {image.tag} built in {image.build_seconds:.1f}s")
    t0 = time.monotonic()
    c = start()
    # The seed alert, in the log, within 60 s of the start.
    alert = c.wait_event("alert", timeout=60)
    assert alert["rule"] == "dprk-missile" and alert["title"] == SEED_TITLE
    t_alert = time.monotonic() - t0

    # Not root, and monitor itself is PID 1 (so SIGTERM reaches it).
    uid = c.engine.run("exec", c.name, "id", "-u").strip()
    assert uid != "0" and uid == "10001"
    cmdline = c.engine.run("exec", c.name, "cat", "/proc/1/cmdline").split("\0")
    assert "run" in cmdline and any(part.endswith("monitor") for part in cmdline)

    with httpx.Client(base_url=c.base, trust_env=False, timeout=10) as client:
        health = client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["scheduler"] == "running" and health.json()["database"] == "ok"
        c.healthy()

        v = samples(client.get("/metrics").text)
        fetches = sum(n for (name, _), n in v.items() if name == "monitor_fetches_total")
        alerts = sum(n for (name, _), n in v.items() if name == "monitor_alerts_total")
        assert fetches >= 1 and alerts >= 1, (fetches, alerts)

        atom = feedparser.parse(client.get("/alerts.atom").content)
        assert sorted(e.link for e in atom.entries) == sorted([SEED_URL, SEOUL_URL])

        # The teaser feed's item had its page read (full text, from seeds/pages/ in the
        # image): one story, so still the two alerts above.
        deadline, pages_ok = time.monotonic() + 30, 0.0
        while time.monotonic() < deadline:
            v = samples(client.get("/metrics").text)
            pages_ok = v.get(("monitor_pages_total", (("result", "ok"),)), 0.0)
            if pages_ok >= 1:
                break
            time.sleep(0.5)  # the interval between two looks, not a wait for something
        assert pages_ok == 1, c.describe()

    code, elapsed = c.stop()
    assert code == 0
    assert elapsed < 10, f"stop took {elapsed:.1f}s"
    c.wait_event("stopped", timeout=5)
    say(
        capsys,
        f"seed alert after {t_alert:.1f}s; stop: exit {code} in {elapsed:.1f}s; "
        f"whole run {time.monotonic() - t0:.1f}s",
    )


@container
def test_the_image_runs_against_postgresql(
    start: Start, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the compose file's `postgres` profile does: MONITOR_DATABASE points at a server."""
    t0 = time.monotonic()
    c = start(MONITOR_DATABASE=pg_url)
    started = c.wait_event("started", timeout=60)
    assert str(started["database"]).startswith("postgresql+psycopg://")
    alert = c.wait_event("alert", timeout=60)
    assert alert["title"] == SEED_TITLE
    with httpx.Client(base_url=c.base, trust_env=False, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
    code, elapsed = c.stop()
    assert code == 0 and elapsed < 10
    say(capsys, f"postgresql: seed alert and clean stop in {time.monotonic() - t0:.1f}s")


# --- static checks: always run -------------------------------------------------------------


def test_the_dockerfile_keeps_its_promises() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines()]
    first = next(line for line in lines if line and not line.startswith("#"))
    assert first == "ARG BASE_IMAGE=python:3.12-slim"
    assert lines.count("FROM ${BASE_IMAGE}") == 1 and "FROM ${BASE_IMAGE} AS build" in lines
    for expected in ('VOLUME ["/data"]', "EXPOSE 8080", 'ENTRYPOINT ["monitor"]', 'CMD ["run"]'):
        assert expected in lines
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0", "USER 0:0")
    assert "HEALTHCHECK" in text and "curl" not in text.split("HEALTHCHECK", 1)[1]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "data", "tests"} <= set(ignored)


def test_the_compose_file_describes_the_service_and_a_postgres_profile() -> None:
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    monitor = compose["services"]["monitor"]
    assert monitor["restart"] == "unless-stopped"
    assert any("/data" in v for v in monitor["volumes"])
    assert any("/app/config" in v for v in monitor["volumes"])
    assert monitor["env_file"][0]["path"] == ".env"
    postgres = compose["services"]["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert monitor["depends_on"]["postgres"]["required"] is False
    example = (ROOT / ".env.example").read_text()
    for var in ("MONITOR_WEBHOOK_SECRET", "SMTP_PASSWORD", "MONITOR_DATABASE", "POSTGRES_PASSWORD"):
        assert var in example
