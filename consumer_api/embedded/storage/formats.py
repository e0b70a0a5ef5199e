"""Which format a segment's ``.log`` file is written in, told by its first bytes.

Format 2 (:mod:`batches`) files start with its file header; anything else that holds
records is format 1 (:mod:`records`), which has none. A file with nothing in it yet (empty,
or zeros where a header or frame would be) may become either: its opener decides. Both
modules offer the same functions (``encode_batch``, ``decode_from``, ``scan``,
``header_at``, ``batch_at``, ``position_for_timestamp``) and ``FILE_HEADER``, so a segment
holds its format as a module and calls it.
"""
from __future__ import annotations

from consumer_api.embedded.storage import batches, records

#: the format new segments are written in
CURRENT = batches
#: bytes to read from the start of a file to tell its format
PROBE_BYTES = len(batches.FILE_HEADER)


def of_file_start(head: bytes, blank=None):
    """The format module of a ``.log`` file starting with ``head``; ``blank`` when the
    file holds nothing yet."""
    if head.startswith(batches.FILE_HEADER):
        return batches
    if len(head) < 4 or head[:4] == b"\0\0\0\0":
        return blank
    return records
