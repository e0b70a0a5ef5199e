"""End-to-end fixtures: the real server, as ``make run`` starts it.

``gunicorn -c gunicorn.conf.py`` runs from the repository root on a free loopback port, with
``CONSUMER_API_DATA_DIR`` pointing at a temporary directory. Its stdout and stderr go to a log
file that is attached to the report of a failing test (section "gunicorn ... log").

API (for this file's tests and later ones: nginx in front, long-polls, ...):

* :func:`spawn_server` starts a server and returns at once (no readiness wait): for servers
  that are expected to fail.
* :func:`start_server` is a context manager: spawn, wait until ``GET /api/health/ready`` answers,
  yield the :class:`ServerProcess`, kill it (whole process group) on the way out.
* fixtures: ``server_factory(data_dir=None, **env)`` starts ready servers that are killed at
  teardown; ``server`` is one such server on a fresh data directory.

Environment variables are passed as keyword arguments with their full names
(``CONSUMER_API_SEGMENT_BYTES="4096"``); a value of None removes an inherited variable. Every
``CONSUMER_API_*`` variable of the test runner's own environment is dropped first, so a
developer's settings never leak into a test.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
HEALTH_PATH = "/api/health/ready"


class ServerError(AssertionError):
    """The server did not start, did not stop, or misbehaved; the message has its output."""


def free_port() -> int:
    """A loopback port that was free a moment ago (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data_dir, **env) -> dict:
    out = {k: v for k, v in os.environ.items() if not k.startswith("CONSUMER_API_")}
    out["CONSUMER_API_DATA_DIR"] = str(data_dir)
    out["PYTHONUNBUFFERED"] = "1"
    for name, value in env.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = str(value)
    return out


class ServerProcess:
    """One running (or finished) gunicorn master started by :func:`spawn_server`."""

    def __init__(self, proc: subprocess.Popen, port: int, data_dir: str, log_path: str):
        self.proc = proc
        self.port = port
        self.data_dir = data_dir
        self.log_path = log_path
        self.base_url = f"http://127.0.0.1:{port}"

    def __repr__(self):
        return f"<ServerProcess pid={self.proc.pid} {self.base_url} rc={self.proc.returncode}>"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        return self.base_url + path

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        return f"{self!r}\n----- server output ({self.log_path}) -----\n{self.output()}"

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> "ServerProcess":
        """Poll ``GET /api/health/ready`` until it answers 200 (bounded); fail with the output if
        the server exits first or does not answer within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerError(f"server exited with code {rc} before it was ready\n"
                                  + self.describe())
            try:
                # "Connection: close": a kept-alive probe connection would make gunicorn's
                # gthread worker linger up to 2 s at shutdown
                resp = requests.get(self.url(HEALTH_PATH), timeout=(0.25, 2.0),
                                    headers={"Connection": "close"})
                if resp.status_code == 200 and resp.json() == {"status": "ok"}:
                    return self
                last = f"{resp.status_code} {resp.text[:200]!r}"
            except (requests.ConnectionError, requests.Timeout, ValueError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise ServerError(f"server not ready after {timeout} s (last: {last})\n"
                                  + self.describe())
            time.sleep(0.05)  # readiness polling only

    def wait_exit(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Wait (bounded) for the master to exit; its exit code. Raises ServerError on
        timeout (the process is left running for the caller or the teardown to kill)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ServerError(f"server still running {timeout} s later\n"
                              + self.describe()) from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Send ``sig`` to the gunicorn master and wait (bounded) for it to exit; returns
        the exit code (negative: killed by that signal, as in Popen)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group (master and worker) and reap the master."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group of our own new session
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def spawn_server(data_dir, *, port: int | None = None, log_path=None, extra_args=(),
                 **env) -> ServerProcess:
    """Start ``gunicorn -c gunicorn.conf.py`` on ``127.0.0.1:<port>`` (default: a free port)
    over ``data_dir`` and return at once. The caller owns the process: see
    :meth:`ServerProcess.kill` (or use :func:`start_server`)."""
    port = port or free_port()
    data_dir = str(data_dir)
    if log_path is None:
        fd, log_path = tempfile.mkstemp(prefix=f"gunicorn-{port}-", suffix=".log")
        os.close(fd)
    log_path = str(log_path)
    cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
           "--bind", f"127.0.0.1:{port}", *extra_args]
    with open(log_path, "ab") as log_file:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=server_env(data_dir, **env),
                                stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return ServerProcess(proc, port, data_dir, log_path)


@contextlib.contextmanager
def start_server(data_dir, *, ready_timeout: float = READY_TIMEOUT_S, **kwargs):
    """Spawn a server (see :func:`spawn_server`), wait until it is ready, yield it and kill
    it on the way out, whatever happened (a stopped server is left alone)."""
    srv = spawn_server(data_dir, **kwargs)
    try:
        srv.wait_ready(ready_timeout)
        yield srv
    finally:
        if srv.poll() is None:
            srv.kill()


@contextlib.contextmanager
def on_store(request, store_name: str):
    """The server settings of a store: none for the embedded one (the default); for
    "kafka", the test run's broker, left without topics or groups on the way out (the
    broker is shared by the whole run)."""
    if store_name != "kafka":
        yield {}
        return
    from tests.kafka.store import kafka_store
    broker = request.getfixturevalue("kafka_broker")
    try:
        yield {"CONSUMER_API_BACKEND": "kafka",
               "CONSUMER_API_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    finally:
        with kafka_store(broker, READY_TIMEOUT_S):
            pass  # a store that cleans the broker when it closes


def metric(srv, sample: str) -> float:
    """One sample of the server's ``/metrics``, by its name and labels as printed
    (``consumer_api_waiting_polls``, ``consumer_api_refusals_total{reason="x"}``); 0 when
    the server does not show it (a counter not counted yet)."""
    text = requests.get(srv.url("/metrics"), timeout=5).text
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def reset_mid_response(port: int, raw_request: bytes) -> None:
    """Send ``raw_request`` on a new connection with a tiny receive buffer, wait until the
    response starts (``HTTP/1.1 200``), then reset the connection (RST): a client that dies
    while a large response is still being written to it."""
    victim = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        victim.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        victim.connect(("127.0.0.1", port))
        victim.sendall(raw_request)
        assert victim.recv(12) == b"HTTP/1.1 200"
        victim.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        victim.close()


# -- pytest glue --------------------------------------------------------------------------

_SERVERS_ATTR = "_e2e_servers"
#: names of module-scoped server fixtures whose logs a failing test should carry
MODULE_SERVER_FIXTURES = ("srv", "secure_srv")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the output of every server a failing test started to its report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for srv in getattr(item, _SERVERS_ATTR, ()):
            report.sections.append((f"gunicorn {srv.base_url} (pid {srv.pid}) log",
                                    srv.output() or "(no output)"))


@pytest.fixture(autouse=True)
def _attach_module_server_logs(request):
    """A failing test gets the log of the module's server(s) (fixtures named in
    ``MODULE_SERVER_FIXTURES``) in its report."""
    servers = [request.getfixturevalue(name) for name in MODULE_SERVER_FIXTURES
               if name in request.fixturenames]
    if servers and not hasattr(request.node, _SERVERS_ATTR):
        setattr(request.node, _SERVERS_ATTR, servers)


@pytest.fixture
def server_factory(request, tmp_path):
    """``server_factory(data_dir=None, *, spawn=False, **kwargs)``: a ready server, killed
    at teardown. Without ``data_dir`` each call gets a fresh one under ``tmp_path``; other
    keyword arguments go to :func:`spawn_server` (``port``, ``extra_args``, environment
    variables). ``spawn=True`` returns without waiting for readiness (for servers that are
    expected to fail)."""
    started: list[ServerProcess] = []
    setattr(request.node, _SERVERS_ATTR, started)

    def factory(data_dir=None, *, spawn: bool = False,
                ready_timeout: float = READY_TIMEOUT_S, **kwargs) -> ServerProcess:
        n = len(started)
        if data_dir is None:
            data_dir = tmp_path / f"data-{n}"
        kwargs.setdefault("log_path", tmp_path / f"server-{n}.log")
        srv = spawn_server(data_dir, **kwargs)
        started.append(srv)
        if not spawn:
            srv.wait_ready(ready_timeout)
        return srv

    try:
        yield factory
    finally:
        for srv in started:
            if srv.poll() is None:
                srv.kill()


@pytest.fixture
def server(server_factory) -> ServerProcess:
    """A ready server on a fresh data directory."""
    return server_factory()


@pytest.fixture
def wire(monkeypatch) -> list:
    """What every ``requests`` call of the test put on the wire, in order: a dict per
    exchange with ``method``, ``path``, ``sent_coding`` / ``accept`` (the request's
    Content-Encoding and Accept-Encoding), ``got_coding`` (the response's
    Content-Encoding), ``wire_bytes`` (its Content-Length) and ``body_bytes`` (its body as
    decoded by ``requests``)."""
    seen: list = []
    send = requests.Session.send

    def recording_send(session, prepared, **kwargs):
        resp = send(session, prepared, **kwargs)
        seen.append({
            "method": prepared.method, "path": prepared.path_url.split("?")[0],
            "sent_coding": prepared.headers.get("Content-Encoding"),
            "accept": prepared.headers.get("Accept-Encoding"),
            "got_coding": resp.headers.get("Content-Encoding"),
            "wire_bytes": int(resp.headers.get("Content-Length", -1)),
            "body_bytes": len(resp.content)})
        return resp

    monkeypatch.setattr(requests.Session, "send", recording_send)
    return seen


# -- a real browser (Playwright driving Debian's Chromium) -----------------------------------

@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium here: `make test` installs it (deploy/install-test-packages.sh)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        found = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield found
        found.close()


@pytest.fixture
def page(browser):
    """A page at 1280x800 whose console errors, script errors and requests to any host but
    the server's are collected in ``problems`` (the tests assert there are none)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="UTC")
    found = context.new_page()
    found.problems = []
    found.on("console", lambda msg: msg.type == "error" and found.problems.append(msg.text))
    found.on("pageerror", lambda exc: found.problems.append(str(exc)))
    found.on("request", lambda req: urlsplit(req.url).hostname not in ("127.0.0.1", None)
             and req.url.startswith("http") and found.problems.append(f"asked {req.url}"))
    yield found
    context.close()
