"""The two binary readers on synthetic bytes: IDX files and R lazy-load chunks."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib

import numpy as np
import pytest

from airoad.data.datasets_images import read_idx
from airoad.data.rdata_lazyload import decompress_chunk
from airoad.errors import AiroadError


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


@pytest.mark.parametrize("zipped", [False, True])
def test_idx_roundtrip(tmp_path, zipped):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = _idx(arr)
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(raw) if zipped else raw)
    np.testing.assert_array_equal(read_idx(path, 3), arr)


def test_idx_bad_magic_and_truncation(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"PK\x03\x04not idx")
    with pytest.raises(AiroadError, match="not an IDX file"):
        read_idx(path, 3)
    path.write_bytes(_idx(np.zeros(10, dtype=np.uint8)))
    with pytest.raises(AiroadError, match="not an IDX file of 3-d"):
        read_idx(path, 3)
    path.write_bytes(_idx(np.zeros((2, 2, 2), dtype=np.uint8))[:-3])
    with pytest.raises(AiroadError, match="header promises 8"):
        read_idx(path, 3)


PAYLOAD = b"X\n" + bytes(range(256)) * 10
FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


@pytest.mark.parametrize(
    "body",
    [
        zlib.compress(PAYLOAD),
        b"Z" + lzma.compress(PAYLOAD, format=lzma.FORMAT_RAW, filters=FILTERS),
        b"2" + bz2.compress(PAYLOAD),
        b"0" + PAYLOAD,
    ],
    ids=["zlib", "lzma", "bzip2", "none"],
)
def test_r_chunk_formats(body):
    assert decompress_chunk(struct.pack(">I", len(PAYLOAD)) + body) == PAYLOAD


def test_r_chunk_length_mismatch():
    with pytest.raises(AiroadError, match="header says"):
        decompress_chunk(struct.pack(">I", 5) + b"0" + PAYLOAD)
