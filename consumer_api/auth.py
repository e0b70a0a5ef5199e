"""API keys and what each may do.

Keys come from ``CONSUMER_API_API_KEYS`` (comma-separated; each has every right) and/or
the file named by ``CONSUMER_API_API_KEYS_FILE`` (YAML or JSON)::

    keys:
      - name: billing                 # who the key is: logs and session ownership use it
        key_sha256: 5e884898da2...    # hex SHA-256 of the key (or ``key: <plain text>``)
        max_sessions: 100             # optional: consumer sessions this key may hold at once
        max_waiting_polls: 32         # optional: consumes of its sessions waiting at once
        grants:
          - {topics: "billing.*", rights: [read, write]}
          - {topics: "orders", rights: [read]}
          - {groups: "billing-*", rights: [read]}
      - name: ops
        key_sha256: ...
        grants:
          - {topics: "*", rights: [admin]}
          - {groups: "*", rights: [admin]}

Patterns are shell globs (``fnmatch``, case-sensitive). Rights: ``read`` (read records of a
topic / consume in a group), ``write`` (produce to a topic), ``admin`` (create and delete
topics; set offsets of and delete groups) -- ``admin`` includes the other two.
A key is one client for the fair shares of the server: ``max_sessions`` caps its live
consumer sessions (``429 too_many_consumers`` beyond it) and ``max_waiting_polls`` its
consumes waiting for records at once (``429 too_many_polls``), so one client cannot use up
the server's sessions or threads for everybody. A key without them -- every key of
``CONSUMER_API_API_KEYS`` -- has the server's defaults, ``CONSUMER_API_MAX_SESSIONS_PER_CLIENT``
and ``CONSUMER_API_MAX_POLLS_PER_CLIENT``.

A presented key is hashed and compared with every configured hash using
``hmac.compare_digest``, without stopping at the first match, so the time taken says
nothing about which key, or how much of one, was right. Keys are never logged: only names.
"""
from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
from dataclasses import dataclass, field

import yaml

log = logging.getLogger(__name__)

RIGHTS = ("read", "write", "admin")
KINDS = ("topics", "groups")


class KeysFileError(ValueError):
    """The keys file cannot be used (the message says where and why)."""


@dataclass(frozen=True)
class Grant:
    kind: str  # "topics" | "groups"
    pattern: str
    rights: frozenset

    def allows(self, kind: str, right: str, name: str) -> bool:
        return kind == self.kind and (right in self.rights or "admin" in self.rights) \
            and fnmatch.fnmatchcase(name, self.pattern)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    grants: tuple = field(default_factory=tuple)
    superuser: bool = False
    max_sessions: int | None = None  # live consumer sessions it may hold; None: the default
    max_waiting_polls: int | None = None  # consumes waiting at once; None: the default

    def allows(self, kind: str, right: str, name: str) -> bool:
        return self.superuser or any(g.allows(kind, right, name) for g in self.grants)

    def sees(self, kind: str, name: str) -> bool:
        """Whether any right at all covers ``name`` (lists show only those)."""
        return any(self.allows(kind, right, name) for right in RIGHTS)


#: the caller when no keys are configured: the server is open
ANONYMOUS = Principal("anonymous", superuser=True)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class KeyRing:
    """The configured keys. ``enabled`` is False when there are none (open server)."""

    def __init__(self, entries: list[tuple[bytes, Principal]]):
        self._entries = entries

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def owns_sessions(self, owner: str | None) -> bool:
        """Whether a consumer session owned by ``owner`` (a key's name; None: made on an
        open server) can be used with these keys."""
        if owner is None:
            return not self._entries
        return any(principal.name == owner for _, principal in self._entries)

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal whose key is ``presented``, None for a missing or wrong key."""
        if not self._entries:
            return ANONYMOUS
        if not presented:
            return None
        digest = _sha256(presented)
        found = None
        for stored, principal in self._entries:  # every entry, match or not
            if hmac.compare_digest(digest, stored):
                found = principal
        return found

    @classmethod
    def from_config(cls, api_keys: str, api_keys_file: str) -> "KeyRing":
        entries = []
        plain = [k.strip() for k in api_keys.split(",") if k.strip()]
        for i, key in enumerate(plain, 1):
            entries.append((_sha256(key), Principal(f"key-{i}", superuser=True)))
        if api_keys_file:
            from_file = load_keys_file(api_keys_file)
            if not from_file and not entries:
                raise KeysFileError(f"{api_keys_file} defines no keys: the server would be "
                                    "open to anyone; add keys or unset CONSUMER_API_API_KEYS_FILE")
            _check_unique_names(api_keys_file, entries, from_file)
            entries.extend(from_file)
        return cls(entries)


def _check_unique_names(path: str, env_entries: list, file_entries: list) -> None:
    """Names identify keys in logs and own sessions: they must be unique. Keys from
    CONSUMER_API_API_KEYS are named key-1, key-2, ... in their order."""
    seen = {p.name: "CONSUMER_API_API_KEYS" for _, p in env_entries}
    for i, (_, principal) in enumerate(file_entries):
        if principal.name in seen:
            raise KeysFileError(f"{path}: keys[{i}]: the name {principal.name!r} is used "
                                f"already (by {seen[principal.name]}; keys from "
                                "CONSUMER_API_API_KEYS are named key-1, key-2, ...)")
        seen[principal.name] = f"keys[{i}]"


def load_keys_file(path: str) -> list[tuple[bytes, Principal]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KeysFileError(f"cannot read the API keys file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeysFileError(f"{path}: expected a mapping with a list under 'keys'")
    return [_entry(path, i, item) for i, item in enumerate(data["keys"])]


def _entry(path: str, i: int, item) -> tuple[bytes, Principal]:
    where = f"{path}: keys[{i}]"
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        raise KeysFileError(f"{where}: needs a non-empty 'name'")
    if isinstance(item.get("key_sha256"), str):
        try:
            stored = bytes.fromhex(item["key_sha256"])
        except ValueError:
            stored = b""
        if len(stored) != 32:
            raise KeysFileError(f"{where}: 'key_sha256' must be 64 hex digits")
    elif isinstance(item.get("key"), str) and item["key"]:
        stored = _sha256(item["key"])
    else:
        raise KeysFileError(f"{where}: needs 'key_sha256' (or 'key')")
    grants = []
    for j, grant in enumerate(item.get("grants") or []):
        grants.append(_grant(f"{where}.grants[{j}]", grant))
    return stored, Principal(
        item["name"], tuple(grants),
        max_sessions=_cap(where, "max_sessions", item.get("max_sessions")),
        max_waiting_polls=_cap(where, "max_waiting_polls", item.get("max_waiting_polls")))


def _cap(where: str, name: str, value) -> int | None:
    """An optional per-key cap: absent (None) or a whole number >= 1."""
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise KeysFileError(f"{where}: {name!r} must be a whole number >= 1")
    return value


def _grant(where: str, grant) -> Grant:
    if not isinstance(grant, dict):
        raise KeysFileError(f"{where}: expected a mapping")
    kinds = [k for k in KINDS if k in grant]
    if len(kinds) != 1 or not isinstance(grant[kinds[0]], str):
        raise KeysFileError(f"{where}: needs exactly one of 'topics' or 'groups' (a pattern)")
    rights = grant.get("rights")
    if not isinstance(rights, list) or not rights or any(r not in RIGHTS for r in rights):
        raise KeysFileError(f"{where}: 'rights' must be a list of {', '.join(RIGHTS)}")
    return Grant(kinds[0], grant[kinds[0]], frozenset(rights))
