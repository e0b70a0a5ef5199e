"""The usage examples (``examples/*.py``, ``examples/node/*.mjs``) against the real server.

Each script runs as a subprocess, as a user would run it: the Python ones with this
interpreter, the Node.js ones with ``node`` (skipped, with the reason, when there is no
Node 18+ on PATH). What a user relies on:

* a producer exits 0, reports where its events went, and the topic then holds exactly
  those events (checked by reading the partitions back over HTTP, not through the scripts);
* a consumer with ``--max N`` prints every one of N events exactly once, exits 0, has
  committed what it printed and has left its group -- in every pairing of languages, so
  both read what either one writes;
* a second run of a consumer in the same group resumes after what the first printed;
* Ctrl-C (SIGINT) while a consumer waits ends it with status 130, out of its group;
* against a server with API keys, a missing or wrong ``CONSUMER_API_KEY`` ends a consumer
  with a non-zero status and the ``unauthorized`` code on stderr; the right key works;
* a Python and a Node consumer in one group print each event once between them, also
  when one of them leaves;
* a record that is not JSON, or a member joining while a batch is being printed, does not
  stop a consumer.

One open server and one with API keys for the module; topics and groups are unique per
test. Every subprocess has a bounded timeout (a hang fails the test), and the only waits
are bounded polls of server state.
"""
from __future__ import annotations

import base64
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from tests.e2e.conftest import REPO_ROOT, metric, start_server

EXAMPLES = REPO_ROOT / "examples"
RUN_TIMEOUT_S = 30.0
WAIT_TIMEOUT_S = 20.0
API_KEY = "examples-e2e-key"
HTTP_TIMEOUT = (2.0, 10.0)


def _node_problem() -> str | None:
    """Why the Node.js examples cannot run here (None: they can)."""
    node = shutil.which("node")
    if node is None:
        return "node is not on PATH (the Node.js examples need Node 18+ for its built-in fetch)"
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`node --version` failed: {exc}"
    match = re.match(r"v(\d+)\.", version)
    if not match or int(match.group(1)) < 18:
        return f"node {version!r} is too old (the Node.js examples need 18+ for fetch)"
    return None


NODE_PROBLEM = _node_problem()
needs_node = pytest.mark.skipif(NODE_PROBLEM is not None, reason=str(NODE_PROBLEM))


def lang_param(lang: str, *more: str):
    """A pytest param for a pairing of languages, skipped when one of them is Node and
    Node cannot run."""
    langs = (lang, *more)
    return pytest.param(*langs, id="-".join(langs),
                        marks=[needs_node] if "node" in langs else [])


def command(lang: str, role: str) -> list[str]:
    if lang == "python":
        return [sys.executable, str(EXAMPLES / f"{role}.py")]
    return [shutil.which("node") or "node", str(EXAMPLES / "node" / f"{role}.mjs")]


def script_env(url: str | None = None, api_key: str | None = None) -> dict:
    """The runner's environment without any CONSUMER_API_* setting of the developer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUMER_API_")}
    if url is not None:
        env["CONSUMER_API_URL"] = url
    if api_key is not None:
        env["CONSUMER_API_KEY"] = api_key
    return env


def run(lang: str, role: str, *args: str, url: str | None = None,
        api_key: str | None = None, env_url: str | None = None) -> subprocess.CompletedProcess:
    """Run an example to its end (bounded). ``url`` goes as ``--url``, ``env_url`` as
    ``CONSUMER_API_URL``."""
    cmd = command(lang, role) + (["--url", url] if url else []) + list(args)
    try:
        return subprocess.run(cmd, cwd=REPO_ROOT, env=script_env(env_url, api_key),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} still running after {RUN_TIMEOUT_S} s (killed)\n"
                    f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}")


def explain(proc: subprocess.CompletedProcess, tail: int = 20) -> str:
    """The command, its exit status, stderr and the end of stdout."""
    lines = (proc.stdout or "").splitlines()
    shown = "\n".join(lines[-tail:])
    if len(lines) > tail:
        shown = f"[... {len(lines) - tail} lines before]\n{shown}"
    return (f"{' '.join(map(str, proc.args))} -> exit {proc.returncode}\n"
            f"--- stdout ---\n{shown}\n--- stderr ---\n{proc.stderr}")


def _default_sigint():
    # a runner started in the background may ignore SIGINT, and children inherit that
    signal.signal(signal.SIGINT, signal.SIG_DFL)

class Running:
    """A consumer example running in the background: its stdout is read by a thread (after
    the first line only once :attr:`release` is set, so that a held consumer blocks on a
    full pipe in the middle of a batch); killed at the end, whatever happens."""

    def __init__(self, lang: str, *args: str, hold_after_first_line: bool = False):
        self.cmd = command(lang, "consumer") + list(args)
        self.proc = subprocess.Popen(self.cmd, cwd=REPO_ROOT, env=script_env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=_default_sigint)
        self.lines: list[str] = []
        self.first_line = threading.Event()
        self.release = threading.Event()
        if not hold_after_first_line:
            self.release.set()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            self.first_line.set()
            self.release.wait()

    def finish(self) -> subprocess.CompletedProcess:
        """Wait (bounded) for the exit; what it printed."""
        self.release.set()
        try:
            self.proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{' '.join(self.cmd)} still running after {RUN_TIMEOUT_S} s")
        self.reader.join(RUN_TIMEOUT_S)
        return subprocess.CompletedProcess(self.cmd, self.proc.returncode,
                                           "".join(self.lines), self.proc.stderr.read())

    def interrupt(self) -> subprocess.CompletedProcess:
        """Ctrl-C, then :meth:`finish`."""
        self.proc.send_signal(signal.SIGINT)
        return self.finish()

    def kill(self):
        self.release.set()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(what: str, condition, *running: Running):
    """Poll ``condition()`` (bounded); fail early if a consumer exits meanwhile."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while not condition():
        for r in running:
            if r.proc.poll() is not None:
                pytest.fail(f"consumer exited while waiting for {what}\n{explain(r.finish())}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- reading the server directly -----------------------------------------------------------

def stored_records(base_url: str, topic: str, api_key: str | None = None) -> dict:
    """``{(partition, offset): (key bytes, value bytes, headers)}`` of the whole topic."""
    http = requests.Session()
    if api_key:
        http.headers["Authorization"] = f"Bearer {api_key}"
    desc = http.get(f"{base_url}/api/topics/{topic}", timeout=HTTP_TIMEOUT)
    desc.raise_for_status()
    out = {}
    for part in desc.json()["partitions"]:
        offset = part["log_start_offset"]
        while offset < part["high_watermark"]:
            resp = http.get(f"{base_url}/api/topics/{topic}/partitions/{part['partition']}"
                            f"/records", params={"offset": offset, "max_records": 10000},
                            timeout=HTTP_TIMEOUT)
            resp.raise_for_status()
            for rec in resp.json()["records"]:
                key = None if rec["key"] is None else base64.b64decode(rec["key"])
                out[(rec["partition"], rec["offset"])] = (
                    key, base64.b64decode(rec["value"]), rec["headers"])
                offset = rec["offset"] + 1
    http.close()
    return out


def group_state(base_url: str, group: str) -> dict | None:
    resp = requests.get(f"{base_url}/api/consumer-groups/{group}", timeout=HTTP_TIMEOUT)
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    return resp.json()


def committed(base_url: str, group: str) -> dict:
    """``{partition: committed offset}`` of the group (partitions without a commit: 0)."""
    return {o["partition"]: o["committed_offset"] or 0
            for o in group_state(base_url, group)["offsets"]}


def high_watermarks(base_url: str, topic: str) -> dict:
    resp = requests.get(f"{base_url}/api/topics/{topic}", timeout=HTTP_TIMEOUT)
    resp.raise_for_status()
    return {p["partition"]: p["high_watermark"] for p in resp.json()["partitions"]}


# -- what the scripts print ----------------------------------------------------------------

LINE = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)\[(?P<partition>\d+)\]@(?P<offset>\d+) "
                  r"key=(?P<key>.*?) value=(?P<rest>.*)$")
SUMMARY = re.compile(r"^\s*partition (\d+): (\d+) events, offsets (\d+)\.\.(\d+)$", re.M)


def printed_records(stdout: str) -> list[dict]:
    """The consumers' lines: ``topic[p]@offset key=K value=<json> headers=<json>``."""
    decoder = json.JSONDecoder()
    out = []
    for line in stdout.splitlines():
        match = LINE.match(line)
        assert match, f"not a record line: {line!r}"
        value, end = decoder.raw_decode(match["rest"])
        rest = match["rest"][end:]
        assert rest.startswith(" headers="), line
        out.append({"topic": match["topic"], "partition": int(match["partition"]),
                    "offset": int(match["offset"]), "key": match["key"], "value": value,
                    "headers": json.loads(rest[len(" headers="):])})
    return out


def shown_key(key: bytes | None, consumer_lang: str) -> str:
    """How a consumer shows a stored key. Python (key_format text): the key's text. Node
    (encoding json): a key stored as a JSON string (as the Node producer's "json" encoding
    stores it, quotes included) is that string; any other key comes back in base64 and is
    shown as its text."""
    if key is None:
        return ""
    text = key.decode("utf-8")
    if consumer_lang == "node":
        try:
            decoded = json.loads(text)
        except ValueError:
            return text
        return decoded if isinstance(decoded, str) else text
    return text


def check_produced(proc, base_url: str, topic: str, count: int, producer_lang: str) -> dict:
    """The producer succeeded, its summary is true, and the topic holds exactly ``count``
    of its events (seq 0..count-1, unique ids). Returns the stored records."""
    assert proc.returncode == 0, explain(proc)
    assert f"produced {count} events to {topic}" in proc.stdout, explain(proc)
    stored = stored_records(base_url, topic)
    per_partition = collections.Counter(p for p, _ in stored)
    summary = {int(p): int(n) for p, n, _, _ in SUMMARY.findall(proc.stdout)}
    assert summary == dict(per_partition), explain(proc)
    events = [json.loads(value) for _, value, _ in stored.values()]
    assert sorted(e["seq"] for e in events) == list(range(count))
    assert len({e["event_id"] for e in events}) == count
    script = "examples/producer.py" if producer_lang == "python" else "examples/node/producer.mjs"
    for key, value, headers in stored.values():
        event = json.loads(value)
        assert headers == {"producer": script, "content-type": "application/json"}
        assert event["customer"] == shown_key(key, "node")  # keyed by customer
    return stored


def check_consumed(proc, stored: dict, topic: str, consumer_lang: str,
                   expect: int | None = None, returncode: int = 0) -> list[dict]:
    """The consumer succeeded and printed ``expect`` (default: all) stored records, each
    once and as stored."""
    assert proc.returncode == returncode, explain(proc)
    seen = printed_records(proc.stdout)
    assert len(seen) == (len(stored) if expect is None else expect), explain(proc)
    places = collections.Counter((r["partition"], r["offset"]) for r in seen)
    assert max(places.values()) == 1, f"printed more than once: {places.most_common(3)}"
    ids = collections.Counter(r["value"]["event_id"] for r in seen)
    assert max(ids.values()) == 1, f"an event printed more than once: {ids.most_common(3)}"
    for rec in seen:
        key, value, headers = stored[(rec["partition"], rec["offset"])]
        assert rec["topic"] == topic
        assert rec["value"] == json.loads(value), rec
        assert rec["headers"] == headers, rec
        assert rec["key"] == shown_key(key, consumer_lang), rec
    return seen


def check_left_group(base_url: str, group: str, topic: str, everything: bool = True):
    state = group_state(base_url, group)
    assert state is not None and state["members"] == [], state
    if everything:
        assert committed(base_url, group) == high_watermarks(base_url, topic), state


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("examples-data")) as server:
        yield server


@pytest.fixture(scope="module")
def secure_srv(tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("examples-secure"),
                      CONSUMER_API_API_KEYS=API_KEY) as server:
        yield server


@pytest.fixture
def name():
    """A unique name for this test's topic and group."""
    return f"ex-{uuid.uuid4().hex[:10]}"


# -- tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lang, role", [
    lang_param("python", "producer"), lang_param("python", "consumer"),
    lang_param("node", "producer"), lang_param("node", "consumer")])
def test_help(lang, role, tmp_path):
    """``--help`` needs no server (and no particular working directory)."""
    cmd = command(lang, role) + ["--help"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=script_env(), capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, explain(proc)
    assert "usage" in proc.stdout and "--url" in proc.stdout, explain(proc)
    assert "CONSUMER_API_KEY" in proc.stdout, explain(proc)


@pytest.mark.parametrize("producer_lang, consumer_lang", [
    lang_param("python", "python"), lang_param("node", "node"),
    lang_param("node", "python"), lang_param("python", "node")])
def test_producer_then_consumer(srv, name, producer_lang, consumer_lang):
    count = 25
    produced = run(producer_lang, "producer", "--topic", name, "--count", str(count),
                   "--partitions", "3", url=srv.base_url)
    assert f"created topic {name} with 3 partitions" in produced.stdout, explain(produced)
    stored = check_produced(produced, srv.base_url, name, count, producer_lang)

    # the URL from the environment this time
    consumed = run(consumer_lang, "consumer", "--topic", name, "--group", name,
                   "--max", str(count), env_url=srv.base_url)
    check_consumed(consumed, stored, name, consumer_lang)
    check_left_group(srv.base_url, name, name)


@pytest.mark.parametrize("lang", [lang_param("python"), lang_param("node")])
def test_producer_appends_to_an_existing_topic(srv, name, lang):
    first = run(lang, "producer", "--topic", name, "--count", "3", url=srv.base_url)
    assert first.returncode == 0, explain(first)
    again = run(lang, "producer", "--topic", name, "--count", "4", url=srv.base_url)
    assert again.returncode == 0, explain(again)
    assert "created topic" not in again.stdout, explain(again)
    assert len(stored_records(srv.base_url, name)) == 7


@pytest.mark.parametrize("lang", [lang_param("python"), lang_param("node")])
def test_second_run_resumes_after_what_the_first_printed(srv, name, lang):
    """``--max`` stops in the middle of what the server has (for Python, in the middle of
    a batch): what was printed is committed, and the next member of the group goes on from
    there -- no record twice, none skipped."""
    stored = check_produced(
        run("python", "producer", "--topic", name, "--count", "25", url=srv.base_url),
        srv.base_url, name, 25, "python")
    first = run(lang, "consumer", "--topic", name, "--group", name, "--max", "10",
                url=srv.base_url)
    seen = check_consumed(first, stored, name, lang, expect=10)
    check_left_group(srv.base_url, name, name, everything=False)
    assert sum(committed(srv.base_url, name).values()) == 10

    second = run(lang, "consumer", "--topic", name, "--group", name, "--max", "15",
                 url=srv.base_url)
    seen += check_consumed(second, stored, name, lang, expect=15)
    assert {(r["partition"], r["offset"]) for r in seen} == set(stored)
    check_left_group(srv.base_url, name, name)


@pytest.mark.parametrize("lang", [lang_param("python"), lang_param("node")])
def test_ctrl_c_commits_and_leaves_the_group(srv, name, lang):
    stored = check_produced(
        run("python", "producer", "--topic", name, "--count", "5", url=srv.base_url),
        srv.base_url, name, 5, "python")
    consumer = Running(lang, "--url", srv.base_url, "--topic", name, "--group", name)
    try:
        def waiting():  # in a long-poll: a member of the group, all 5 records committed
            state = group_state(srv.base_url, name)
            return state and len(state["members"]) == 1 and sum(
                o["committed_offset"] or 0 for o in state["offsets"]) == 5

        wait_for("the consumer to print and commit everything", waiting, consumer)
        done = consumer.interrupt()
    finally:
        consumer.kill()
    assert done.returncode == 130, explain(done)
    assert "interrupted" in done.stderr and "Traceback" not in done.stderr, explain(done)
    check_consumed(done, stored, name, lang, returncode=130)
    check_left_group(srv.base_url, name, name)


@pytest.mark.parametrize("lang", [lang_param("node"), lang_param("python")])
@pytest.mark.parametrize("api_key", [None, "not-the-key"], ids=["no-key", "wrong-key"])
def test_consumer_without_the_right_key_is_unauthorized(secure_srv, name, lang, api_key):
    proc = run(lang, "consumer", "--topic", name, "--group", name, "--max", "1",
               url=secure_srv.base_url, api_key=api_key)
    assert proc.returncode not in (0, None), explain(proc)
    assert "unauthorized" in proc.stderr, explain(proc)
    assert "Traceback" not in proc.stderr and proc.stdout == "", explain(proc)


@pytest.mark.parametrize("lang", [lang_param("node"), lang_param("python")])
def test_producer_without_a_key_is_unauthorized(secure_srv, name, lang):
    proc = run(lang, "producer", "--topic", name, url=secure_srv.base_url)
    assert proc.returncode == 1, explain(proc)
    assert "unauthorized" in proc.stderr and "Traceback" not in proc.stderr, explain(proc)


@pytest.mark.parametrize("producer_lang, consumer_lang", [
    lang_param("python", "node"), lang_param("node", "python")])
def test_with_the_right_key(secure_srv, name, producer_lang, consumer_lang):
    produced = run(producer_lang, "producer", "--topic", name, "--count", "8",
                   url=secure_srv.base_url, api_key=API_KEY)
    assert produced.returncode == 0, explain(produced)
    stored = stored_records(secure_srv.base_url, name, api_key=API_KEY)
    assert len(stored) == 8
    consumed = run(consumer_lang, "consumer", "--topic", name, "--group", name, "--max", "8",
                   url=secure_srv.base_url, api_key=API_KEY)
    check_consumed(consumed, stored, name, consumer_lang)



@pytest.mark.parametrize("lang", [
    "python",
    lang_param("node")])
def test_a_record_that_is_not_json_does_not_stop_the_consumer(srv, name, lang):
    """Someone writes plain text to the topic (the README's curl tour does): the consumer
    still prints the JSON events around it and gets past it."""
    for count in (2, None, 2):
        if count is None:  # offset 2
            resp = requests.post(f"{srv.base_url}/api/topics/{name}/records",
                                 json={"encoding": "text", "records": [{"value": "hello"}]},
                                 timeout=HTTP_TIMEOUT)
            assert resp.status_code == 200, resp.text
        else:
            produced = run("python", "producer", "--topic", name, "--count", str(count),
                           "--partitions", "1", url=srv.base_url)
            assert produced.returncode == 0, explain(produced)
    stored = stored_records(srv.base_url, name)
    assert len(stored) == 5

    proc = run(lang, "consumer", "--topic", name, "--group", name, "--max", "5",
               url=srv.base_url)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, explain(proc)
    lines = proc.stdout.splitlines()
    assert len(lines) == 5, explain(proc)
    assert f"{name}[0]@2 " in lines[2] and "hello" in lines[2], explain(proc)
    events = printed_records("\n".join(lines[:2] + lines[3:]))
    assert [(r["partition"], r["offset"]) for r in events] == [(0, 0), (0, 1), (0, 3), (0, 4)]
    check_left_group(srv.base_url, name, name)


@needs_node
def test_two_members_of_one_group_split_the_partitions_and_take_over(srv, name):
    """A Python and a Node consumer in one group: each event of the topic is printed by
    exactly one of them, before and after one of them leaves."""
    url = ["--url", srv.base_url, "--topic", name, "--group", name]
    produce = ["--topic", name, "--count", "30", "--partitions", "4"]
    assert run("python", "producer", *produce, url=srv.base_url).returncode == 0

    def members():
        state = group_state(srv.base_url, name)
        return state["members"] if state else []

    def all_committed():
        return committed(srv.base_url, name) == high_watermarks(srv.base_url, name)

    first = Running("python", *url)
    second = None
    try:
        wait_for("the first member to commit everything",
                 lambda: len(members()) == 1 and all_committed(), first)
        second = Running("node", *url)
        wait_for("the second member", lambda: len(members()) == 2, first, second)
        assert run("node", "producer", *produce, url=srv.base_url).returncode == 0
        wait_for("both members to commit everything", all_committed, first, second)
        left = first.interrupt()
        assert left.returncode == 130, explain(left)
        wait_for("the first member to leave", lambda: len(members()) == 1, second)
        assert run("python", "producer", *produce, url=srv.base_url).returncode == 0
        wait_for("the second member to commit everything", all_committed, second)
        stayed = second.interrupt()
        assert stayed.returncode == 130, explain(stayed)
    finally:
        first.kill()
        if second is not None:
            second.kill()

    stored = stored_records(srv.base_url, name)
    assert len(stored) == 90
    by_first = printed_records(left.stdout)
    by_second = printed_records(stayed.stdout)
    places = collections.Counter((r["partition"], r["offset"]) for r in by_first + by_second)
    assert set(places) == set(stored) and max(places.values()) == 1, places.most_common(3)
    assert len(by_second) >= 30  # at least the last 30, which only it could read
    check_left_group(srv.base_url, name, name)


@needs_node
def test_a_member_joining_while_a_batch_is_printed_does_not_stop_the_python_consumer(
        srv, name):
    """The Python consumer is held in the middle of a batch that spans every partition (its
    stdout pipe is full) while a Node consumer joins the group and takes partitions of that
    batch over; then it goes on. Both keep running, and together they print every record
    (at least once: the newcomer re-reads what was printed but not yet committed)."""
    url = ["--url", srv.base_url, "--topic", name, "--group", name]
    # 480 lines of ~280 bytes in one batch: more than a pipe holds (64 KiB)
    assert run("python", "producer", "--topic", name, "--count", "480", "--partitions", "3",
               url=srv.base_url).returncode == 0
    stored = stored_records(srv.base_url, name)
    assert len({p for p, _ in stored}) == 3  # every partition in the batch

    def members():
        state = group_state(srv.base_url, name)
        return state["members"] if state else []

    def all_committed():
        return committed(srv.base_url, name) == high_watermarks(srv.base_url, name)

    held = Running("python", *url, hold_after_first_line=True)
    joining = None
    try:
        assert held.first_line.wait(WAIT_TIMEOUT_S), "the first consumer printed nothing"
        joining = Running("node", *url)
        wait_for("the second member", lambda: len(members()) == 2, held, joining)
        held.release.set()  # the rest of the batch, then the next poll
        wait_for("both members to commit everything", all_committed, held, joining)
        first, second = held.interrupt(), joining.interrupt()
    finally:
        held.kill()
        if joining is not None:
            joining.kill()
    assert first.returncode == 130, explain(first)
    assert second.returncode == 130, explain(second)
    printed = printed_records(first.stdout) + printed_records(second.stdout)
    assert {(r["partition"], r["offset"]) for r in printed} == set(stored)


@pytest.mark.parametrize("lang", [lang_param("python"), lang_param("node")])
def test_a_consumer_refused_a_waiting_slot_pauses_and_polls_again(server_factory, name, lang):
    """The server lets one client (one address) have one waiting consume, and another
    session of that address holds it: the example's poll gets 429 too_many_polls, pauses
    as Retry-After says and asks again -- and prints the record once the slot is free."""
    srv = server_factory(CONSUMER_API_MAX_POLLS_PER_CLIENT="1")
    requests.post(srv.url("/api/topics"), json={"name": name, "partitions": 1}, timeout=10)
    holder = requests.post(srv.url("/api/consumers/subscribe"), timeout=10, json={
        "group_id": name + "-holder", "topics": [name]}).json()["consumer_id"]
    held = threading.Thread(daemon=True, target=lambda: requests.post(
        srv.url(f"/api/consumers/{holder}/consume"), json={"timeout_ms": 30_000}, timeout=40))
    held.start()
    wait_for("the holder to wait", lambda: metric(srv, "consumer_api_waiting_polls") == 1)
    consumer = Running(lang, "--url", srv.base_url, "--topic", name, "--group", name,
                       "--max", "1")
    try:
        wait_for("the example's poll to be refused", lambda: metric(
            srv, 'consumer_api_refusals_total{reason="client_polls"}') >= 1, consumer)
        run("python", "producer", "--topic", name, "--count", "1", url=srv.base_url)
        done = consumer.finish()
    finally:
        consumer.kill()
    held.join(40)
    assert done.returncode == 0, explain(done)
    assert len(printed_records(done.stdout)) == 1, explain(done)
