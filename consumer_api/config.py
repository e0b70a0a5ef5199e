"""The one configuration object.

Every setting has its unit in its name and is read from an environment variable
``CONSUMER_API_<NAME>`` (for example ``CONSUMER_API_DATA_DIR``,
``CONSUMER_API_SEGMENT_BYTES``), on top of an optional YAML/JSON file named by
``CONSUMER_API_CONFIG_FILE`` (keys are the lower-case names: ``data_dir: /var/lib/x``).
``Config.from_env()`` builds it; tests build it directly.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields

MiB = 1 << 20
DAY_MS = 24 * 3600 * 1000
ENV_PREFIX = "CONSUMER_API_"

#: settings that take one of a few words (any case), and the words
KEYWORDS = {
    "backend": ("embedded", "kafka"),
    "flush_policy": ("always", "interval"),
    "default_assignor": ("range", "roundrobin", "sticky"),
    "log_format": ("plain", "json"),
}
#: what a node id may be: it starts every consumer id the node makes (``<node>.<hex>``)
NODE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Config:
    # which store serves the API (see consumer_api.backends)
    backend: str = "embedded"
    # the kafka store
    kafka_bootstrap_servers: str = ""  # host:port[,host:port...]
    kafka_config: str = ""  # a JSON object of librdkafka settings every client gets
    kafka_timeout_ms: int = 30_000  # the most a request waits for the cluster
    kafka_max_sessions: int = 200  # consumer sessions of one node (each is a Kafka consumer)
    node_id: str = ""  # this node's name in its consumer ids, when several nodes serve one API
    # storage
    data_dir: str = "./data"
    segment_bytes: int = 64 * MiB
    index_interval_bytes: int = 4096
    retention_ms: int = 7 * DAY_MS
    retention_bytes: int = -1
    retention_check_interval_ms: int = 60_000
    flush_policy: str = "interval"  # "always" | "interval"
    flush_interval_messages: int = -1
    flush_interval_ms: int = 1000
    # HTTP
    max_body_bytes: int = 16 * MiB
    max_records_per_produce: int = 100_000
    max_filter_scan_records: int = 100_000  # records a filtered consume or read examines
    # reading and writing HTTP (the worker: consumer_api/server)
    header_timeout_ms: int = 10_000  # a started request's head must arrive within this
    body_timeout_ms: int = 30_000  # its body within this of the head
    send_timeout_ms: int = 60_000  # a response must be sent within this of being ready
    request_buffer_bytes: int = 256 * MiB  # request bodies held in memory, server-wide
    response_buffer_bytes: int = 256 * MiB  # responses being sent, server-wide
    # consumers
    session_timeout_ms: int = 30_000
    join_wait_ms: int = 10_000  # the most a subscribe waits for its group's first assignment
    history_interval_ms: int = 10_000  # time between two samples of GET /api/metrics/history
    max_sessions: int = 10_000
    # sessions kept across restarts: in sessions_dir (empty: <data_dir>/internal on the
    # embedded store; not kept on Kafka unless set); positions saved at least this often
    persist_sessions: bool = True
    sessions_dir: str = ""
    sessions_save_interval_ms: int = 1000
    default_assignor: str = "range"
    reserved_threads: int = 16  # threads waiting polls may never take (produce, health...)
    # counting records by key (GET /api/topics/{topic}/stats/keys): the most one request reads
    max_stats_scan_records: int = 100_000
    max_stats_scan_bytes: int = 64 * MiB
    # per client: an API key, or a peer address on an open server
    max_sessions_per_client: int = 1_000
    max_polls_per_client: int = 16
    trusted_proxies: str = ""  # addresses whose X-Forwarded-For names the client
    # security and operations
    api_keys: str = field(default="", repr=False)
    api_keys_file: str = ""
    cors_origins: str = ""
    log_format: str = "plain"  # "plain" | "json"
    access_log: bool = True  # one line per request (logger consumer_api.access)

    def __post_init__(self):
        for name, words in KEYWORDS.items():
            if getattr(self, name) not in words:
                raise ValueError(f"{name} ({ENV_PREFIX}{name.upper()}) must be one of "
                                 f"{', '.join(words)}, not {getattr(self, name)!r}")
        if self.segment_bytes < 1024:
            raise ValueError("segment_bytes must be at least 1024")
        for name in ("header_timeout_ms", "body_timeout_ms", "send_timeout_ms",
                     "request_buffer_bytes", "response_buffer_bytes", "max_sessions_per_client",
                     "max_polls_per_client", "history_interval_ms", "max_filter_scan_records",
                     "sessions_save_interval_ms", "max_stats_scan_records",
                     "max_stats_scan_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.backend == "kafka" and not self.kafka_bootstrap_servers.strip():
            raise ValueError("CONSUMER_API_KAFKA_BOOTSTRAP_SERVERS is needed with "
                             "CONSUMER_API_BACKEND=kafka")
        if self.node_id and not NODE_ID_RE.fullmatch(self.node_id):
            raise ValueError("CONSUMER_API_NODE_ID must be 1 to 32 of A-Z a-z 0-9 _ -, not "
                             f"{self.node_id!r}")
        if self.reserved_threads < 0:
            raise ValueError("reserved_threads must not be negative")

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Config":
        """Settings from the file named by ``CONSUMER_API_CONFIG_FILE`` (if any), then the
        ``CONSUMER_API_*`` variables, then ``overrides`` -- each later source wins. A value
        that does not parse as its field's type raises ValueError naming where it came
        from."""
        environ = os.environ if environ is None else environ
        values = {}
        if environ.get(ENV_PREFIX + "CONFIG_FILE"):
            values.update(_from_file(environ[ENV_PREFIX + "CONFIG_FILE"]))
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name in environ:
                values[f.name] = _parse(name, f.name, environ[name], f.type)
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


def _from_file(path: str) -> dict:
    """A YAML (or JSON) mapping of setting names (``data_dir``, ``segment_bytes``, ...) to
    values."""
    import yaml
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of setting names to values")
    known = {f.name: f.type for f in fields(Config)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(known))}")
    return {k: _parse(f"{path}: {k}", k, v, known[k]) for k, v in data.items()}


def _parse(where: str, name: str, raw, kind: str):
    """The value of setting ``name`` (of type ``kind``: "int", "bool" or "str") from
    ``raw`` -- text from the environment or a file, or a value a YAML file typed itself.
    ValueError naming ``where`` when it is not one."""
    if kind == "int":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        try:
            return int(str(raw).replace("_", ""))
        except ValueError:
            raise ValueError(f"{where} must be an integer, not {raw!r}") from None
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError(f"{where} must be true or false (or 1/0, yes/no, on/off), not "
                         f"{raw!r}")
    if not isinstance(raw, str):
        raise ValueError(f"{where} must be text, not {raw!r}")
    if name in KEYWORDS:  # keywords: any case will do
        return raw.strip().lower()
    return raw
