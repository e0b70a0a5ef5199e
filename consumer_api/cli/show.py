"""How ``consume`` prints a record: one line in text (keys and values as UTF-8 with every
non-printable byte escaped, so nothing binary reaches the terminal raw), JSON or base64 --
or a kcat-style format string:

    %t topic   %p partition   %o offset   %T timestamp (epoch ms)   %k key   %s value
    %h headers (name=value,...)   %K key length   %S value length   %% a percent sign
    \\n newline   \\t tab   \\\\ backslash

A missing key or value prints as nothing (its length as -1). Pure functions.
"""
from __future__ import annotations

import base64
import json

import click

#: the words --format takes besides a format string: how keys and values print
MODES = ("text", "json", "base64")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def printable(data: bytes | None) -> str:
    """``data`` as text safe for a terminal: UTF-8, with bytes that are not UTF-8 and
    control characters escaped (``\\xNN``, ``\\n``, ``\\t``, ``\\r``); None is empty."""
    if data is None:
        return ""
    text = data.decode("utf-8", errors="backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def shown(data: bytes | None, mode: str):
    """A key or value for the JSON line of --json: text, parsed JSON (else text) or base64."""
    if data is None:
        return None
    if mode == "base64":
        return base64.b64encode(data).decode("ascii")
    text = data.decode("utf-8", errors="backslashreplace")
    if mode == "json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def line_of(rec, mode: str, as_json: bool) -> str:
    """The default line of a record: ``topic[p]@offset key<TAB>value`` (no key: no key),
    or with --json one JSON object."""
    if as_json:
        return json.dumps({"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                           "timestamp": rec.timestamp, "key": shown(rec.key, mode),
                           "value": shown(rec.value, mode), "headers": rec.headers},
                          ensure_ascii=False)
    key, value = _as_mode(rec.key, mode), _as_mode(rec.value, mode)
    head = f"{rec.topic}[{rec.partition}]@{rec.offset}"
    return f"{head} {key}\t{value}" if rec.key is not None else f"{head}\t{value}"


def _as_mode(data: bytes | None, mode: str) -> str:
    if mode == "base64":
        return "" if data is None else base64.b64encode(data).decode("ascii")
    return printable(data)


def compile_format(fmt: str):
    """A function from a record to its line by the format string ``fmt``; a usage error
    naming an unknown placeholder."""
    pieces: list = []
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char in "%\\" and i + 1 < len(fmt):
            code = fmt[i + 1]
            if char == "\\":
                pieces.append(_ESCAPES.get(code, "\\" + code))
            elif code == "%":
                pieces.append("%")
            elif code in FIELDS:
                pieces.append(FIELDS[code])
            else:
                raise click.BadParameter(
                    f"unknown placeholder %{code} (known: %t %p %o %T %k %s %h %K %S %%)",
                    param_hint="'--format'")
            i += 2
        else:
            pieces.append(char)
            i += 1
    return lambda rec: "".join(p if isinstance(p, str) else p(rec) for p in pieces)


def _length(data) -> str:
    return "-1" if data is None else str(len(data))


FIELDS = {
    "t": lambda r: r.topic, "p": lambda r: str(r.partition), "o": lambda r: str(r.offset),
    "T": lambda r: str(r.timestamp), "k": lambda r: printable(r.key),
    "s": lambda r: printable(r.value),
    "h": lambda r: ",".join(f"{printable(n.encode())}={printable(v.encode())}"
                            for n, v in (r.headers or {}).items()),
    "K": lambda r: _length(r.key), "S": lambda r: _length(r.value),
}
