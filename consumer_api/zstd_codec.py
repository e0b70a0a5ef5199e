"""The zstd module: the standard library's ``compression.zstd`` (Python 3.14 on) or its
backport ``backports.zstd`` (before) -- the one urllib3, and so ``requests``, decodes zstd
responses with. Same API either way (``compress``, ``ZstdCompressor``,
``ZstdDecompressor`` with ``max_length``, ``ZstdError``)."""
from __future__ import annotations

try:
    from compression import zstd
except ImportError:  # Python < 3.14
    from backports import zstd

__all__ = ["zstd"]
