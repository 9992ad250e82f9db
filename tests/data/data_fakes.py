"""A local Source for fetch tests: serves bytes from memory, can fail half way, counts calls."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from airoad.data.registry import Dataset
from airoad.data.sources import Note, Source, quiet


class SourceBroke(RuntimeError):
    """Raised by FakeSource to simulate a download dying part way through."""


@dataclass(frozen=True)
class FakeSource(Source):
    payload: dict[str, bytes] = field(default_factory=dict)
    fail_after: int | None = None  # write this many files, then raise
    calls: list[int] = field(default_factory=list)

    def describe(self) -> str:
        return "fake in-memory source"

    def fetch_into(self, dest: Path, note: Note = quiet) -> None:
        self.calls.append(1)
        for i, (name, data) in enumerate(self.payload.items()):
            if self.fail_after is not None and i >= self.fail_after:
                # leave a half-written file behind in the temp folder, as a dying download would
                (dest / name).write_bytes(data[: len(data) // 2])
                raise SourceBroke("connection reset")
            note(f"writing {name}")
            (dest / name).write_bytes(data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = {"a.bin": b"alpha" * 1000, "b.bin": b"bravo" * 2000}


def fake_dataset(
    name: str = "fake", served: dict[str, bytes] | None = None, fail_after: int | None = None
) -> Dataset:
    """A dataset whose checksums describe PAYLOAD; `served` lets the source send other bytes."""
    served = PAYLOAD if served is None else served
    return Dataset(
        name=name,
        title="fake",
        licence="none",
        size_mb=0.01,
        returns="bytes",
        source=FakeSource(members={k: k for k in PAYLOAD}, payload=served, fail_after=fail_after),
        files={k: sha(v) for k, v in PAYLOAD.items()},
        loader=lambda folder: {k: (folder / k).read_bytes() for k in PAYLOAD},
    )
