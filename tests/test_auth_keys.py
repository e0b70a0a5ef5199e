"""API keys without HTTP (consumer_api.auth): where keys come from (``CONSUMER_API_API_KEYS``
and the keys file, YAML or JSON), how a malformed keys file is refused, how a presented key is
checked (every configured key compared in constant time, whatever the outcome) and what a
principal's grants allow.

Expectations come from the documented contract (the module docstring of consumer_api.auth and
API.md), not from the code.
"""
from __future__ import annotations

import hashlib
import json

import pytest

import consumer_api.auth as auth
from consumer_api.config import Config
from consumer_api.auth import (ANONYMOUS, Grant, KeyRing, KeysFileError, Principal,
                               load_keys_file)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_yaml(tmp_path, text: str, name: str = "keys.yml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def write_json(tmp_path, data, name: str = "keys.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def grant(kind, pattern, *rights):
    return Grant(kind, pattern, frozenset(rights))


# -- CONSUMER_API_API_KEYS --------------------------------------------------------------------

def test_env_keys_each_authenticate_as_a_distinct_superuser():
    ring = KeyRing.from_config("alpha-key,beta-key,gamma-key", "")
    assert ring.enabled
    found = [ring.authenticate(k) for k in ("alpha-key", "beta-key", "gamma-key")]
    assert all(p is not None and p.superuser for p in found), found
    assert len({p.name for p in found}) == 3, found  # sessions are owned by the name


def test_env_keys_ignore_whitespace_around_each_key():
    ring = KeyRing.from_config("  alpha-key ,\tbeta-key\n, gamma-key  ", "")
    for key in ("alpha-key", "beta-key", "gamma-key"):
        principal = ring.authenticate(key)
        assert principal is not None and principal.superuser, key
    assert ring.authenticate("  alpha-key ") is None  # the stored key is the stripped one


@pytest.mark.parametrize("value", ["", "   ", ",", " , ,\t,\n"])
def test_no_env_keys_and_no_file_leave_the_server_open(value):
    ring = KeyRing.from_config(value, "")
    assert not ring.enabled
    # open server: everyone is the anonymous superuser, whatever they present
    for presented in (None, "", "anything"):
        assert ring.authenticate(presented) is ANONYMOUS
    assert ANONYMOUS.superuser


def test_a_saved_session_is_usable_only_while_its_owners_key_is_configured(keys_file):
    ring = KeyRing.from_config("alpha-key", keys_file)
    owners = [p.name for p in (ring.authenticate("alpha-key"),)]
    assert ring.owns_sessions(owners[0]) and ring.owns_sessions("billing")
    assert not ring.owns_sessions("retired") and not ring.owns_sessions(None)
    open_ring = KeyRing.from_config("", "")
    assert open_ring.owns_sessions(None) and not open_ring.owns_sessions("billing")


def test_keys_from_the_environment_variables(tmp_path):
    path = write_yaml(tmp_path, YAML_KEYS)
    config = Config.from_env({"CONSUMER_API_API_KEYS": "one-key, two-key",
                              "CONSUMER_API_API_KEYS_FILE": path,
                              "CONSUMER_API_DATA_DIR": str(tmp_path)})
    assert "one-key" not in repr(config)  # the keys never show in a logged config
    ring = KeyRing.from_config(config.api_keys, config.api_keys_file)
    assert ring.authenticate("two-key").superuser
    assert ring.authenticate("ops-plain-secret").name == "ops"
    assert not KeyRing.from_config(Config.from_env({}).api_keys,
                                   Config.from_env({}).api_keys_file).enabled


def test_a_key_made_only_of_whitespace_is_not_a_key():
    ring = KeyRing.from_config("real-key, ,  ", "")
    assert ring.enabled
    assert ring.authenticate("real-key") is not None
    assert ring.authenticate(" ") is None
    assert ring.authenticate("") is None


# -- the keys file ---------------------------------------------------------------------------

YAML_KEYS = f"""\
# a comment
keys:
  - name: billing
    key_sha256: {sha("billing-secret")}
    grants:
      - {{topics: "billing.*", rights: [read, write]}}
      - {{topics: "orders", rights: [read]}}
      - {{groups: "billing-*", rights: [read]}}
  - name: ops
    key: ops-plain-secret
    grants:
      - {{topics: "*", rights: [admin]}}
      - {{groups: "*", rights: [admin]}}
  - name: nobody
    key: nobody-secret
"""

JSON_KEYS = {"keys": [
    {"name": "billing", "key_sha256": sha("billing-secret"),
     "grants": [{"topics": "billing.*", "rights": ["read", "write"]},
                {"topics": "orders", "rights": ["read"]},
                {"groups": "billing-*", "rights": ["read"]}]},
    {"name": "ops", "key": "ops-plain-secret",
     "grants": [{"topics": "*", "rights": ["admin"]}, {"groups": "*", "rights": ["admin"]}]},
    {"name": "nobody", "key": "nobody-secret"},
]}


@pytest.fixture(params=["yaml", "json"])
def keys_file(request, tmp_path):
    if request.param == "yaml":
        return write_yaml(tmp_path, YAML_KEYS)
    return write_json(tmp_path, JSON_KEYS)


def test_keys_file_with_hashed_and_plain_keys(keys_file):
    ring = KeyRing.from_config("", keys_file)
    assert ring.enabled
    billing = ring.authenticate("billing-secret")
    ops = ring.authenticate("ops-plain-secret")
    nobody = ring.authenticate("nobody-secret")
    assert (billing.name, ops.name, nobody.name) == ("billing", "ops", "nobody")
    assert not (billing.superuser or ops.superuser or nobody.superuser)
    assert set(billing.grants) == {grant("topics", "billing.*", "read", "write"),
                                   grant("topics", "orders", "read"),
                                   grant("groups", "billing-*", "read")}
    assert set(ops.grants) == {grant("topics", "*", "admin"), grant("groups", "*", "admin")}
    assert nobody.grants == ()
    # the hash is a hash of the key: presenting the hash itself is not the key
    assert ring.authenticate(sha("billing-secret")) is None
    assert ring.authenticate("billing") is None  # nor is the name


def test_keys_file_grants_mean_what_they_say(keys_file):
    ring = KeyRing.from_config("", keys_file)
    billing = ring.authenticate("billing-secret")
    assert billing.allows("topics", "write", "billing.invoices")
    assert billing.allows("topics", "read", "orders")
    assert not billing.allows("topics", "write", "orders")
    assert billing.allows("groups", "read", "billing-1")
    assert not billing.allows("groups", "admin", "billing-1")
    ops = ring.authenticate("ops-plain-secret")
    assert ops.allows("topics", "admin", "anything") and ops.allows("groups", "write", "g")
    nobody = ring.authenticate("nobody-secret")
    assert not any(nobody.allows(kind, right, "x")
                   for kind in ("topics", "groups") for right in ("read", "write", "admin"))


def test_uppercase_hex_digest_is_accepted(tmp_path):
    path = write_yaml(tmp_path, f"keys:\n  - name: a\n    key_sha256: {sha('k').upper()}\n")
    assert KeyRing.from_config("", path).authenticate("k").name == "a"


def test_env_keys_and_keys_file_together(keys_file):
    ring = KeyRing.from_config("env-one, env-two", keys_file)
    env = ring.authenticate("env-two")
    assert env is not None and env.superuser
    assert ring.authenticate("ops-plain-secret").name == "ops"
    assert ring.authenticate("billing-secret").name == "billing"
    assert ring.authenticate("nope") is None


def test_keys_file_with_an_empty_key_list_and_env_keys(tmp_path):
    path = write_yaml(tmp_path, "keys: []\n")
    ring = KeyRing.from_config("env-one", path)
    assert ring.enabled and ring.authenticate("env-one").superuser


# -- malformed keys files: KeysFileError naming the file and the entry ------------------------

GOOD_ENTRY = f"""\
  - name: good
    key_sha256: {sha("good")}
    grants:
      - {{topics: "t", rights: [read]}}
"""


def bad_entry(body: str) -> str:
    """A file whose second entry (keys[1]) is ``body`` (an indented YAML list item)."""
    return "keys:\n" + GOOD_ENTRY + body


def bad_grant(grant_yaml: str) -> str:
    """A file whose keys[1].grants[1] is ``grant_yaml``."""
    return bad_entry(f"""\
  - name: second
    key: second-secret
    grants:
      - {{topics: "ok", rights: [read]}}
      - {grant_yaml}
""")


MALFORMED = {
    # the whole file
    "empty file": ("", None),
    "top level is a list": ("- name: a\n  key: x\n", None),
    "top level is a string": ("just text\n", None),
    "no keys list": ("users: []\n", None),
    "keys is a mapping": ("keys: {name: a, key: x}\n", None),
    "keys is a string": ("keys: abc\n", None),
    "invalid yaml": ("keys: [\n  - {name: a\n", None),
    # an entry
    "entry is not a mapping": (bad_entry("  - just-a-string\n"), "keys[1]"),
    "missing name": (bad_entry("  - key: k2\n"), "keys[1]"),
    "empty name": (bad_entry("  - {name: '', key: k2}\n"), "keys[1]"),
    "name not a string": (bad_entry("  - {name: [a], key: k2}\n"), "keys[1]"),
    "bad hex": (bad_entry(f"  - {{name: b, key_sha256: {'zz' * 32}}}\n"), "keys[1]"),
    "hex too short": (bad_entry(f"  - {{name: b, key_sha256: {sha('k')[:-2]}}}\n"), "keys[1]"),
    "hex too long": (bad_entry(f"  - {{name: b, key_sha256: {sha('k')}00}}\n"), "keys[1]"),
    "hex odd length": (bad_entry(f"  - {{name: b, key_sha256: {sha('k')[:-1]}}}\n"), "keys[1]"),
    "empty hex": (bad_entry("  - {name: b, key_sha256: ''}\n"), "keys[1]"),
    "no key": (bad_entry("  - {name: b, grants: []}\n"), "keys[1]"),
    "empty plain key": (bad_entry("  - {name: b, key: ''}\n"), "keys[1]"),
    "max_sessions zero": (bad_entry("  - {name: b, key: k2, max_sessions: 0}\n"), "keys[1]"),
    "max_sessions negative": (bad_entry("  - {name: b, key: k2, max_sessions: -3}\n"), "keys[1]"),
    "max_sessions a string": (bad_entry("  - {name: b, key: k2, max_sessions: '5'}\n"),
                              "keys[1]"),
    "max_sessions a fraction": (bad_entry("  - {name: b, key: k2, max_sessions: 1.5}\n"),
                                "keys[1]"),
    "max_sessions a boolean": (bad_entry("  - {name: b, key: k2, max_sessions: true}\n"),
                               "keys[1]"),
    "max_waiting_polls zero": (bad_entry("  - {name: b, key: k2, max_waiting_polls: 0}\n"),
                               "keys[1]"),
    "max_waiting_polls negative": (
        bad_entry("  - {name: b, key: k2, max_waiting_polls: -1}\n"), "keys[1]"),
    "max_waiting_polls a string": (
        bad_entry("  - {name: b, key: k2, max_waiting_polls: '5'}\n"), "keys[1]"),
    "max_waiting_polls a fraction": (
        bad_entry("  - {name: b, key: k2, max_waiting_polls: 2.5}\n"), "keys[1]"),
    "max_waiting_polls a boolean": (
        bad_entry("  - {name: b, key: k2, max_waiting_polls: true}\n"), "keys[1]"),
    # a grant
    "grant not a mapping": (bad_grant("read-everything"), "keys[1].grants[1]"),
    "grant without kind": (bad_grant("{rights: [read]}"), "keys[1].grants[1]"),
    "grant with both kinds": (bad_grant("{topics: a, groups: b, rights: [read]}"),
                              "keys[1].grants[1]"),
    "grant with unknown kind": (bad_grant("{streams: a, rights: [read]}"), "keys[1].grants[1]"),
    "pattern not a string": (bad_grant("{topics: [a, b], rights: [read]}"),
                             "keys[1].grants[1]"),
    "rights missing": (bad_grant("{topics: a}"), "keys[1].grants[1]"),
    "rights not a list": (bad_grant("{topics: a, rights: read}"), "keys[1].grants[1]"),
    "rights empty": (bad_grant("{topics: a, rights: []}"), "keys[1].grants[1]"),
    "unknown right": (bad_grant("{topics: a, rights: [read, delete]}"), "keys[1].grants[1]"),
    "right wrong case": (bad_grant("{topics: a, rights: [Read]}"), "keys[1].grants[1]"),
}


@pytest.mark.parametrize("text,entry", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_keys_file_is_refused_naming_file_and_entry(tmp_path, text, entry):
    path = write_yaml(tmp_path, text)
    with pytest.raises(KeysFileError) as info:
        KeyRing.from_config("env-key", path)
    message = str(info.value)
    assert path in message, message
    if entry is not None:
        assert entry in message, message
    assert isinstance(info.value, ValueError)  # KeysFileError is a ValueError


def test_malformed_json_keys_file_is_refused(tmp_path):
    path = write_json(tmp_path, {"keys": [{"name": "a", "key": "x",
                                           "grants": [{"topics": "t", "rights": "all"}]}]})
    with pytest.raises(KeysFileError, match=r"keys\[0\]\.grants\[0\]") as info:
        KeyRing.from_config("", path)
    assert path in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_keys_file_is_refused_naming_it(tmp_path, kind):
    path = str(tmp_path / "nope.yml") if kind == "missing" else str(tmp_path)
    with pytest.raises(KeysFileError) as info:
        KeyRing.from_config("", path)
    assert path in str(info.value)


def test_error_messages_never_quote_a_plain_key(tmp_path):
    """A refused file is reported at start-up (logged): the message says where, not the key."""
    path = write_yaml(tmp_path, bad_entry("  - {name: b, key: sk_live_DoNotLeak123,"
                                          " grants: [{topics: a, rights: [own]}]}\n"))
    with pytest.raises(KeysFileError) as info:
        KeyRing.from_config("", path)
    assert "sk_live_DoNotLeak123" not in str(info.value)


DUPLICATE_IN_FILE = "keys:\n" + GOOD_ENTRY + "  - {name: good, key: other-secret}\n"
# env keys are named key-1, key-2, ...: a file entry with such a name collides
DUPLICATE_WITH_ENV = "keys:\n" + GOOD_ENTRY + "  - {name: key-2, key: other-secret}\n"


@pytest.mark.parametrize("text,env", [
    (DUPLICATE_IN_FILE, ""),
    (DUPLICATE_WITH_ENV, "env-a,env-b"),
], ids=["within-file", "env-and-file"])
def test_duplicate_names_are_refused(tmp_path, text, env):
    path = write_yaml(tmp_path, text)
    with pytest.raises(KeysFileError):
        KeyRing.from_config(env, path)


@pytest.mark.parametrize("text,env,name", [
    (DUPLICATE_IN_FILE, "", "good"),
    (DUPLICATE_WITH_ENV, "env-a,env-b", "key-2"),
], ids=["within-file", "env-and-file"])
def test_duplicate_names_error_names_the_file_and_the_entry(tmp_path, text, env, name):
    path = write_yaml(tmp_path, text)
    with pytest.raises(KeysFileError) as info:
        KeyRing.from_config(env, path)
    message = str(info.value)
    assert path in message and name in message, message


def test_load_keys_file_returns_hashes_and_principals(tmp_path):
    path = write_yaml(tmp_path, YAML_KEYS)
    entries = load_keys_file(path)
    assert [p.name for _, p in entries] == ["billing", "ops", "nobody"]
    assert entries[0][0] == bytes.fromhex(sha("billing-secret"))
    assert entries[1][0] == hashlib.sha256(b"ops-plain-secret").digest()


# -- authenticate ------------------------------------------------------------------------------

@pytest.fixture
def ring(tmp_path):
    """Five keys: two from the environment, three from the file."""
    return KeyRing.from_config("env-one,env-two", write_yaml(tmp_path, YAML_KEYS))


ALL_KEYS = ["env-one", "env-two", "billing-secret", "ops-plain-secret", "nobody-secret"]


def test_right_key_gives_its_principal_and_wrong_keys_give_none(ring):
    names = [ring.authenticate(k).name for k in ALL_KEYS]
    assert len(set(names)) == len(ALL_KEYS)
    assert names[2:] == ["billing", "ops", "nobody"]
    for wrong in ("", None, "wrong", "billing-secre", "billing-secret ", "BILLING-SECRET",
                  "env-one,env-two", "billing-secretx"):
        assert ring.authenticate(wrong) is None, wrong


@pytest.fixture
def compare_calls(monkeypatch):
    """Counts calls of hmac.compare_digest as seen by consumer_api.auth."""
    calls = []
    real = auth.hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    return calls


@pytest.mark.parametrize("presented", ALL_KEYS + ["wrong-key", "x" * 300],
                         ids=[f"key{i}" for i in range(len(ALL_KEYS))] + ["wrong", "long-wrong"])
def test_every_configured_key_is_compared_whatever_the_outcome(ring, compare_calls, presented):
    """Constant time: one compare_digest per configured key, found first, last or not at all,
    and always of two SHA-256 digests (equal lengths, so compare_digest's time does not
    depend on the presented key's length)."""
    result = ring.authenticate(presented)
    assert (result is not None) == (presented in ALL_KEYS)
    assert len(compare_calls) == len(ALL_KEYS), compare_calls
    assert all(len(a) == 32 and len(b) == 32 for a, b in compare_calls)
    # each configured key's hash is compared exactly once
    stored = {b for _, b in compare_calls}
    assert len(stored) == len(ALL_KEYS)


def test_the_comparison_is_the_only_way_a_key_matches(ring, monkeypatch):
    """authenticate decides with compare_digest (not ==): if it says no, nothing matches."""
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: False)
    assert ring.authenticate("billing-secret") is None


# -- Principal.allows ---------------------------------------------------------------------------

@pytest.mark.parametrize("rights,allowed", [
    (("read",), {"read"}),
    (("write",), {"write"}),
    (("read", "write"), {"read", "write"}),
    (("admin",), {"read", "write", "admin"}),
    (("read", "admin"), {"read", "write", "admin"}),
])
@pytest.mark.parametrize("kind", ["topics", "groups"])
def test_rights_and_admin_implies_read_and_write(kind, rights, allowed):
    p = Principal("p", (grant(kind, "x", *rights),))
    for right in ("read", "write", "admin"):
        assert p.allows(kind, right, "x") == (right in allowed), (rights, right)


@pytest.mark.parametrize("pattern,matches,misses", [
    ("orders", ["orders"], ["orders2", "order", "Orders", "xorders", "orders.1", ""]),
    ("billing.*", ["billing.", "billing.invoices", "billing.a.b"],
     ["billing", "billingx", "xbilling.a", "Billing.a", "billing-a"]),
    ("billing-*", ["billing-1", "billing-"], ["billing", "billing.1", "a-billing-1"]),
    ("*", ["a", "orders", "billing.x", "_x", "a-b.c"], []),
    ("t?", ["t1", "tx"], ["t", "t12"]),
])
def test_glob_patterns(pattern, matches, misses):
    p = Principal("p", (grant("topics", pattern, "read"),))
    for name in matches:
        assert p.allows("topics", "read", name), (pattern, name)
    for name in misses:
        assert not p.allows("topics", "read", name), (pattern, name)


def test_kinds_are_kept_apart():
    topics_admin = Principal("t", (grant("topics", "*", "admin"),))
    groups_admin = Principal("g", (grant("groups", "*", "admin"),))
    for right in ("read", "write", "admin"):
        assert topics_admin.allows("topics", right, "orders")
        assert not topics_admin.allows("groups", right, "orders")
        assert groups_admin.allows("groups", right, "orders")
        assert not groups_admin.allows("topics", right, "orders")


def test_several_grants_add_up():
    p = Principal("p", (grant("topics", "a.*", "read"), grant("topics", "a.b", "write"),
                        grant("groups", "g", "read")))
    assert p.allows("topics", "read", "a.b") and p.allows("topics", "write", "a.b")
    assert p.allows("topics", "read", "a.c") and not p.allows("topics", "write", "a.c")
    assert not p.allows("topics", "admin", "a.b")
    assert p.allows("groups", "read", "g") and not p.allows("groups", "read", "a.b")


def test_no_grants_allow_nothing():
    p = Principal("p")
    assert not p.superuser
    assert not any(p.allows(k, r, n) for k in ("topics", "groups")
                   for r in ("read", "write", "admin") for n in ("", "x", "*"))
    assert not p.sees("topics", "x")


def test_superuser_allows_everything():
    su = Principal("root", superuser=True)
    for kind in ("topics", "groups"):
        for right in ("read", "write", "admin"):
            assert su.allows(kind, right, "anything-at-all")
        assert su.sees(kind, "x")


def test_sees_means_some_right():
    p = Principal("p", (grant("topics", "w", "write"), grant("topics", "r", "read"),
                        grant("groups", "g*", "admin")))
    assert p.sees("topics", "w") and p.sees("topics", "r")
    assert not p.sees("topics", "other")
    assert p.sees("groups", "g1") and not p.sees("groups", "w") and not p.sees("topics", "g1")


def test_max_sessions_and_max_waiting_polls_are_read_per_key(tmp_path):
    path = write_yaml(tmp_path, "keys:\n"
                      "  - {name: capped, key: k1, max_sessions: 7, max_waiting_polls: 3}\n"
                      "  - {name: defaults, key: k2}\n")
    ring = KeyRing.from_config("env-key", path)
    capped, defaults, env = (ring.authenticate(k) for k in ("k1", "k2", "env-key"))
    assert (capped.max_sessions, capped.max_waiting_polls) == (7, 3)
    # None: the server's per-client defaults apply (the keys of CONSUMER_API_API_KEYS too)
    assert (defaults.max_sessions, defaults.max_waiting_polls) == (None, None)
    assert (env.max_sessions, env.max_waiting_polls) == (None, None)


def test_a_bad_max_waiting_polls_message_names_the_field(tmp_path):
    path = write_yaml(tmp_path, bad_entry("  - {name: b, key: k2, max_waiting_polls: 0}\n"))
    with pytest.raises(KeysFileError, match=r"keys\[1\]: 'max_waiting_polls' must be"):
        KeyRing.from_config("", path)
