"""HTTP content codings (gzip, zstd): which one a response may use, compressing a response
body, and decompressing a request body within a size limit.

* :func:`response_coding` reads ``Accept-Encoding`` (RFC 9110, section 12.5.3): q-values,
  ``*``, ``identity`` and ``q=0`` exclusions. Without the header nothing is compressed: a
  response is compressed only when its client asked.
* :func:`compress` makes one gzip member (zlib, level :data:`GZIP_LEVEL`) or one zstd frame
  (level :data:`ZSTD_LEVEL`) of a list of bytes chunks.
* :func:`decode` undoes a request's ``Content-Encoding`` (one coding; several gzip members
  or zstd frames in a row are one stream). Output comes :data:`STEP_BYTES` at a time and
  stops at ``limit + 1`` bytes, so a decompression bomb costs at most ``limit`` bytes of
  memory before it is refused; every step is charged to a
  :class:`~consumer_api.budget.ByteBudget` first.

zstd: :mod:`consumer_api.zstd_codec`. Pure functions: thread-safe.
"""
from __future__ import annotations

import zlib
from functools import lru_cache

from werkzeug.http import parse_accept_header

from consumer_api.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType
from consumer_api.zstd_codec import zstd

#: the codings this server compresses with, most preferred first (on equal q-values)
CODINGS = ("zstd", "gzip")
#: what a request's Content-Encoding may name (x-gzip: an alias RFC 9110 keeps)
REQUEST_CODINGS = {"gzip": "gzip", "x-gzip": "gzip", "zstd": "zstd", "identity": None}
GZIP_LEVEL = 1
ZSTD_LEVEL = 1
#: bytes of output decompressed (and charged to the budget) per step
STEP_BYTES = 256 * 1024


class NoRoom(Exception):
    """The budget has no room for the decompressed body (nothing of it is kept)."""


# -- responses ------------------------------------------------------------------------------

#: headers up to this long are remembered (a client sends the same one on every request;
#: a long one is worked out each time, so no client can fill the memory with its own)
CACHED_HEADER_CHARS = 200


def response_coding(accept_encoding: str | None) -> str | None:
    """The coding of :data:`CODINGS` to answer a request with ``accept_encoding`` in, or
    None for none (identity): the one with the highest q-value above 0 -- a coding not
    named takes the q-value of ``*`` if present, else 0 -- unless ``identity`` is given a
    higher one (named, or through ``*``)."""
    if accept_encoding and len(accept_encoding) > CACHED_HEADER_CHARS:
        return _coding_for(accept_encoding)
    return _remembered_coding_for(accept_encoding)


def _coding_for(accept_encoding: str | None) -> str | None:
    if not accept_encoding:
        return None
    given: dict[str, float] = {}
    for value, quality in parse_accept_header(accept_encoding):
        given.setdefault(value.lower(), quality)
    star = given.get("*")

    def quality(coding: str):
        return given.get(coding, star)

    best = max(CODINGS, key=lambda coding: quality(coding) or 0)
    best_q, identity_q = quality(best) or 0, quality("identity")
    if best_q <= 0 or (identity_q is not None and identity_q > best_q):
        return None
    return best


_remembered_coding_for = lru_cache(maxsize=256)(_coding_for)


def compress(chunks: list, coding: str) -> bytes:
    """``chunks`` (bytes-like) compressed whole in ``coding`` (``gzip`` or ``zstd``)."""
    if coding == "gzip":
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing
    else:
        compressor = zstd.ZstdCompressor(ZSTD_LEVEL)
    out = [compressor.compress(chunk) for chunk in chunks]
    out.append(compressor.flush())
    return b"".join(out)


# -- requests -------------------------------------------------------------------------------

def request_coding(content_encoding: str | None) -> str | None:
    """The coding a request's ``Content-Encoding`` names (None: the body is as it is);
    UnsupportedMediaType (415) naming the codings taken for any other value, several
    codings included."""
    text = (content_encoding or "").strip().lower()
    if not text:
        return None
    if text in REQUEST_CODINGS:
        return REQUEST_CODINGS[text]
    taken = ["gzip", "zstd", "identity"]
    exc = UnsupportedMediaType(
        f"Content-Encoding {content_encoding.strip()!r} is not supported: send one of "
        f"{', '.join(taken)}", {"content_encoding": content_encoding.strip()[:100],
                                "accepted_encodings": taken})
    exc.headers = {"Accept-Encoding": ", ".join(CODINGS)}  # RFC 9110, section 12.5.3
    raise exc


def decode(data: bytes, coding: str | None, limit: int, budget=None):
    """``data`` decompressed from ``coding`` (None: ``data`` itself, uncharged). Each step
    of output is taken from ``budget`` (a ByteBudget, or None) before it is kept: the
    caller gives back ``len(result)`` once done with it; on any error nothing stays taken.
    BodyTooLarge past ``limit`` bytes, InvalidRequest (400) for data that is not valid in
    ``coding``, :class:`NoRoom` when the budget is spent."""
    if coding is None or not data:
        return data
    out = bytearray()
    try:
        for piece in _PIECES[coding](data):
            if len(out) + len(piece) > limit:
                raise BodyTooLarge(f"request body too large once decompressed (the limit is "
                                   f"{limit} bytes)", {"max_body_bytes": limit})
            if budget is not None and not budget.take(len(piece)):
                raise NoRoom()
            out += piece
    except (zlib.error, zstd.ZstdError, EOFError) as exc:
        _give(budget, len(out))
        raise InvalidRequest(f"the request body is not valid {coding} data: {exc}",
                             {"body": [f"Not valid {coding} data: {exc}"]}) from None
    except BaseException:
        _give(budget, len(out))
        raise
    return out


def _give(budget, n: int) -> None:
    if budget is not None and n:
        budget.give(n)


def _gzip_pieces(data: bytes):
    """The output of the gzip members in ``data``, at most STEP_BYTES at a time."""
    while data:
        member = zlib.decompressobj(31)
        while not member.eof:
            piece = member.decompress(data, STEP_BYTES)
            data = member.unconsumed_tail
            if not piece and not data:
                raise EOFError("the data ends inside a gzip member")
            yield piece
        data = member.unused_data


def _zstd_pieces(data: bytes):
    """The output of the zstd frames in ``data``, at most STEP_BYTES at a time."""
    while data:
        frame = zstd.ZstdDecompressor()
        while not frame.eof:
            piece = frame.decompress(data, STEP_BYTES)
            data = b""  # the decompressor keeps what it has not used
            if not piece and frame.needs_input and not frame.eof:
                raise EOFError("the data ends inside a zstd frame")
            yield piece
        data = frame.unused_data


_PIECES = {"gzip": _gzip_pieces, "zstd": _zstd_pieces}
