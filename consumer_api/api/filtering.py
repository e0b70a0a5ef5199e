"""The ``filter`` of a consume (body) or a read (a JSON-encoded query parameter): checked and
compiled into a :class:`~consumer_api.sessions.scan.Scan` bounded by
``CONSUMER_API_MAX_FILTER_SCAN_RECORDS``, and what a filtered response adds:
``"scanned"`` (records examined) and ``"scan_limit_reached"`` (it stopped at the bound
with more to examine)."""
from __future__ import annotations

import orjson

from consumer_api.api.state import state
from consumer_api.errors import InvalidRequest
from consumer_api.record_filter import compile_filter
from consumer_api.sessions.scan import Scan


def scan_of(spec) -> Scan:
    """A Scan keeping what ``spec`` (a parsed filter, or None: keep everything) matches;
    InvalidRequest naming what is wrong with it."""
    if spec is None:
        return Scan()
    return Scan(compile_filter(spec), state().config.max_filter_scan_records)


def scan_of_query(text: str | None) -> Scan:
    """As :func:`scan_of`, from the JSON text of a query parameter."""
    if text is None:
        return Scan()
    try:
        spec = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"invalid filter: not JSON ({exc})",
                             {"filter": ["not JSON: give the filter as JSON text"]}) from None
    return scan_of(spec)


def scan_fields(scan: Scan) -> bytes:
    """The JSON members a filtered response adds (with a leading comma); none without a
    filter."""
    if not scan.filtered:
        return b""
    return b',"scanned":%d,"scan_limit_reached":%s' % (
        scan.scanned, b"true" if scan.exhausted else b"false")
