"""One real server for a benchmark: a gunicorn master (and its worker) started as ``make run``
does, from a checkout, over a fresh data directory.

Shared by ``bench/server_bench.py`` and ``bench/abuse.py`` (imported after ``bench/`` is put
on ``sys.path``, like :mod:`common`). Every server started is in :data:`SERVERS` until it is
stopped, so a script's cleanup can kill what is left on any exit (:func:`kill_servers`).
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import requests

from common import ROOT, progress

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: server log lines that count as a problem of the run
LOG_PROBLEM = re.compile(r"\[(ERROR|CRITICAL)\]|Traceback|WORKER TIMEOUT|Exception", re.I)
#: servers started and not yet stopped (killed by :func:`kill_servers`)
SERVERS: list["Server"] = []


class BenchError(Exception):
    """The server answered wrongly, too late, or not at all."""


def free_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``name`` names its data directory and log under ``workdir``; ``root`` is the checkout
    it runs from (default: this one); ``env`` adds ``CONSUMER_API_*`` settings (every
    inherited one is dropped first) and ``extra_args`` gunicorn flags. Seconds:
    ``ready_timeout`` to answer ``/api/health/ready``, ``stop_timeout`` after SIGTERM
    before the process group is killed, ``kill_wait`` to reap it after SIGKILL."""

    def __init__(self, name: str, workdir: str, env: dict | None = None, extra_args=(),
                 root=ROOT, ready_timeout: float = 30.0, stop_timeout: float = 45.0,
                 kill_wait: float = 5.0, report_problems: bool = True):
        self.name = name
        self.root = str(root)
        self.env_settings = {k: str(v) for k, v in (env or {}).items()}
        self.extra_args = list(extra_args)
        self.ready_timeout, self.stop_timeout, self.kill_wait = (ready_timeout, stop_timeout,
                                                                 kill_wait)
        self.report_problems = report_problems
        self.data_dir = os.path.join(workdir, f"data-{name}")
        self.log_path = os.path.join(workdir, f"server-{name}.log")
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.stop_seconds: float | None = None
        self.exit_code: int | None = None
        self.problems: list[str] = []
        self.killed = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def describe_settings(self) -> str:
        parts = [f"{k.removeprefix('CONSUMER_API_')}={v}" for k, v in self.env_settings.items()]
        return " ".join(parts + self.extra_args)

    # -- start ----------------------------------------------------------------------------

    def start(self) -> "Server":
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("CONSUMER_API_") and k != "GUNICORN_CMD_ARGS"}
        env.update(self.env_settings)
        env.update(CONSUMER_API_DATA_DIR=self.data_dir, PYTHONUNBUFFERED="1")
        os.makedirs(self.data_dir, exist_ok=True)
        for attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                   "--bind", f"127.0.0.1:{self.port}", *self.extra_args]
            with open(self.log_path, "ab") as log_file:
                self.proc = subprocess.Popen(cmd, cwd=self.root, env=env,
                                             stdin=subprocess.DEVNULL, stdout=log_file,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            SERVERS.append(self)
            try:
                self._wait_ready()
                return self
            except BenchError:
                if self.proc.poll() is not None and "in use" in self.output() and attempt < 2:
                    SERVERS.remove(self)
                    continue
                raise
        raise BenchError("server did not start")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise BenchError(f"server {self.name} exited with {rc} before it was ready:\n"
                                 + self.output()[-3000:])
            try:
                # Connection: close -- a kept-alive probe connection is not needed after this
                r = requests.get(self.base + "/api/health/ready", timeout=(0.25, 2.0),
                                 headers={"Connection": "close"})
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]!r}"
            except requests.RequestException as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise BenchError(f"server {self.name} not ready after {self.ready_timeout:.0f} s "
                                 f"(last: {last}):\n" + self.output()[-3000:])
            time.sleep(0.05)  # readiness polling only

    # -- looking at it ----------------------------------------------------------------------

    def output(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def worker_pid(self) -> int:
        """The gunicorn worker: the master's only child (from /proc/<master>/task/*/children,
        else by scanning /proc/*/stat for the parent pid)."""
        master = self.proc.pid
        kids: set[int] = set()
        for path in glob.glob(f"/proc/{master}/task/*/children"):
            with contextlib.suppress(OSError, ValueError):
                with open(path) as f:
                    kids.update(int(x) for x in f.read().split())
        if not kids:
            for path in glob.glob("/proc/[0-9]*/stat"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    with open(path) as f:
                        stat = f.read()
                    if int(stat[stat.rindex(")") + 2:].split()[1]) == master:
                        kids.add(int(path.split("/")[2]))
        if len(kids) != 1:
            raise BenchError(f"expected one gunicorn worker under master {master}, "
                             f"got {sorted(kids)}")
        return kids.pop()

    def rss_kib(self) -> int:
        with open(f"/proc/{self.worker_pid()}/status") as f:
            for entry in f:
                if entry.startswith("VmRSS:"):
                    return int(entry.split()[1])
        raise BenchError("no VmRSS in the worker's status")

    def worker_memory(self) -> dict:
        """``pid``, ``VmHWM`` and ``VmRSS`` (bytes) of the worker; {} when there is none."""
        try:
            pid = self.worker_pid()
            with open(f"/proc/{pid}/status") as f:
                out = {"pid": pid}
                for entry in f:
                    key, _, value = entry.partition(":")
                    if key in ("VmHWM", "VmRSS"):
                        out[key] = int(value.split()[0]) * 1024
                return out
        except (BenchError, OSError, ValueError, IndexError):
            return {}

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker so far."""
        with open(f"/proc/{self.worker_pid()}/stat") as f:
            stat = f.read()
        fields_ = stat[stat.rindex(")") + 2:].split()
        return (int(fields_[11]) + int(fields_[12])) / CLK_TCK

    # -- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM the master and wait (bounded); SIGKILL the group if it lingers (and a
        worker that outlived its master). Records problems (slow stop, exit code, error
        lines in the log); removes the data directory."""
        if self.proc is not None and not self.killed:
            if self.proc.poll() is None:
                t0 = time.perf_counter()
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGTERM)
                try:
                    self.exit_code = self.proc.wait(timeout=self.stop_timeout)
                    self.stop_seconds = time.perf_counter() - t0
                    if self.stop_seconds > 5:
                        self.problems.append(f"stopping took {self.stop_seconds:.1f} s")
                except subprocess.TimeoutExpired:
                    self.problems.append(f"did not stop within {self.stop_timeout:.0f} s of "
                                         "SIGTERM: killed")
            else:
                self.exit_code = self.proc.returncode
                self.problems.append(f"server had exited by itself (rc {self.exit_code})")
            if self.exit_code not in (0, None):
                self.problems.append(f"exit code {self.exit_code}")
            self.kill()
            self._scan_log()
        if self in SERVERS:
            SERVERS.remove(self)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _scan_log(self) -> None:
        bad = [ln for ln in self.output().splitlines() if LOG_PROBLEM.search(ln)]
        if not bad:
            return
        self.problems.append(f"{len(bad)} error line(s) in its log, first: {bad[0][:300]}")
        if self.report_problems:
            progress(f"server {self.name}: {len(bad)} error line(s) in its log; first ones:\n  "
                     + "\n  ".join(b[:300] for b in bad[:5]))

    def kill(self) -> None:
        if self.proc is None:
            return
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own new session: master + worker
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=self.kill_wait)


def kill_servers() -> None:
    """Kill every server still running (a script's cleanup on any exit)."""
    for srv in list(SERVERS):
        try:
            srv.kill()
        except Exception as exc:
            progress(f"warning: killing server {srv.name}: {exc!r}")
        with contextlib.suppress(ValueError):
            SERVERS.remove(srv)
