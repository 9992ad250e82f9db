"""Read objects out of an R lazy-load database (`Rdata.rdx` + `Rdata.rdb`) without R.

Debian's `r-cran-*` data packages ship their datasets this way, not as `.rda` files. The
`.rdx` index is a gzip'd R serialization of a list naming each object's (offset, length) in
the `.rdb`. Each chunk there is a 4-byte big-endian uncompressed length, then either a zlib
stream (index flag TRUE) or a type byte and a stream: `Z` raw LZMA2, `2` bzip2, `0` none.
The decompressed chunk is an ordinary R serialization, which the `rdata` package converts.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

from airoad.errors import AiroadError

# R writes type-'Z' chunks with lzma_raw_encoder and LZMA2 preset 9 | extreme (src/main/connections.c).
_R_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


def _parse(raw: bytes) -> Any:
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns about the missing file extension
        return rdata.parser.parse_data(raw, extension=".rds")


def _convert(parsed: Any) -> Any:
    import rdata

    return rdata.conversion.convert(parsed)


def read_index(rdx: Path) -> dict[str, tuple[int, int]]:
    """Object name -> (offset, length) of its compressed chunk in the `.rdb` file."""
    try:
        index = _convert(_parse(gzip.decompress(rdx.read_bytes())))
        return {str(k): (int(v[0]), int(v[1])) for k, v in index["variables"].items()}
    except (OSError, EOFError, KeyError, ValueError, NotImplementedError) as exc:
        raise AiroadError(f"{rdx} is not a readable R lazy-load index ({exc})") from exc


def decompress_chunk(chunk: bytes) -> bytes:
    """Undo R's `R_compress1/2/3` framing: length header, then zlib or a typed stream."""
    if len(chunk) < 5:
        raise AiroadError("R lazy-load chunk is shorter than its 4-byte header")
    (size,) = struct.unpack(">I", chunk[:4])
    body = chunk[4:]
    if body[:1] == b"Z":
        out = lzma.decompress(body[1:], format=lzma.FORMAT_RAW, filters=_R_LZMA_FILTERS)
    elif body[:1] == b"2":
        out = bz2.decompress(body[1:])
    elif body[:1] == b"0":
        out = body[1:]
    else:  # zlib streams start with 0x78, never with one of the type bytes above
        out = zlib.decompress(body)
    if len(out) != size:
        raise AiroadError(f"R lazy-load chunk decompressed to {len(out)} bytes, header says {size}")
    return out


def read_object(rdx: Path, name: str) -> Any:
    """Convert object `name` to Python (data.frame -> pandas DataFrame, vectors -> arrays)."""
    index = read_index(rdx)
    if name not in index:
        raise AiroadError(f"{rdx} has no object '{name}'; it holds: {', '.join(sorted(index))}")
    offset, length = index[name]
    with open(rdx.with_suffix(".rdb"), "rb") as fh:
        fh.seek(offset)
        chunk = fh.read(length)
    try:
        raw = decompress_chunk(chunk)
    except (lzma.LZMAError, OSError, zlib.error, ValueError) as exc:
        raise AiroadError(
            f"object '{name}' in {rdx.with_suffix('.rdb')} is corrupt ({exc})"
        ) from exc
    return _convert(_parse(raw))
