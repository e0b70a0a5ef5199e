"""nginx in front of the real server, configured by ``deploy/nginx.conf`` itself.

nginx is installed by ``make test`` (``deploy/install-test-packages.sh``, the one place the
tests' system packages are installed); where it is missing the module is skipped with the
reason. gunicorn starts through the e2e harness with
an API key; nginx runs ``deploy/nginx.conf`` with only the listen port, the upstream address
and the pid, log and temp paths substituted, on free loopback ports, in the foreground
(``daemon off``), and both are killed at teardown.

Through nginx: a missing or wrong key is 401 with ``WWW-Authenticate`` passed through; a
topic is created and records produced with the key; a waiting long-poll is woken by a
produce and its answer arrives at once (nginx does not buffer it); the body limits of nginx
and the server are the same (a body of exactly the limit reaches the server, one byte more
is 413 with the API's error body); ``X-Request-ID`` is the client's when sent, nginx's
otherwise, and the same id is in nginx's and the server's access logs; ``/metrics`` and
Swagger are refused outside the allowed networks; an unreachable server is a JSON 502; a
SIGTERM answers a poll waiting through nginx at once. The config itself is checked too: a
read timeout above the longest poll (a real 300 s poll would make the test last minutes),
no buffering, limits aligned with the server's, upstream keepalive shorter than gunicorn's.

Two deployment hazards of the server are pinned too: a consume abandoned by its client
(through nginx) must not swallow the next records, and SIGHUP with a request in flight must
not stop the server.
"""
from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from consumer_api.client import Client
from consumer_api.config import Config
from consumer_api.zstd_codec import zstd
from tests.e2e.conftest import (_SERVERS_ATTR, REPO_ROOT, free_port,
                                reset_mid_response, start_server)
from tests.waiting import wait_until

NGINX_CONF = REPO_ROOT / "deploy" / "nginx.conf"
GUNICORN_CONF = REPO_ROOT / "gunicorn.conf.py"
API_KEY = "e2e-nginx-secret-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
LONGEST_POLL_S = 300  # API.md: timeout_ms <= 300000
HTTP_TIMEOUT = (2.0, 30.0)

NGINX_READY_TIMEOUT_S = 10.0


# -- nginx: find it ------------------------------------------------------------------------

def find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    for directory in ("/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"):
        path = os.path.join(directory, "nginx")
        if os.access(path, os.X_OK):
            return path
    return None


def ensure_nginx() -> str:
    """The nginx binary (``make test`` installs it: deploy/install-test-packages.sh)."""
    found = find_nginx()
    if found is None:
        pytest.skip("nginx is not installed (make test installs it with "
                    "deploy/install-test-packages.sh, which needs root and apt-get)")
    return found


# -- deploy/nginx.conf: parse and render ----------------------------------------------------

def parse_conf(text: str) -> list:
    """nginx configuration text as a tree: ``[(name, [args], children_or_None), ...]``."""
    tokens, word, quote, i = [], "", None, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and i + 1 < len(text):
                word += text[i + 1]
                i += 2
                continue
            if ch == quote:
                tokens.append(word)
                word, quote = "", None
            else:
                word += ch
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            i = text.find("\n", i)
            if i < 0:
                break
            continue
        elif ch.isspace() or ch in "{};":
            if word:
                tokens.append(word)
                word = ""
            if ch in "{};":
                tokens.append(ch)
        else:
            word += ch
        i += 1
    assert quote is None and not word, "unterminated configuration"

    def block(pos: int):
        out, current = [], []
        while pos < len(tokens):
            tok = tokens[pos]
            if tok == ";":
                out.append((current[0], current[1:], None))
                current = []
            elif tok == "{":
                children, pos = block(pos + 1)
                out.append((current[0], current[1:], children))
                current = []
            elif tok == "}":
                return out, pos
            else:
                current.append(tok)
            pos += 1
        return out, pos

    tree, _ = block(0)
    return tree


def find(tree: list, name: str, *args) -> tuple:
    matches = [d for d in tree if d[0] == name and (not args or tuple(d[1]) == args)]
    assert len(matches) == 1, f"expected one {name} {' '.join(args)}, found {len(matches)}"
    return matches[0]


def values(tree: list, name: str) -> list:
    return [d[1] for d in tree if d[0] == name]


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", value)
    assert m, value
    return int(m[1]) * {"ms": 0.001, None: 1, "s": 1, "m": 60, "h": 3600}[m[2]]


def size_bytes(value: str) -> int:
    m = re.fullmatch(r"(\d+)([kKmMgG])?", value)
    assert m, value
    return int(m[1]) << {None: 0, "k": 10, "m": 20, "g": 30}[m[2] and m[2].lower()]


def render_conf(text: str, listen_port: int, upstream_port: int, prefix: Path) -> str:
    """deploy/nginx.conf for a test: only the two documented values (listen port, upstream
    address) and the machine paths (pid, logs, temp directories) change."""
    temp = "".join(f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    substitutions = [
        (r"(?m)^(\s*)listen\s+80;", rf"\g<1>listen 127.0.0.1:{listen_port};"),
        (r"(?m)^(\s*)server\s+127\.0\.0\.1:8080;", rf"\g<1>server 127.0.0.1:{upstream_port};"),
        (r"(?m)^pid\s+[^;]+;", f"pid {prefix}/nginx.pid;"),
        (r"(?m)^error_log\s+[^\s;]+", f"error_log {prefix}/error.log"),
        (r"(?m)^(\s*)access_log\s+[^\s;]+", rf"\g<1>access_log {prefix}/access.log"),
        (r"(?m)^http \{\n", "http {\n" + temp),
    ]
    for pattern, replacement in substitutions:
        text, n = re.subn(pattern, replacement, text)
        assert n == 1, f"deploy/nginx.conf: expected exactly one match of {pattern!r}, got {n}"
    if "www-data" in text:
        try:
            import pwd
            pwd.getpwnam("www-data")
        except KeyError:  # not Debian-like: let nginx pick its default worker user
            text = re.sub(r"(?m)^user\s+www-data;.*$", "", text)
    return text


# -- running nginx --------------------------------------------------------------------------

class Nginx:
    def __init__(self, binary: str, conf: Path, prefix: Path, port: int):
        self.binary, self.conf, self.prefix, self.port = binary, conf, prefix, port
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def args(self, *extra) -> list:
        return [self.binary, "-e", str(self.prefix / "error.log"), "-p", str(self.prefix),
                "-c", str(self.conf), *extra]

    def url(self, path: str) -> str:
        return self.base_url + path

    def read(self, name: str) -> str:
        with contextlib.suppress(FileNotFoundError):
            return (self.prefix / name).read_text(errors="replace")
        return ""

    def describe(self) -> str:
        return (f"nginx on {self.base_url}\n----- error.log -----\n{self.read('error.log')}"
                f"\n----- stdout/stderr -----\n{self.read('nginx.out')}")

    def check(self) -> str:
        out = subprocess.run(self.args("-t"), check=False, capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, f"nginx -t failed:\n{out.stdout}{out.stderr}"
        return out.stderr

    def start(self) -> Nginx:
        with open(self.prefix / "nginx.out", "ab") as out:
            self.proc = subprocess.Popen(self.args("-g", "daemon off;"), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + NGINX_READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}\n"
                                     + self.describe())
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5):
                return self
            if time.monotonic() > deadline:
                raise AssertionError("nginx did not listen in time\n" + self.describe())
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers left behind, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


@contextlib.contextmanager
def run_nginx(binary: str, prefix: Path, upstream_port: int):
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render_conf(NGINX_CONF.read_text(), port, upstream_port, prefix))
    nginx = Nginx(binary, conf, prefix, port)
    nginx.check()
    try:
        yield nginx.start()
    finally:
        nginx.kill()


# -- fixtures -------------------------------------------------------------------------------

class Stack:
    def __init__(self, nginx: Nginx, gunicorn):
        self.nginx, self.gunicorn = nginx, gunicorn
        self.http = requests.Session()

    def describe(self, resp=None) -> str:
        head = "" if resp is None else (f"{resp.request.method} {resp.url}: {resp.status_code} "
                                        f"{dict(resp.headers)} {resp.text[:500]!r}\n")
        return head + self.nginx.describe()

    def get(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.http.get(self.nginx.url(path), **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.http.post(self.nginx.url(path), **kw)


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    return ensure_nginx()


@pytest.fixture(scope="module")
def stack(nginx_binary, tmp_path_factory):
    base = tmp_path_factory.mktemp("nginx-stack")
    with start_server(base / "data", log_path=base / "gunicorn.log",
                      CONSUMER_API_API_KEYS=API_KEY) as gunicorn, \
            run_nginx(nginx_binary, base / "nginx", gunicorn.port) as nginx:
        s = Stack(nginx, gunicorn)
        yield s
        s.http.close()


@pytest.fixture(autouse=True)
def _attach_gunicorn_log(request):
    """A failing test's report shows the server's output (the e2e conftest's hook)."""
    if "stack" in request.fixturenames:
        setattr(request.node, _SERVERS_ATTR, [request.getfixturevalue("stack").gunicorn])


def assert_error(stack, resp, status: int, code: str) -> dict:
    assert resp.status_code == status, stack.describe(resp)
    assert resp.headers.get("Content-Type", "").startswith("application/json"), \
        stack.describe(resp)
    body = resp.json()
    assert set(body) == {"error", "code", "details"} and body["code"] == code, body
    return body


# -- the configuration file -----------------------------------------------------------------

def test_config_has_the_three_settings_that_matter():
    tree = parse_conf(NGINX_CONF.read_text())
    http_block = find(tree, "http")[2]
    server = find(http_block, "server")[2]
    api = find(server, "location", "/api/")[2]
    limit = Config().max_body_bytes  # the server's default, CONSUMER_API_MAX_BODY_BYTES

    # 1. nothing buffered between a long-poll and its client, nor on the way in
    assert values(api, "proxy_buffering") == [["off"]]
    assert values(api, "proxy_request_buffering") == [["off"]]
    # 2. nginx waits longer than the longest poll (its default, 60 s, would cut polls)
    (read_timeout,) = values(api, "proxy_read_timeout")
    assert seconds(read_timeout[0]) > LONGEST_POLL_S
    assert values(api, "proxy_send_timeout"), "proxy_send_timeout not set for /api/"
    # 3. the same body limit as the server, also in nginx's own 413 body
    (max_body,) = values(server, "client_max_body_size")
    assert size_bytes(max_body[0]) == limit
    too_large = find(server, "location", "@payload_too_large")[2]
    (ret,) = values(too_large, "return")
    assert ret[0] == "413" and f'"max_body_bytes":{limit}' in ret[1]

    # HTTP/1.1 with kept-alive upstream connections, the request id and client address
    assert values(server, "proxy_http_version") == [["1.1"]]
    headers = {args[0]: args[1] for args in values(server, "proxy_set_header")}
    assert headers["Connection"] == ""
    assert headers["X-Request-ID"] == "$consumer_api_request_id"
    assert {"X-Forwarded-For", "X-Forwarded-Proto", "Host"} <= set(headers)
    # a location that sets any proxy_set_header would silently lose all of the above
    for name, _args, children in server:
        if name == "location":
            assert not values(children, "proxy_set_header"), _args
    upstream = find(http_block, "upstream", "consumer_api")[2]
    assert values(upstream, "keepalive")
    # nginx must drop an idle upstream connection before gunicorn does (else a request
    # sent on a connection gunicorn is closing fails with 502)
    gunicorn = runpy.run_path(str(GUNICORN_CONF))
    (idle,) = values(upstream, "keepalive_timeout")
    assert seconds(idle[0]) < gunicorn["keepalive"]
    assert gunicorn["timeout"] > LONGEST_POLL_S
    assert values(http_block, "gzip") == [["off"]]
    # /metrics: allow-list then deny all
    metrics = find(server, "location", "=", "/metrics")[2]
    assert ["127.0.0.1"] in values(metrics, "allow") and values(metrics, "deny") == [["all"]]


def test_generated_config_passes_nginx_t(stack):
    out = stack.nginx.check()
    assert "syntax is ok" in out and "test is successful" in out, out


# -- through nginx --------------------------------------------------------------------------

def test_missing_or_wrong_key_is_401_with_www_authenticate(stack):
    resp = stack.get("/api/topics")
    assert_error(stack, resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="consumer-api"'
    resp = stack.get("/api/topics", headers={"Authorization": "Bearer not-the-key"})
    assert_error(stack, resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="consumer-api", error="invalid_token"'
    # the probes stay open, for load balancers
    resp = stack.get("/api/health/ready")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}, stack.describe(resp)


def test_produce_and_a_waiting_long_poll_is_answered_at_once(stack):
    topic = "nginx-poll"
    resp = stack.post("/api/topics", json={"name": topic, "partitions": 1}, headers=AUTH)
    assert resp.status_code == 201, stack.describe(resp)
    resp = stack.post(f"/api/topics/{topic}/records", headers=AUTH,
                      json={"encoding": "text", "records": [{"value": "before"}]})
    assert resp.status_code == 200, stack.describe(resp)
    assert resp.json()["offsets"] == [{"partition": 0, "offset": 0,
                                       "timestamp": resp.json()["offsets"][0]["timestamp"]}]
    resp = stack.post("/api/consumers/subscribe", headers=AUTH, json={
        "group_id": "nginx", "topics": [topic], "encoding": "text"})  # "latest": waits
    assert resp.status_code == 200, stack.describe(resp)
    consumer = resp.json()["consumer_id"]

    # longer than nginx's default proxy_read_timeout (60 s); it must end with the produce
    result = {}

    def consume():
        with requests.Session() as http:
            r = http.post(stack.nginx.url(f"/api/consumers/{consumer}/consume"),
                          headers=AUTH, json={"timeout_ms": 65_000}, timeout=(2.0, 90.0))
        result["at"], result["resp"] = time.monotonic(), r

    poller = threading.Thread(target=consume, daemon=True)
    poller.start()

    def waiting_polls() -> float:
        text = stack.get("/metrics").text  # through nginx, from 127.0.0.1: allowed
        m = re.search(r"(?m)^consumer_api_waiting_polls ([0-9.]+)$", text)
        return float(m[1]) if m else -1.0

    wait_until(lambda: waiting_polls() == 1.0, "the consume waits in the server")
    produced_at = time.monotonic()
    resp = stack.post(f"/api/topics/{topic}/records", headers=AUTH,
                      json={"encoding": "text", "records": [{"value": "wake up"}]})
    assert resp.status_code == 200, stack.describe(resp)
    poller.join(timeout=15)
    assert not poller.is_alive(), "the long-poll did not return through nginx\n" + stack.describe()
    got = result["resp"]
    assert got.status_code == 200, stack.describe(got)
    assert [(r["offset"], r["value"]) for r in got.json()["records"]] == [(1, "wake up")]
    # the server answers within milliseconds of the append; nginx passes it on unbuffered
    assert result["at"] - produced_at < 2.0, result["at"] - produced_at


def test_body_limit_is_the_same_in_nginx_and_the_server(stack):
    limit = Config().max_body_bytes
    headers = {**AUTH, "Content-Type": "application/json"}
    # exactly the limit: nginx lets it through, the server reads it (and finds no JSON)
    resp = stack.post("/api/topics/limits/records", headers=headers,
                      data=b" " * (limit - 2) + b"{x")
    assert_error(stack, resp, 400, "invalid_request")
    # one byte more: 413 with the API's error body
    resp = stack.post("/api/topics/limits/records", headers=headers, data=b" " * (limit + 1))
    body = assert_error(stack, resp, 413, "payload_too_large")
    assert body["details"] == {"max_body_bytes": limit}


def test_chunked_bodies_stream_through_up_to_the_limit(stack):
    limit = Config().max_body_bytes
    resp = stack.post("/api/topics", json={"name": "chunked", "partitions": 1}, headers=AUTH)
    assert resp.status_code == 201, stack.describe(resp)
    parts = [b'{"encoding": "text", "records": [', b'{"value": "streamed"}', b"]}"]
    resp = stack.post("/api/topics/chunked/records", data=iter(parts),  # chunked
                      headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 200 and len(resp.json()["offsets"]) == 1, stack.describe(resp)

    chunk = b" " * (1 << 20)

    def body():  # no Content-Length: requests sends it chunked
        for _ in range(limit // len(chunk) + 1):
            yield chunk

    resp = stack.post("/api/topics/limits/records", data=body(),
                      headers={**AUTH, "Content-Type": "application/json"})
    assert_error(stack, resp, 413, "payload_too_large")


def test_compressed_bodies_pass_through_both_ways(stack):
    """nginx passes compressed request bodies and the server's compressed record
    responses through untouched, and compresses nothing itself (gzip off: see README,
    "Compression")."""
    topic = "nginx-compressed"
    assert stack.post("/api/topics", json={"name": topic, "partitions": 1},
                      headers=AUTH).status_code == 201
    body = json.dumps({"encoding": "json", "records": [
        {"value": {"order_id": i, "status": "shipped", "customer": f"c-{i % 7}"}}
        for i in range(500)]}).encode()
    for coding, compress in (("zstd", zstd.compress), ("gzip", gzip.compress)):
        resp = stack.post(f"/api/topics/{topic}/records", data=compress(body), headers={
            **AUTH, "Content-Type": "application/json", "Content-Encoding": coding})
        assert resp.status_code == 200, stack.describe(resp)
    for coding, decompress in (("zstd", zstd.decompress), ("gzip", gzip.decompress)):
        resp = stack.get(f"/api/topics/{topic}/partitions/0/records", stream=True,
                         params={"max_records": 1000, "encoding": "json"},
                         headers={**AUTH, "Accept-Encoding": coding})
        raw = resp.raw.read(decode_content=False)
        assert resp.status_code == 200 and resp.headers["Content-Encoding"] == coding, \
            stack.describe(resp)
        assert resp.headers["Vary"] == "Accept-Encoding"
        records = json.loads(decompress(raw))["records"]
        assert [r["value"]["order_id"] for r in records] == list(range(500)) * 2
        assert len(raw) * 5 < len(json.dumps(records))
    listing = stack.get("/api/topics", headers={**AUTH, "Accept-Encoding": "gzip"})
    assert listing.status_code == 200 and "Content-Encoding" not in listing.headers
    # a bomb small enough for nginx's limit is refused by the server once decompressed
    bomb = gzip.compress(b" " * (Config().max_body_bytes + 1), 9)
    resp = stack.post(f"/api/topics/{topic}/records", data=bomb, headers={
        **AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert assert_error(stack, resp, 413, "payload_too_large")["details"] == {
        "max_body_bytes": Config().max_body_bytes}


def test_the_client_compresses_through_nginx(stack):
    with Client(stack.nginx.base_url, api_key=API_KEY) as client:
        client.create_topic("nginx-client")
        client.produce("nginx-client", [{"n": i, "text": "compressible " * 8}
                                        for i in range(300)])
        got = client.read("nginx-client", 0, max_records=1000, value_format="json")
    assert [r.value["n"] for r in got] == list(range(300))
    sent = re.findall(r'"POST /api/topics/nginx-client/records HTTP/1.1" 200 (\d+) ',
                      stack.nginx.read("access.log"))
    read = re.findall(r'"GET /api/topics/nginx-client/partitions/0/records\S* HTTP/1.1" '
                      r'200 (\d+) ', stack.nginx.read("access.log"))
    assert sent and read, stack.nginx.read("access.log")[-2000:]
    assert int(read[0]) * 5 < sum(len(json.dumps(r.value)) for r in got)  # sent compressed


def test_request_id_is_the_clients_or_nginxs_and_reaches_both_logs(stack):
    given = "e2e-nginx-0001"
    resp = stack.get("/api/health", headers={"X-Request-ID": given})
    assert resp.status_code == 200 and resp.headers["X-Request-ID"] == given, stack.describe(resp)

    resp = stack.get("/api/topics", headers=AUTH)
    assert resp.status_code == 200, stack.describe(resp)
    made = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made), made  # nginx's $request_id, not the server's

    # an id the server would not take (it goes into log lines) is replaced by nginx's, so
    # both logs still name the request alike
    resp = stack.get("/api/health", headers={"X-Request-ID": "not an id; " + "x" * 70})
    replaced = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced), replaced

    # an error nginx answers itself carries the id as well
    resp = stack.post("/api/topics/x/records", headers={**AUTH, "X-Request-ID": "e2e-big"},
                      data=b" " * (Config().max_body_bytes + 1))
    assert resp.status_code == 413 and resp.headers["X-Request-ID"] == "e2e-big"

    for rid in (given, made, replaced):
        line = f"request_id={rid}"
        wait_until(lambda line=line: line in stack.nginx.read("access.log"),
                   f"nginx logs request id {rid}")
        wait_until(lambda line=line: line in stack.gunicorn.output(),
                   f"the server logs request id {rid}")
    logs = stack.nginx.read("access.log") + stack.gunicorn.output()
    assert API_KEY not in logs


def _get_from(address: str, port: int, path: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(address, 0))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/metrics", "/swagger/", "/swagger.json", "/console/",
                                  "/console/static/console.js"])
def test_metrics_swagger_and_console_only_from_allowed_networks(stack, path):
    status, _ctype, body = _get_from("127.0.0.1", stack.nginx.port, path)
    assert status == 200, (path, status, body[:300])
    status, ctype, body = _get_from("127.0.0.2", stack.nginx.port, path)  # another address
    assert status == 403 and ctype.startswith("application/json"), (status, ctype, body)
    assert b'"code":"forbidden"' in body


def test_unreachable_server_is_a_json_502(nginx_binary, tmp_path):
    with run_nginx(nginx_binary, tmp_path / "nginx", free_port()) as nginx:  # nobody there
        resp = requests.get(nginx.url("/api/health"), timeout=HTTP_TIMEOUT)
        assert resp.status_code == 502, nginx.describe()
        assert resp.json()["code"] == "bad_gateway"
        assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])


# -- deployment hazards ---------------------------------------------------------------------

def _subscribe_waiting_consumer(base_url: str, topic: str, group: str) -> str:
    with requests.Session() as http:
        r = http.post(base_url + "/api/topics", json={"name": topic, "partitions": 1},
                      headers=AUTH, timeout=HTTP_TIMEOUT)
        assert r.status_code == 201, r.text
        r = http.post(base_url + "/api/consumers/subscribe", headers=AUTH, timeout=HTTP_TIMEOUT,
                      json={"group_id": group, "topics": [topic], "encoding": "text"})
        assert r.status_code == 200, r.text
        return r.json()["consumer_id"]


def _waiting_polls(base_url: str) -> float:
    text = requests.get(base_url + "/metrics", timeout=HTTP_TIMEOUT).text
    m = re.search(r"(?m)^consumer_api_waiting_polls ([0-9.]+)$", text)
    return float(m[1]) if m else -1.0


def test_sigterm_behind_nginx_answers_the_waiting_poll_at_once(nginx_binary, server_factory,
                                                               tmp_path):
    srv = server_factory(CONSUMER_API_API_KEYS=API_KEY)
    with run_nginx(nginx_binary, tmp_path / "nginx", srv.port) as nginx:
        consumer = _subscribe_waiting_consumer(nginx.base_url, "drain", "drain")
        result = {}

        def consume():
            r = requests.post(nginx.url(f"/api/consumers/{consumer}/consume"), headers=AUTH,
                              json={"timeout_ms": 65_000}, timeout=(2.0, 90.0))
            result["at"], result["resp"] = time.monotonic(), r

        poller = threading.Thread(target=consume, daemon=True)
        poller.start()
        wait_until(lambda: _waiting_polls(nginx.base_url) == 1.0, "the consume waits")
        stopped_at = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        poller.join(timeout=15)
        assert not poller.is_alive(), nginx.describe()
        resp = result["resp"]
        assert resp.status_code == 200 and resp.json()["records"] == [], nginx.describe()
        assert result["at"] - stopped_at < 5.0  # not the 65 s of the poll
        assert srv.wait_exit() == 0, srv.describe()
        # the server is gone: nginx answers with the API's error body
        resp = requests.get(nginx.url("/api/health/ready"), timeout=HTTP_TIMEOUT)
        assert resp.status_code == 502 and resp.json()["code"] == "bad_gateway", resp.text


def test_a_consume_abandoned_by_its_client_does_not_swallow_records(stack):
    """A client (or proxy) timeout shorter than timeout_ms: nginx closes its connection to
    gunicorn, and the records that end the server's wait must stay for the next consume
    (else they reach nobody and a commit of the positions would skip them)."""
    consumer = _subscribe_waiting_consumer(stack.nginx.base_url, "abandoned", "abandoned")
    with pytest.raises(requests.ReadTimeout):  # the client gives up after 1 s
        requests.post(stack.nginx.url(f"/api/consumers/{consumer}/consume"), headers=AUTH,
                      json={"timeout_ms": 5_000}, timeout=(2.0, 1.0))
    # nginx logs the request (499: client closed) once it has closed the upstream connection
    gone = re.compile(rf'"POST /api/consumers/{consumer}/consume HTTP/1.1" 499 ')
    wait_until(lambda: gone.search(stack.nginx.read("access.log")), "nginx saw the client go")
    resp = stack.post("/api/topics/abandoned/records", headers=AUTH,
                      json={"encoding": "text", "records": [{"value": "for the next consume"}]})
    assert resp.status_code == 200, stack.describe(resp)
    wait_until(lambda: _waiting_polls(stack.nginx.base_url) == 0.0, "the abandoned poll ended")
    resp = stack.post(f"/api/consumers/{consumer}/consume", headers=AUTH,
                      json={"timeout_ms": 1_000})
    assert resp.status_code == 200, stack.describe(resp)
    assert [r["value"] for r in resp.json()["records"]] == ["for the next consume"]


def test_a_consume_response_cut_off_behind_nginx_is_consumed_again(stack):
    """The client resets its connection to nginx while a large consume response is on its
    way: nginx drops its connection to gunicorn, whose write fails, and the records come
    back to the session for the next consume."""
    topic, count, size = "cut-off", 10_000, 2_000  # ~27 MB of JSON: more than the buffers
    assert stack.post("/api/topics", headers=AUTH,
                      json={"name": topic, "partitions": 1}).status_code == 201
    for base in range(0, count, 1_000):
        resp = stack.post(f"/api/topics/{topic}/records", headers=AUTH, json={
            "encoding": "text", "records": [{"value": f"{base + i:08d}" + "x" * (size - 8)}
                                            for i in range(1_000)]})
        assert resp.status_code == 200, stack.describe(resp)
    resp = stack.post("/api/consumers/subscribe", headers=AUTH, json={
        "group_id": topic, "topics": [topic], "auto_offset_reset": "earliest"})
    assert resp.status_code == 200, stack.describe(resp)
    consumer = resp.json()["consumer_id"]

    body = (f'{{"max_records": {count}, "max_bytes_total": {100 << 20}, "timeout_ms": 0}}'
            .encode())
    reset_mid_response(stack.nginx.port, (
        f"POST /api/consumers/{consumer}/consume HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n").encode() + body)

    def position():
        resp = stack.get(f"/api/consumers/{consumer}/position", headers=AUTH)
        assert resp.status_code == 200, stack.describe(resp)
        return resp.json()["offsets"][topic]["0"]

    wait_until(lambda: position() == 0, "the position moved back to 0")
    resp = stack.post(f"/api/consumers/{consumer}/consume", headers=AUTH,
                      json={"max_records": 2, "timeout_ms": 0, "encoding": "text"})
    assert resp.status_code == 200, stack.describe(resp)
    assert [(r["offset"], r["value"][:8]) for r in resp.json()["records"]] == [
        (0, "00000000"), (1, "00000001")]


def _holds(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (False once it is gone)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path)
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_sighup_with_a_request_in_flight_keeps_the_server_serving(server_factory):
    """gunicorn's reload (SIGHUP, ``systemctl reload``) boots the new worker while the old
    one finishes its requests and still holds the data directory: the new one must wait for
    it, not die and take the whole server down."""
    srv = server_factory()
    lock = Path(srv.data_dir).resolve() / ".lock"
    # a request in flight: a produce whose body has not arrived yet
    slow = socket.create_connection(("127.0.0.1", srv.port))
    try:
        slow.sendall(b"POST /api/topics/t/records HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.3)  # let a worker thread take it
        srv.proc.send_signal(signal.SIGHUP)
        booted = re.compile(r"Booting worker with pid: (\d+)")

        def new_worker() -> int | None:
            found = booted.findall(srv.output().partition("Handling signal: hup")[2])
            return int(found[0]) if found else None

        wait_until(lambda: new_worker() is not None, "a new worker boots")
        # the new worker reaches the data directory while the old one still holds it
        wait_until(lambda: _holds(new_worker(), lock) or srv.poll() is not None
                   or "in use by another process" in srv.output(),
                   "the new worker opens the lock file")
        time.sleep(0.3)  # it tries the lock meanwhile (it must wait, not fail)
        assert srv.poll() is None, srv.describe()
    finally:
        slow.close()  # the old worker finishes that request and exits
    srv.wait_ready(15.0)
    assert srv.poll() is None and "in use by another process" not in srv.output(), \
        srv.describe()


def test_long_polls_work_in_a_worker_holding_more_than_1024_descriptors(server_factory):
    srv = server_factory()
    http = requests.Session()
    url = srv.url
    # 300 partitions: about 1,800 descriptors (3 maps per segment, 3 more per partition)
    assert http.post(url("/api/topics"), json={"name": "wide", "partitions": 300},
                     timeout=HTTP_TIMEOUT).status_code == 201
    assert http.post(url("/api/topics"), json={"name": "t", "partitions": 1},
                     timeout=HTTP_TIMEOUT).status_code == 201
    consumer = http.post(url("/api/consumers/subscribe"), timeout=HTTP_TIMEOUT, json={
        "group_id": "wide", "topics": ["t"], "encoding": "text"}).json()["consumer_id"]
    worker = int(re.findall(r"Booting worker with pid: (\d+)", srv.output())[-1])

    def free_below_1024() -> int:
        used = {int(fd) for fd in os.listdir(f"/proc/{worker}/fd")}
        return len(set(range(1024)) - used)

    # kept-alive connections fill the holes below 1024, so the next socket is above it
    fillers = []
    while free_below_1024() and len(fillers) < 100:
        filler = requests.Session()
        filler.get(url("/api/health"), timeout=HTTP_TIMEOUT)
        fillers.append(filler)
    assert free_below_1024() == 0, "could not push the worker's descriptors past 1024"

    result = {}

    def consume():
        with requests.Session() as poller_http:
            r = poller_http.post(url(f"/api/consumers/{consumer}/consume"),
                                 json={"timeout_ms": 10_000}, timeout=(2.0, 30.0))
        result["at"], result["resp"] = time.monotonic(), r

    poller = threading.Thread(target=consume, daemon=True)
    poller.start()
    wait_until(lambda: _waiting_polls(srv.base_url) == 1.0, "the consume waits")
    produced_at = time.monotonic()
    assert http.post(url("/api/topics/t/records"), timeout=HTTP_TIMEOUT, json={
        "encoding": "text", "records": [{"value": "past 1024"}]}).status_code == 200
    poller.join(timeout=15)
    assert not poller.is_alive()
    assert [r["value"] for r in result["resp"].json()["records"]] == ["past 1024"], \
        srv.describe()
    assert result["at"] - produced_at < 2.0
    for filler in fillers:
        filler.close()
    http.close()


def _others_are_served(nginx, topic: str) -> None:
    """Health and a one-record produce through nginx are answered."""
    assert requests.get(nginx.url("/api/health"), timeout=HTTP_TIMEOUT).status_code == 200
    resp = requests.post(nginx.url(f"/api/topics/{topic}/records"), headers=AUTH,
                         timeout=HTTP_TIMEOUT,
                         json={"encoding": "text", "records": [{"value": "fast"}]})
    assert resp.status_code == 200, resp.text


def test_slow_bodies_behind_nginx_hold_no_server_thread(nginx_binary, server_factory,
                                                         tmp_path):
    """Through the shipped config (no request buffering): 20 clients trickle their produce
    bodies into a server of 4 threads; the server holds them on its event loop, not on
    threads, so health and a produce through nginx are answered meanwhile, and each slow
    client gets the server's 408 in the error envelope once its body is late."""
    srv = server_factory(CONSUMER_API_API_KEYS=API_KEY, CONSUMER_API_THREADS=4,
                         CONSUMER_API_BODY_TIMEOUT_MS=1_000)
    with run_nginx(nginx_binary, tmp_path / "nginx", srv.port) as nginx:
        assert requests.post(nginx.url("/api/topics"), headers=AUTH, timeout=HTTP_TIMEOUT,
                             json={"name": "slow", "partitions": 1}).status_code == 201
        record = b'{"encoding": "text", "records": [{"value": "slow"}]}'
        head = (f"POST /api/topics/slow/records HTTP/1.1\r\nHost: t\r\n"
                f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(record)}\r\n\r\n").encode()
        crowd = []
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", nginx.port), timeout=15)
            sock.sendall(head + record[:5])
            crowd.append(sock)
        _others_are_served(nginx, "slow")
        for sock in crowd:
            answer = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), answer
            assert json.loads(body)["code"] == "request_timeout"
            sock.close()
        read = requests.get(nginx.url("/api/topics/slow/partitions/0/records?encoding=text"),
                            headers=AUTH, timeout=HTTP_TIMEOUT).json()
        assert [r["value"] for r in read["records"]] == ["fast"]


def test_clients_that_never_read_behind_nginx_hold_no_server_thread(nginx_binary,
                                                                     server_factory, tmp_path):
    """nginx does not buffer responses (the shipped config), so a client that never reads
    stalls the server's write: the server holds the response on its event loop, not a
    thread, and gives it up after its send timeout."""
    srv = server_factory(CONSUMER_API_API_KEYS=API_KEY, CONSUMER_API_THREADS=4,
                         CONSUMER_API_SEND_TIMEOUT_MS=1_000)
    with run_nginx(nginx_binary, tmp_path / "nginx", srv.port) as nginx:
        assert requests.post(nginx.url("/api/topics"), headers=AUTH, timeout=HTTP_TIMEOUT,
                             json={"name": "big", "partitions": 1}).status_code == 201
        for _ in range(10):  # ~10 MB: more than the socket buffers of both hops
            assert requests.post(nginx.url("/api/topics/big/records"), headers=AUTH,
                                 timeout=HTTP_TIMEOUT, json={
                                     "encoding": "text",
                                     "records": [{"value": "v" * 10_000}] * 100,
                                 }).status_code == 200
        crowd = []
        for _ in range(8):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", nginx.port))
            sock.sendall(f"GET /api/topics/big/partitions/0/records?max_records=1000"
                         f"&max_bytes_total=104857600 HTTP/1.1\r\nHost: t\r\n"
                         f"Authorization: Bearer {API_KEY}\r\n\r\n".encode())
            crowd.append(sock)
        _others_are_served(nginx, "big")

        def cut() -> float:
            text = requests.get(srv.url("/metrics"), timeout=HTTP_TIMEOUT).text
            found = re.search(r'^consumer_api_refusals_total\{reason="send_timeout"\} (\S+)$',
                              text, re.M)
            return float(found.group(1)) if found else 0.0

        wait_until(lambda: cut() == len(crowd), "every unread response was given up")
        for sock in crowd:
            sock.close()
