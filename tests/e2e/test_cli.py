"""The ``consumer-api`` command line against the real server (gunicorn).

Commands run in-process with click's ``CliRunner`` (``--url`` points at the live server;
``CONSUMER_API_URL``/``CONSUMER_API_KEY`` of the developer's environment are removed), except
the few that need a real process (``serve``, a consume whose duration is the point).

What a user notices: tables by default and valid JSON with ``--json`` (before or after the
command), one record per input line, consume prints exactly what it commits, groups can be
inspected and rewound, and every failure is one ``Error: ...`` line with a non-zero exit
status -- never a traceback.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from consumer_api.cli import main
from consumer_api.client import Client, Record
from tests.e2e.conftest import free_port, metric, on_store, server_env, start_server
from tests.waiting import wait_until

API_KEY = "cli-e2e-secret-key"
CLEAN_ENV = {"CONSUMER_API_URL": None, "CONSUMER_API_KEY": None,
             "CONSUMER_API_COMPRESSION": None}


ON_STORES = ("embedded", "kafka")


# -- fixtures and helpers ------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(request, tmp_path_factory, store_name):
    with on_store(request, store_name) as env, \
            start_server(tmp_path_factory.mktemp("cli-data"), **env) as server:
        yield server


@pytest.fixture(scope="module")
def secure_srv(tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("cli-secure"),
                      CONSUMER_API_API_KEYS=f"{API_KEY},another-key") as server:
        yield server


@pytest.fixture
def client(srv):
    with Client(srv.base_url) as c:
        yield c


@pytest.fixture
def name(request):
    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:8]}"


def run(url: str | None, *args, input=None, env=None):
    """Invoke the CLI in-process (``--url url`` first unless url is None)."""
    argv = ([] if url is None else ["--url", url]) + [str(a) for a in args]
    return CliRunner().invoke(main, argv, input=input, env={**CLEAN_ENV, **(env or {})})


def ok(result) -> str:
    """The command succeeded: its stdout."""
    assert result.exit_code == 0 and result.exception is None, \
        f"exit {result.exit_code} ({result.exception!r})\n{result.output}"
    assert "Traceback" not in result.output
    return result.stdout


def one_line_error(result, *fragments: str) -> str:
    """The command failed as promised: non-zero exit status, nothing but one ``Error: ...``
    line (on stderr), no traceback. Returns that line."""
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), \
        f"an unhandled {result.exception!r} escaped:\n{result.output}"
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert result.stdout == "", result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def usage_error(result, *fragments: str) -> str:
    """A usage error: exit 2, click's usage hint and one ``Error: ...`` line, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def table(stdout: str) -> list[list[str]]:
    """Rows of a printed table (header and rule included), split on runs of spaces."""
    return [line.split() for line in stdout.splitlines() if line.strip()]


def group_offsets(srv, group: str) -> dict:
    out = json.loads(ok(run(srv.base_url, "groups", "describe", group, "--json")))
    return {(o["topic"], o["partition"]): (o["committed_offset"], o["lag"])
            for o in out["offsets"]}


# -- topics --------------------------------------------------------------------------------

def test_topics_create_list_describe_delete_as_tables(srv, client, name):
    rows = table(ok(run(srv.base_url, "topics", "create", name, "--partitions", 3,
                        "--retention-ms", 3_600_000)))
    assert rows[0] == ["topic", "partitions", "retention_ms", "retention_bytes", "segment_bytes"]
    assert rows[2][:3] == [name, "3", "3600000"]
    assert client.describe_topic(name)["config"]["retention_ms"] == 3_600_000

    client.produce(name, ["a", "b", "c", "d"])
    rows = table(ok(run(srv.base_url, "topics", "list")))
    assert rows[0] == ["topic", "partitions", "records"]
    assert [name, "3", "4"] in rows

    out = ok(run(srv.base_url, "topics", "describe", name))
    assert out.splitlines()[0].startswith(f"topic {name}: ")
    assert "retention_ms=3600000" in out.splitlines()[0]
    rows = table(out)
    assert ["partition", "log_start_offset", "high_watermark", "size_bytes"] in rows
    described = {r[0]: r for r in rows if r[0] in ("0", "1", "2")}
    assert sorted(described) == ["0", "1", "2"]
    assert sum(int(r[2]) for r in described.values()) == 4

    # without --yes it asks, and "no" keeps the topic
    refused = run(srv.base_url, "topics", "delete", name, input="n\n")
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert client.describe_topic(name)["name"] == name
    rows = table(ok(run(srv.base_url, "topics", "delete", name, "--yes")))
    assert [name, "deleted"] in rows
    assert name not in {t["name"] for t in client.list_topics()}
    # "yes" at the prompt deletes too
    client.create_topic(name)
    ok(run(srv.base_url, "topics", "delete", name, input="y\n"))
    assert name not in {t["name"] for t in client.list_topics()}


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_output_before_and_after_the_command(srv, client, name, where):
    def cli(*args):
        args = ("--json", *args) if where == "before" else (*args, "--json")
        return json.loads(ok(run(srv.base_url, *args)))

    created = cli("topics", "create", name, "--partitions", 2)
    assert created["name"] == name and created["partitions"] == 2
    listed = cli("topics", "list")
    assert isinstance(listed, list)
    assert [p["partition"] for p in next(t for t in listed if t["name"] == name)["partitions"]] \
        == [0, 1]
    described = cli("topics", "describe", name)
    assert described["name"] == name and len(described["partitions"]) == 2

    summary = json.loads(ok(run(srv.base_url, *(("--json", "produce", name) if where == "before"
                                                 else ("produce", name, "--json")),
                                input="x\ny\n")))
    assert summary["topic"] == name and summary["records"] == 2
    assert sum(summary["partitions"].values()) == 2

    consumed = ok(run(srv.base_url, *(("--json", "consume", name) if where == "before"
                                      else ("consume", name, "--json")),
                      "--group", name, "--from-beginning", "--max", 2))
    records = [json.loads(line) for line in consumed.splitlines()]
    assert sorted(r["value"] for r in records) == ["x", "y"]
    assert all(r["topic"] == name and r["key"] is None for r in records)

    groups = cli("groups", "list")
    assert any(g["group_id"] == name for g in groups)
    group = cli("groups", "describe", name)
    assert group["group_id"] == name and group["members"] == []
    assert sum(o["committed_offset"] or 0 for o in group["offsets"]) == 2
    preview = cli("groups", "reset", name, "--to-earliest")
    assert preview["executed"] is False
    assert {(r["partition"], r["new"]) for r in preview["partitions"]} == {(0, 0), (1, 0)}
    assert sum(r["lag_after"] for r in preview["partitions"]) == 2
    reset = cli("groups", "reset", name, "--to-earliest", "--execute")
    assert reset["executed"] is True and {r["new"] for r in reset["partitions"]} == {0}
    assert sum(o["committed_offset"] for o in cli("groups", "describe", name)["offsets"]) == 0

    deleted = cli("topics", "delete", name, "--yes")
    assert deleted["topic"] == name


# -- produce -------------------------------------------------------------------------------

def test_produce_from_stdin_one_record_per_line(srv, client, name):
    client.create_topic(name)
    lines = ["first", "second with spaces", "unicode \u00e9\u2713\U0001f600", "{\"not\": 1}"]
    rows = table(ok(run(srv.base_url, "produce", name, input="\n".join(lines) + "\n")))
    assert rows[0] == ["topic", "partition", "records"]
    assert [name, "0", "4"] in rows
    assert [r.value for r in client.read(name, 0, value_format="text")] == lines


def test_produce_from_a_file(srv, client, name, tmp_path):
    client.create_topic(name, partitions=2)
    source = tmp_path / "input.txt"
    source.write_bytes(b"one\r\ntwo\nthree\n\xff\xfe raw\nlast-without-newline")
    ok(run(srv.base_url, "produce", name, source))
    values = sorted(r.value for p in (0, 1) for r in client.read(name, p))
    assert values == sorted([b"one", b"two", b"three", b"\xff\xfe raw",
                             b"last-without-newline"])


def test_produce_json_with_key_separator(srv, client, name):
    client.create_topic(name, partitions=3)
    text = 'user-1|{"a": 1, "b": [1, 2]}\nuser-2|"text"\nuser-1|null\nuser-3|  42 \n'
    ok(run(srv.base_url, "produce", name, "--format", "json", "--key-separator", "|",
           input=text))
    got = [r for p in range(3) for r in client.read(name, p)]
    assert sorted((r.key, r.value) for r in got) == sorted([
        (b"user-1", b'{"a":1,"b":[1,2]}'), (b"user-2", b'"text"'),
        (b"user-1", b"null"), (b"user-3", b"42")])
    # one key, one partition
    assert len({r.partition for r in got if r.key == b"user-1"}) == 1


def test_produce_invalid_json_line_is_a_one_line_error(srv, client, name):
    client.create_topic(name)
    bad = run(srv.base_url, "produce", name, "--format", "json",
              input='{"ok": 1}\n{"ok": 2}\n{not json\n{"ok": 4}\n')
    one_line_error(bad, "line 3", "JSON")
    assert client.describe_topic(name)["partitions"][0]["high_watermark"] == 0
    no_sep = run(srv.base_url, "produce", name, "--key-separator", "=", input="k=v\nnokey\n")
    one_line_error(no_sep, "line 2", "separator")


@pytest.fixture
def terminal(monkeypatch):
    """Make click's progress bar render as on a terminal (stderr is a buffer here)."""
    from click import _termui_impl
    monkeypatch.setattr(_termui_impl, "isatty", lambda _stream: True)


def test_produce_progress_bar_on_stderr(srv, client, name, tmp_path, terminal):
    client.create_topic(name)
    n = 12_000  # more than one batch of lines
    source = tmp_path / "many.txt"
    source.write_text("".join(f"line {i}\n" for i in range(n)), encoding="utf-8")
    result = run(srv.base_url, "produce", name, source, "--progress")
    out = ok(result)
    assert [name, "0", str(n)] in table(out)
    assert "producing to" not in out and "%" not in out  # the bar stays off stdout
    assert f"producing to {name}" in result.stderr
    assert "[####################################]  100%" in result.stderr
    assert " 0%" in result.stderr or "  0%" in result.stderr  # it moved: it started at 0
    assert client.describe_topic(name)["partitions"][0]["high_watermark"] == n
    assert client.read(name, 0, offset=n - 1)[0].value == f"line {n - 1}".encode()

    # --no-progress: no bar at all
    quiet = run(srv.base_url, "produce", name, source, "--no-progress")
    ok(quiet)
    assert quiet.stderr == ""
    assert client.describe_topic(name)["partitions"][0]["high_watermark"] == 2 * n


def test_produce_progress_without_a_terminal_shows_the_label_once(srv, client, name,
                                                                  tmp_path):
    client.create_topic(name)
    source = tmp_path / "few.txt"
    source.write_text("a\nb\nc\n", encoding="utf-8")
    result = run(srv.base_url, "produce", name, source, "--progress")
    ok(result)
    assert result.stderr.count(f"producing to {name}") == 1
    assert client.describe_topic(name)["partitions"][0]["high_watermark"] == 3


def test_produce_progress_from_stdin_shows_no_fake_total(srv, client, name, terminal):
    client.create_topic(name)
    result = run(srv.base_url, "produce", name, "--progress", input="a\nb\n")
    ok(result)
    assert client.describe_topic(name)["partitions"][0]["high_watermark"] == 2
    assert "/0" not in result.stderr, result.stderr


# -- compression ---------------------------------------------------------------------------

LINES = "".join(f'{{"order_id":{i},"status":"shipped","customer":"c-{i % 7}"}}\n'
                for i in range(500))


def record_exchanges(wire: list) -> list:
    return [w for w in wire if w["path"].endswith(("/records", "/consume"))]


def test_produce_and_consume_compress_by_default(srv, client, name, wire):
    client.create_topic(name)
    ok(run(srv.base_url, "produce", name, "--format", "json", input=LINES))
    out = ok(run(srv.base_url, "consume", name, "--group", name, "--from-beginning",
                 "--max", 500))
    assert out.splitlines() == [f"{name}[0]@{i}\t{line}"
                                for i, line in enumerate(LINES.splitlines())]
    produce, *consumes = record_exchanges(wire)
    assert produce["sent_coding"] == "zstd"
    assert consumes and all(w["accept"] == "zstd, gzip" for w in consumes)
    assert any(w["got_coding"] == "zstd" and w["wire_bytes"] * 3 < w["body_bytes"]
               for w in consumes)


@pytest.mark.parametrize("how", [["--compression", "none"], "env"])
def test_compression_none_sends_and_asks_for_nothing_compressed(srv, client, name, wire, how):
    client.create_topic(name)
    options, env = (how, None) if how != "env" else ([], {"CONSUMER_API_COMPRESSION": "none"})
    ok(run(srv.base_url, *options, "produce", name, "--format", "json", input=LINES, env=env))
    ok(run(srv.base_url, *options, "consume", name, "--group", name, "--from-beginning",
           "--max", 500, env=env))
    exchanges = record_exchanges(wire)
    assert len(exchanges) >= 2
    for w in exchanges:
        assert w["sent_coding"] is None and w["got_coding"] is None
        assert w["accept"] == "identity"


def test_compression_gzip_compresses_what_it_sends_with_gzip(srv, client, name, wire):
    client.create_topic(name)
    ok(run(srv.base_url, "--compression", "gzip", "produce", name, input=LINES))
    (produce,) = record_exchanges(wire)
    assert produce["sent_coding"] == "gzip"
    assert len(client.read(name, 0, max_records=1000)) == 500


# -- consume -------------------------------------------------------------------------------

def test_consume_max_prints_exactly_n_and_commits_exactly_those(srv, client, name):
    client.create_topic(name)
    ok(run(srv.base_url, "produce", name, input="".join(f"v{i}\n" for i in range(10))))

    first = run(srv.base_url, "consume", name, "--group", name, "--from-beginning", "--max", 4)
    assert ok(first).splitlines() == [f"{name}[0]@{i}\tv{i}" for i in range(4)]
    assert "4 record(s) printed and committed" in first.stderr
    assert group_offsets(srv, name) == {(name, 0): (4, 6)}

    # the same group continues right after them (no --from-beginning needed: committed)
    second = run(srv.base_url, "consume", name, "--group", name, "--max", 3)
    assert ok(second).splitlines() == [f"{name}[0]@{i}\tv{i}" for i in range(4, 7)]
    assert group_offsets(srv, name) == {(name, 0): (7, 3)}
    assert client.describe_group(name)["members"] == []  # it left the group


def test_consume_filter_prints_the_matches_and_commits_past_the_rest(srv, client, name):
    client.create_topic(name)
    lines = "".join(f"{'user' if i % 4 == 0 else 'bot'}-{i}|v{i}\n" for i in range(10))
    ok(run(srv.base_url, "produce", name, "--key-separator", "|", input=lines))
    result = run(srv.base_url, "consume", name, "--group", name, "--from-beginning",
                 "--idle-exit-ms", 0, "--filter", '{"key": {"prefix": "user-"}}')
    assert ok(result).splitlines() == [f"{name}[0]@{i} user-{i}\tv{i}" for i in (0, 4, 8)]
    assert group_offsets(srv, name) == {(name, 0): (10, 0)}  # the bots are committed too


def test_consume_filter_that_is_not_json_is_a_usage_error(srv, client, name):
    result = run(srv.base_url, "consume", name, "--group", name, "--filter", "{key")
    assert result.exit_code == 2 and "not JSON" in result.output


def test_consume_filter_the_server_refuses_is_one_clear_line(srv, client, name):
    client.create_topic(name)
    result = run(srv.base_url, "consume", name, "--group", name, "--idle-exit-ms", 0,
                 "--filter", '{"key": {"starts": "x"}}')
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "filter.key" in result.output and "unknown field 'starts'" in result.output


@pytest.mark.embedded_only  # (Kafka forgets an empty group's assignor)
def test_consume_chooses_the_groups_assignor(srv, client, name):
    client.create_topic(name)
    ok(run(srv.base_url, "produce", name, input="v\n"))
    ok(run(srv.base_url, "consume", name, "--group", name, "--from-beginning", "--max", 1,
           "--assignor", "sticky"))
    assert client.describe_group(name)["assignor"] == "sticky"


def test_consume_max_on_several_partitions_commits_what_it_printed(srv, client, name):
    client.create_topic(name, partitions=3)
    ok(run(srv.base_url, "produce", name, input="".join(f"v{i}\n" for i in range(30))))
    out = ok(run(srv.base_url, "consume", name, "--group", name, "--from-beginning",
                 "--max", 7, "--format", "base64", "--json"))
    printed = [json.loads(line) for line in out.splitlines()]
    assert len(printed) == 7
    last = {}
    for rec in printed:
        last[rec["partition"]] = max(last.get(rec["partition"], -1), rec["offset"])
    committed = {p: c for (t, p), (c, _lag) in group_offsets(srv, name).items()
                 if c is not None}
    assert committed == {p: o + 1 for p, o in last.items()}


def test_consume_key_and_value_rendering(srv, client, name):
    client.create_topic(name)
    ok(run(srv.base_url, "produce", name, "--format", "json", "--key-separator", "=",
           input='k={"a": [1, 2]}\n'))
    text = ok(run(srv.base_url, "consume", name, "-g", f"{name}-t", "--from-beginning",
                  "--max", 1))
    assert text.splitlines() == [f'{name}[0]@0 k\t{{"a":[1,2]}}']
    as_json = ok(run(srv.base_url, "--json", "consume", name, "-g", f"{name}-j",
                     "--from-beginning", "--max", 1, "--format", "json"))
    rec = json.loads(as_json)
    assert (rec["key"], rec["value"], rec["offset"]) == ("k", {"a": [1, 2]}, 0)


def test_consume_idle_exit_ms_ends_when_idle(srv, client, name):
    client.create_topic(name)
    client.produce(name, ["a", "b", "c"])
    started = time.monotonic()
    result = run(srv.base_url, "consume", name, "--group", name, "--from-beginning",
                 "--idle-exit-ms", 300)
    elapsed = time.monotonic() - started
    assert ok(result).splitlines() == [f"{name}[0]@{i}\t{v}" for i, v in enumerate("abc")]
    assert "3 record(s) printed and committed" in result.stderr
    assert elapsed < 5, elapsed
    # nothing new: it ends at once with nothing printed
    started = time.monotonic()
    again = run(srv.base_url, "consume", name, "--group", name, "--idle-exit-ms", 200)
    assert ok(again) == "" and "0 record(s)" in again.stderr
    assert time.monotonic() - started < 5
    assert group_offsets(srv, name) == {(name, 0): (3, 0)}


def test_consume_ctrl_c_leaves_the_group_and_keeps_what_it_printed(srv, client, name,
                                                                   monkeypatch):
    from consumer_api.client.consumer import Consumer
    client.create_topic(name)
    client.produce(name, [f"v{i}" for i in range(6)])
    real_poll = Consumer.poll
    polls = []

    def poll_then_ctrl_c(self, *args, **kwargs):
        polls.append(1)
        if len(polls) > 1:
            raise KeyboardInterrupt  # Ctrl-C while waiting for the second batch
        return real_poll(self, *args, **kwargs)

    monkeypatch.setattr(Consumer, "poll", poll_then_ctrl_c)
    result = run(srv.base_url, "consume", name, "-g", name, "--from-beginning")
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output
    assert "interrupted" in result.stderr
    assert result.stdout.splitlines() == [f"{name}[0]@{i}\tv{i}" for i in range(6)]
    assert client.describe_group(name)["members"] == []
    assert group_offsets(srv, name) == {(name, 0): (6, 0)}


def _cli_command() -> list:
    script = Path(sys.executable).with_name("consumer-api")
    return [str(script)] if script.exists() else [sys.executable, "-m", "consumer_api.cli"]


def test_consume_idle_exit_ms_zero_ends_at_once(srv, client, name):
    client.create_topic(name)
    env = server_env("unused", CONSUMER_API_DATA_DIR=None)
    try:
        proc = subprocess.run(
            [*_cli_command(), "--url", srv.base_url, "consume", name, "--group", name,
             "--idle-exit-ms", "0"], env=env, capture_output=True, text=True, timeout=4)
    except subprocess.TimeoutExpired:
        pytest.fail("consume --idle-exit-ms 0 was still waiting after 4 s")
    assert proc.returncode == 0, proc.stderr


def test_consume_waits_out_a_full_share_of_polls_instead_of_failing(server_factory, name):
    """The server lets this client (one address) have one waiting consume, and another of
    its consumers holds it: the CLI's poll gets 429 too_many_polls, pauses as Retry-After
    says and asks again -- and prints the record once the slot is free."""
    srv = server_factory(CONSUMER_API_MAX_POLLS_PER_CLIENT="1")
    with Client(srv.base_url) as other:
        other.create_topic(name)
        holder = other.consumer(f"{name}-holder", [name])
        holder.subscribe()
        held = []
        waiting = threading.Thread(target=lambda: held.extend(holder.poll(timeout_ms=20_000)),
                                   daemon=True)
        waiting.start()
        wait_until(lambda: metric(srv, "consumer_api_waiting_polls") == 1, "the holder waits")
        env = server_env("unused", CONSUMER_API_DATA_DIR=None)
        proc = subprocess.Popen(
            [*_cli_command(), "--url", srv.base_url, "consume", name, "--group", name,
             "--from-beginning", "--max", "1"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: metric(srv, 'consumer_api_refusals_total{reason="client_polls"}')
                       >= 1, "the CLI's poll was refused")
            assert proc.poll() is None, proc.communicate()
            other.produce(name, ["after the refusal"])  # ends the holder's wait: a free slot
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
        waiting.join(10)
        holder.close()
    assert proc.returncode == 0, err
    assert out.splitlines() == [f"{name}[0]@0\tafter the refusal"]
    assert [r.value for r in held] == [b"after the refusal"]



def test_consume_without_a_group_reads_and_leaves_nothing_behind(srv, client, name):
    client.create_topic(name, partitions=2)
    client.produce(name, [Record(f"p{p}-{i}", partition=p) for p in (0, 1) for i in range(4)])
    groups_before = {g["group_id"] for g in client.list_groups()}

    everything = ok(run(srv.base_url, "consume", name)).splitlines()
    assert everything == [f"{name}[{p}]@{i}\tp{p}-{i}" for p in (0, 1) for i in range(4)]
    last_two = ok(run(srv.base_url, "consume", name, "-p", 1, "-o", "-2")).splitlines()
    assert last_two == [f"{name}[1]@2\tp1-2", f"{name}[1]@3\tp1-3"]
    assert ok(run(srv.base_url, "consume", name, "-p", 0, "-o", 3)).splitlines() == [
        f"{name}[0]@3\tp0-3"]
    assert ok(run(srv.base_url, "consume", name, "-o", "end")) == ""
    assert len(ok(run(srv.base_url, "consume", name, "--max", 3)).splitlines()) == 3
    assert {g["group_id"] for g in client.list_groups()} == groups_before


def test_consume_from_a_time_as_iso_or_epoch_ms(srv, client, name):
    client.create_topic(name)
    now_ms = int(time.time() * 1000)  # (a Kafka broker refuses records from the future)
    client.produce(name, [Record("old", timestamp=now_ms - 86_400_000),
                          Record("new", timestamp=now_ms)])
    hour_ago = now_ms - 3_600_000
    iso = datetime.datetime.fromtimestamp(hour_ago / 1000, datetime.timezone.utc).isoformat()
    for when in (iso.replace("+00:00", "Z"), str(hour_ago)):
        out = ok(run(srv.base_url, "consume", name, "--timestamp", when))
        assert out.splitlines() == [f"{name}[0]@1\tnew"], when


def test_consume_no_commit_leaves_the_group_where_it_was(srv, client, name):
    client.create_topic(name)
    client.produce(name, ["a", "b", "c"])
    ok(run(srv.base_url, "consume", name, "-g", name, "--from-beginning", "--max", 1))
    peek = run(srv.base_url, "consume", name, "-g", name, "--no-commit", "--max", 2)
    assert ok(peek).splitlines() == [f"{name}[0]@1\tb", f"{name}[0]@2\tc"]
    assert "2 record(s) printed" in peek.stderr and "committed" not in peek.stderr
    assert group_offsets(srv, name) == {(name, 0): (1, 2)}


def test_consume_format_string_and_binary_never_raw(srv, client, name):
    client.create_topic(name)
    client.produce(name, [Record(b"\x00\x1b[31mred\xff\n", key="k1", headers={"h": "v"},
                                 timestamp=1_700_000_000_000)])
    text = ok(run(srv.base_url, "consume", name))
    assert text == f"{name}[0]@0 k1\t\\x00\\x1b[31mred\\xff\\n\n"
    assert "\x1b" not in text and "\x00" not in text
    formatted = ok(run(srv.base_url, "consume", name, "-f", "%t|%p|%o|%T|%k|%h|%K|%S|%%\\n"))
    assert formatted == f"{name}|0|0|1700000000000|k1|h=v|2|11|%\n\n"


def test_produce_to_a_partition_with_headers(srv, client, name):
    client.create_topic(name, partitions=3)
    ok(run(srv.base_url, "produce", name, "--partition", 2, "-H", "source=cli", "-H", "n=1",
           input="one\ntwo\n"))
    [rec, rec2] = client.read(name, 2, value_format="text")
    assert (rec.value, rec2.value) == ("one", "two")
    assert rec.headers == {"source": "cli", "n": "1"}
    assert client.describe_topic(name)["partitions"][0]["high_watermark"] == 0


# -- groups --------------------------------------------------------------------------------

def test_groups_list_describe_reset_then_replay(srv, client, name):
    client.create_topic(name)
    client.produce(name, [f"v{i}" for i in range(5)])
    ok(run(srv.base_url, "consume", name, "-g", name, "--from-beginning", "--max", 5))

    rows = table(ok(run(srv.base_url, "groups", "list")))
    assert rows[0] == ["group", "state", "generation", "members"]
    [row] = [r for r in rows if r[0] == name]
    assert row[1] == "Empty" and row[3] == "0"

    out = ok(run(srv.base_url, "groups", "describe", name))
    assert out.splitlines()[0].startswith(f"group {name}: Empty")
    assert [name, "0", "5", "5", "0"] in table(out)

    # a group with a member cannot be reset
    with client.consumer(name, name) as consumer:
        described = ok(run(srv.base_url, "groups", "describe", name))
        assert consumer.consumer_id in described and "1 member(s)" in described
        one_line_error(run(srv.base_url, "groups", "reset", name, "--to-earliest",
                           "--execute"), "group_not_empty")

    preview = run(srv.base_url, "groups", "reset", name, "--to-earliest")
    rows = table(ok(preview))
    assert rows[0] == ["topic", "partition", "current", "new", "lag", "after"]
    assert [name, "0", "5", "0", "5"] in rows
    assert "preview only: nothing changed" in preview.stderr
    assert group_offsets(srv, name) == {(name, 0): (5, 0)}  # a preview changes nothing
    ok(run(srv.base_url, "groups", "reset", name, "--to-earliest", "--execute"))
    assert group_offsets(srv, name) == {(name, 0): (0, 5)}
    replay = ok(run(srv.base_url, "consume", name, "-g", name, "--max", 2))
    assert replay.splitlines() == [f"{name}[0]@0\tv0", f"{name}[0]@1\tv1"]

    ok(run(srv.base_url, "groups", "reset", name, "--to-latest", "--topic", name, "--execute"))
    assert group_offsets(srv, name) == {(name, 0): (5, 0)}


def test_groups_reset_targets_preview_then_execute_and_delete(srv, client, name):
    client.create_topic(name, partitions=2)
    client.produce(name, [Record(f"v{i}", partition=p, timestamp=1_700_000_000_000 + i)
                          for p in (0, 1) for i in range(10)])
    client.set_group_offsets(name, {(name, 0): 5, (name, 1): 5})

    def plan(*args):
        return {(r["partition"]): (r["current"], r["new"], r["lag_after"]) for r in json.loads(
            ok(run(srv.base_url, "--json", "groups", "reset", name, *args)))["partitions"]}

    assert plan("--to-offset", 7) == {0: (5, 7, 3), 1: (5, 7, 3)}
    assert plan("--to-offset", 70) == {0: (5, 10, 0), 1: (5, 10, 0)}  # within the range
    assert plan("--shift-by", -2, "--topic", f"{name}:1") == {1: (5, 3, 7)}
    assert plan("--to-datetime", "1700000000008") == {0: (5, 8, 2), 1: (5, 8, 2)}
    assert group_offsets(srv, name) == {(name, 0): (5, 5), (name, 1): (5, 5)}  # previews
    ok(run(srv.base_url, "groups", "reset", name, "--shift-by", 3, "--execute"))
    assert group_offsets(srv, name) == {(name, 0): (8, 2), (name, 1): (8, 2)}

    rows = table(ok(run(srv.base_url, "groups", "list")))
    assert any(r[0] == name for r in rows)
    ok(run(srv.base_url, "groups", "delete", name, "--yes"))
    one_line_error(run(srv.base_url, "groups", "describe", name), "group_not_found")


def test_empty_cells_show_a_dash(srv, client, name):
    client.create_topic(name, partitions=2)
    client.produce(name, [Record("v", partition=0)])
    client.set_group_offsets(name, {(name, 0): 1})
    with client.consumer(name, name):  # the group reads partition 1 too: nothing committed
        rows = table(ok(run(srv.base_url, "groups", "describe", name)))
    assert [name, "1", "-", "0", "-"] in rows


# -- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("args, fragments", [
    (("topics", "describe", "{missing}"), ("{missing}", "topic_not_found")),
    (("topics", "delete", "{missing}", "--yes"), ("topic_not_found",)),
    (("produce", "{missing}"), ("{missing}", "topic_not_found")),
    (("consume", "{missing}", "--group", "g", "--idle-exit-ms", "100"), ("topic_not_found",)),
    (("topics", "create", "{missing}", "--partitions", "0"), ("partitions", "invalid_request")),
    (("topics", "create", "bad/name"), ("invalid_request",)),
    (("groups", "describe", "{missing}"), ("group_not_found",)),
    (("groups", "reset", "{missing}", "--to-earliest", "--topic", "{missing}"),
     ("topic",)),
], ids=["describe", "delete", "produce", "consume", "partitions-0", "bad-name",
        "group", "reset"])
def test_server_errors_are_one_line(srv, name, args, fragments):
    missing = f"{name}-missing"
    result = run(srv.base_url, *(a.format(missing=missing) for a in args), input="x\n")
    one_line_error(result, *(f.format(missing=missing) for f in fragments))


def test_server_down_is_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("topics", "list"), ("produce", "t"), ("consume", "t", "-g", "g"),
                 ("groups", "list")):
        line = one_line_error(run(url, *args, input="x\n"), "cannot reach", url)
        assert line == f"Error: cannot reach {url}: connection refused"


@pytest.mark.parametrize("args, fragments", [
    (("topics", "create", "t", "--partitions", "abc"), ("--partitions", "not a valid integer")),
    (("consume", "t", "--no-commit"), ("--no-commit", "without --group")),
    (("consume", "t", "-g", "g", "-p", "0"), ("--partition", "with --group")),
    (("consume", "t", "-o", "1", "--timestamp", "5"), ("--offset or --timestamp",)),
    (("consume", "t", "-o", "middle"), ("--offset", "not a number")),
    (("consume", "t", "--timestamp", "yesterday"), ("--timestamp", "ISO 8601")),
    (("consume", "t", "-f", "%x"), ("--format", "%x")),
    (("produce", "t", "--header", "novalue"), ("--header", "NAME=VALUE")),
    (("groups", "reset", "g"), ("give one of",)),
    (("groups", "reset", "g", "--to-earliest", "--to-latest"), ("give one of",)),
    (("consume", "t", "-g", "g", "--max", "0"), ("--max",)),
    (("no-such-command",), ("No such command",)),
    (("topics", "frobnicate"), ("No such command",)),
    (("produce", "t", "/no/such/file.txt"), ("/no/such/file.txt",)),
    (("groups", "reset", "g", "--to", "middle"), ("--to",)),
], ids=["partitions-abc", "no-commit-alone", "partition-with-group", "offset-and-timestamp",
        "offset-word", "timestamp-word", "format-placeholder", "header", "reset-no-target",
        "reset-two-targets", "max-0", "command", "subcommand", "file", "reset-to"])
def test_usage_errors(srv, args, fragments):
    usage_error(run(srv.base_url, *args), *fragments)


def test_url_from_the_environment(srv, name):
    ok(run(None, "topics", "create", name, env={"CONSUMER_API_URL": srv.base_url}))
    listed = json.loads(ok(run(None, "topics", "list", "--json",
                               env={"CONSUMER_API_URL": srv.base_url})))
    assert name in {t["name"] for t in listed}


def test_api_key_option_and_environment(secure_srv, name):
    url = secure_srv.base_url
    one_line_error(run(url, "topics", "list"), "unauthorized", "401")
    one_line_error(run(url, "--api-key", "wrong", "topics", "list"), "unauthorized")
    one_line_error(run(url, "topics", "list", env={"CONSUMER_API_KEY": "wrong"}),
                   "unauthorized")
    ok(run(url, "--api-key", API_KEY, "topics", "create", name))
    listed = json.loads(ok(run(url, "--json", "topics", "list",
                               env={"CONSUMER_API_KEY": API_KEY})))
    assert name in {t["name"] for t in listed}
    ok(run(url, "produce", name, input="secret\n", env={"CONSUMER_API_KEY": API_KEY}))
    out = ok(run(url, "--api-key", API_KEY, "consume", name, "-g", name, "--from-beginning",
                 "--max", 1))
    assert out.splitlines() == [f"{name}[0]@0\tsecret"]
    one_line_error(run(url, "consume", name, "-g", name, "--max", 1), "unauthorized")


# -- serve ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_script_as_readme_says(shell):
    env = {**server_env("unused", CONSUMER_API_DATA_DIR=None),
           "_CONSUMER_API_COMPLETE": f"{shell}_source"}
    done = subprocess.run(_cli_command(), env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert "_CONSUMER_API_COMPLETE" in done.stdout and "consumer-api" in done.stdout


def test_serve_help():
    out = ok(run(None, "serve", "--help"))
    assert "--bind" in out and "--data-dir" in out and "--threads" in out
    top = ok(run(None, "--help"))
    for command in ("serve", "topics", "produce", "consume", "groups"):
        assert command in top


def test_serve_starts_a_server_and_stops_on_sigterm(tmp_path):
    port = free_port()
    data_dir = tmp_path / "served"
    log_path = tmp_path / "serve.log"
    env = server_env(data_dir, CONSUMER_API_DATA_DIR=None)
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*_cli_command(), "serve", "--bind", f"127.0.0.1:{port}", "--data-dir",
             str(data_dir), "--threads", "8"],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            try:
                resp = requests.get(base + "/api/health/ready", timeout=(0.25, 2),
                                    headers={"Connection": "close"})
                if resp.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.05)  # readiness polling only
        # the installed command, as a process of its own (its connection ends with it)
        created = subprocess.run([*_cli_command(), "--url", base, "--json", "topics", "create",
                                  "served"], env=env, capture_output=True, text=True,
                                 timeout=10)
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["name"] == "served"
        assert (data_dir).is_dir() and any(data_dir.iterdir())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, log_path.read_text(errors="replace")
        assert f"consumer-api on http://127.0.0.1:{port}" in log_path.read_text()
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


# -- topic statistics ----------------------------------------------------------------------

def test_topics_stats_per_bucket_and_by_key(srv, client, name):
    client.create_topic(name, 2)
    base = (int(time.time() * 1000) - 3_600_000) // 60_000 * 60_000  # an hour ago
    client.produce(name, [Record("v", key="hot", partition=0, timestamp=base + 1_000),
                          Record("v", key="hot", partition=1, timestamp=base + 61_000),
                          Record("v", key="hot", partition=1, timestamp=base + 62_000),
                          Record("v", key=b"\xff", partition=0, timestamp=base + 63_000),
                          Record("v", partition=0, timestamp=base + 64_000)])
    start = datetime.datetime.fromtimestamp(base / 1000, datetime.timezone.utc)
    iso = start.strftime("%Y-%m-%dT%H:%M:%S")
    out = ok(run(srv.base_url, "topics", "stats", name, "--from", iso, "--to", base + 120_000,
                 "--bucket", "1m"))
    lines = out.splitlines()
    assert lines[0].startswith(f"topic {name}: 5 records")
    rows = table("\n".join(lines[1:]))
    assert rows[0] == ["start", "records", "bytes"]
    assert [(r[0], r[1]) for r in rows[2:]] == [(iso + "Z", "1"), (
        (start + datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "4")]
    assert rows[3][-1] == "#" * 40 and rows[2][-1] == "#" * 10  # bars to scale
    one = json.loads(ok(run(srv.base_url, "topics", "stats", name, "--from", base, "--to",
                            base + 120_000, "--partition", 1, "--json")))
    assert [b["records"] for b in one["buckets"]] == [0, 2]

    out = ok(run(srv.base_url, "topics", "stats", name, "--from", base, "--to", base + 120_000,
                 "--keys", "--top", 2))
    rows = table(out)
    assert rows[0][:5] == ["topic", f"{name}:", "5", "records", "with"]
    assert rows[1] == ["key", "records", "share"]
    assert rows[3:] == [["hot", "3", "60.0%"], ["(null)", "1", "20.0%"]]
    keys = json.loads(ok(run(srv.base_url, "topics", "stats", name, "--from", base, "--to",
                             base + 120_000, "--keys", "--json")))
    assert {k["key"]: k["records"] for k in keys["keys"]} == {"aG90": 3, "/w==": 1, None: 1}


@pytest.mark.parametrize("args, fragments", [
    (["--bucket", "soon"], ["--bucket", "not a duration"]),
    (["--from", "yesterday"], ["--from", "neither epoch ms nor an ISO 8601 time"]),
    (["--top", "3"], ["--top goes with --keys"]),
    (["--keys", "--bucket", "1m"], ["--bucket"]),
])
def test_topics_stats_usage_errors(srv, client, name, args, fragments):
    client.create_topic(name, 1)
    usage_error(run(srv.base_url, "topics", "stats", name, *args), *fragments)


def test_topics_stats_errors_are_one_line(srv, client, name):
    client.create_topic(name, 1)
    one_line_error(run(srv.base_url, "topics", "stats", name, "--from", 10, "--to", 5),
                   "to_ms must be after from_ms", "invalid_request")
    one_line_error(run(srv.base_url, "topics", "stats", f"{name}-missing"), "topic_not_found")
