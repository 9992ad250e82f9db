"""The serving platform without a live server: the registry alias -> artifact resolution, the
image-generator loader and /generate, the env-driven factory, and `airoad serve`'s one-line
errors. The real server (fuzzing, load, shutdown, the demo page) is in test_serve_live.py."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from airoad.cli import app
from airoad.errors import AiroadError
from airoad.labs import artifacts
from airoad.production import serving
from airoad.production import serving_registry as registry

LAB = "bert-sentiment"


@pytest.fixture(scope="module")
def quick_model(lab_artifact):
    return lab_artifact(LAB, "classifier")


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An MLflow store with its schema made once: creating it costs seconds per test."""
    home = tmp_path_factory.mktemp("store_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIROAD_HOME", str(home))
        registry._client().search_registered_models()
    return home / "mlflow.db"


@pytest.fixture(autouse=True)
def _fresh_store(empty_store):
    """Every test starts from its own copy of the empty registry."""
    from airoad.home import home

    shutil.copy(empty_store, home() / "mlflow.db")


def _manifest(folder):
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.name != artifacts.MANIFEST
    }
    (folder / artifacts.MANIFEST).write_text(json.dumps({"files": files}))
    return folder


def _linked_copy(src, dst):
    """A copy of an artifact folder made of hard links (the 90 MB weights are not copied)."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


# ---------------------------------------------------------------- the registry


def test_missing_alias_registers_the_cached_artifact_once(quick_model):
    """No alias yet: the cached quick artifact becomes version 1 with its tags; then it is found."""
    first = registry.resolve_model(LAB, quick=True)
    assert first.registered_now and first.version == "1" and first.alias == "champion"
    assert first.folder == quick_model.resolve()
    again = registry.resolve_model(LAB, quick=True)
    assert not again.registered_now and again.version == "1" and again.folder == first.folder
    version = registry._client().get_model_version(LAB, "1")
    spec = json.loads((quick_model / "lab.json").read_text())
    assert version.tags["test_accuracy"] == str(spec["test_accuracy"])
    assert version.tags["config_hash"] == quick_model.parent.name  # the cache's own hash


def test_repointed_alias_serves_the_new_version(quick_model, tmp_path):
    """Moving `champion` to another version serves that version's folder."""
    registry.resolve_model(LAB, quick=True)
    copy = _linked_copy(quick_model, tmp_path / "retrained")
    client = registry._client()
    v2 = registry.register_artifact(client, LAB, copy, {"any": 1}, "challenger")
    assert registry.resolve_model(LAB, "challenger").folder == copy.resolve()
    assert registry.resolve_model(LAB).version == "1"
    client.set_registered_model_alias(LAB, "champion", v2.version)
    moved = registry.resolve_model(LAB)
    assert (moved.version, moved.folder) == ("2", copy.resolve())


def test_missing_artifact_names_the_run_command(tmp_path, monkeypatch):
    """No alias and no cached model: one sentence with the `airoad run` that makes it."""
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(artifacts.ArtifactMissing, match=r"`airoad run bert-sentiment --quick`"):
        registry.resolve_model(LAB, quick=True)
    with pytest.raises(artifacts.ArtifactMissing, match=r"`airoad run bert-sentiment` first"):
        registry.resolve_model(LAB, alias="prod")


def test_corrupted_artifact_is_refused(quick_model, tmp_path):
    """A registered folder whose files no longer match the manifest is never served."""
    copy = _linked_copy(quick_model, tmp_path / "tampered")
    spec = json.loads((copy / "lab.json").read_text())
    (copy / "lab.json").unlink()  # a new file, not a write through the hard link
    (copy / "lab.json").write_text(json.dumps({**spec, "labels": ["great", "other"]}))
    registry.register_artifact(registry._client(), LAB, copy, {}, "champion")
    with pytest.raises(AiroadError, match="no longer match its manifest"):
        registry.resolve_model(LAB)


def test_only_servable_labs_are_served():
    """A lab without a servable model and an unknown lab are one clear error each."""
    with pytest.raises(AiroadError, match="serve one of bert-sentiment"):
        registry.servable_artifact("char-gpt")
    with pytest.raises(AiroadError, match="no-such-lab"):
        registry.servable_artifact("no-such-lab")


# ---------------------------------------------------------------- the image generator


class _TinyGenerator(torch.nn.Module):
    def __init__(self, latent: int, n_labels: int):
        super().__init__()
        self.net = torch.nn.Linear(latent, 7 * 5)
        self.emb = torch.nn.Embedding(max(n_labels, 1), latent)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z)).reshape(-1, 1, 7, 5)


class _TinyConditional(_TinyGenerator):
    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.tanh(self.net(z + self.emb(labels))).reshape(-1, 1, 7, 5)


def _generator_folder(tmp_path, n_labels=0):
    torch.manual_seed(0)
    module = (_TinyConditional if n_labels else _TinyGenerator)(8, n_labels)
    folder = tmp_path / f"gen{n_labels}"
    folder.mkdir()
    torch.jit.script(module).save(str(folder / "generator.pt"))
    spec = {"kind": "image-generator", "latent_dim": 8, "n_labels": n_labels}
    (folder / "lab.json").write_text(json.dumps(spec))
    return _manifest(folder), module


def test_generator_matches_its_module(tmp_path):
    """generate() is the eager module on seeded noise, mapped from [-1, 1] to uint8 (n, H, W)."""
    folder, module = _generator_folder(tmp_path)
    gen = serving.TorchScriptGenerator(folder)
    images = gen.generate(6, None, seed=3)
    assert images.dtype == np.uint8 and images.shape == (6, 7, 5)
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = np.round(255 * (module(z).reshape(6, 7, 5).double().numpy() + 1) / 2)
    np.testing.assert_array_equal(images, want.astype(np.uint8))
    assert not np.array_equal(images, gen.generate(6, None, seed=4))
    with pytest.raises(ValueError, match="unconditional"):
        gen.generate(2, 1, seed=0)
    with pytest.raises(AiroadError, match="beside a classifier"):  # until create_app takes None
        serving.build_app(serving.load_parts(folder), {"k": 1.0})


def test_conditional_generator_needs_a_label_in_range(tmp_path):
    """A conditional generator uses the label, and refuses none or one out of range."""
    folder, module = _generator_folder(tmp_path, n_labels=3)
    gen = serving.TorchScriptGenerator(folder)
    assert not np.array_equal(gen.generate(2, 0, seed=1), gen.generate(2, 2, seed=1))
    for bad in (None, 3):
        with pytest.raises(ValueError, match="0..2"):
            gen.generate(2, bad, seed=1)
    with pytest.raises(AiroadError, match="not an image generator"):
        serving.TorchScriptGenerator(tmp_path)


def test_env_factory_serves_classifier_generator_and_drift(quick_model, tmp_path, monkeypatch):
    """create_app_from_env: /ready after the background load, /predict equals the model,
    /generate a PNG grid of the right size, /drift the report of the reference file given."""
    from fastapi.testclient import TestClient
    from PIL import Image

    from airoad.production.predictors import HFTextClassifier

    gen_folder, _ = _generator_folder(tmp_path)
    monkeypatch.setenv("AIROAD_SERVE_MODEL_DIR", str(quick_model))
    monkeypatch.setenv("AIROAD_SERVE_GENERATOR_DIR", str(gen_folder))
    monkeypatch.setenv("AIROAD_API_KEYS", "k1, k2:50")
    reference = serving.save_drift_reference(quick_model, tmp_path / "drift.json")
    monkeypatch.setenv("AIROAD_SERVE_DRIFT_REFERENCE", str(reference))
    text = "Great coffee, I would buy it again"
    with TestClient(serving.create_app_from_env()) as client:
        for _ in range(600):  # the classifier loads in a background thread
            if client.get("/ready").status_code == 200:
                break
            time.sleep(0.05)
        headers = {"X-API-Key": "k2"}
        got = client.post("/predict", json={"text": text}, headers=headers).json()
        probs = HFTextClassifier(quick_model).predict_proba([text])[0]
        np.testing.assert_allclose(
            [got["probabilities"]["other"], got["probabilities"]["great"]], probs, atol=1e-6
        )
        png = client.post("/generate", json={"n": 6, "seed": 2}, headers=headers)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(png.content)).size == (3 * 5, 2 * 7)  # 3 columns, 2 rows
        report = client.get("/drift", headers=headers).json()
        assert report["rows"] == 1 and set(report["features"]) == {"n_words", "label"}
        assert client.get("/drift", headers={"X-API-Key": "nope"}).status_code == 401


def test_env_factory_needs_no_training_data_without_a_drift_reference(quick_model, monkeypatch):
    """A container has no fine-food data: without AIROAD_SERVE_DRIFT_REFERENCE the app starts
    and /drift says monitoring is off (a documented 4xx); a bad reference file is one sentence."""
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIROAD_SERVE_MODEL_DIR", str(quick_model))
    monkeypatch.setenv("AIROAD_API_KEYS", "k1")
    monkeypatch.delenv("AIROAD_SERVE_DRIFT_REFERENCE", raising=False)
    monkeypatch.setattr(serving, "drift_reference", lambda spec: pytest.fail("read the data"))
    with TestClient(serving.create_app_from_env()) as client:
        answer = client.get("/drift", headers={"X-API-Key": "k1"})
        assert 400 <= answer.status_code < 500 and "drift" in answer.text.lower()
    monkeypatch.setenv("AIROAD_SERVE_DRIFT_REFERENCE", str(quick_model / "lab.json"))
    with pytest.raises(AiroadError, match="not a drift reference"):
        serving.create_app_from_env()


def test_env_factory_refuses_bad_settings(tmp_path, monkeypatch, quick_model):
    """Missing model folder, tampered folder, no keys or a bad backend: one sentence each."""
    monkeypatch.delenv("AIROAD_SERVE_MODEL_DIR", raising=False)
    with pytest.raises(AiroadError, match="AIROAD_SERVE_MODEL_DIR"):
        serving.create_app_from_env()
    monkeypatch.setenv("AIROAD_SERVE_MODEL_DIR", str(tmp_path))
    with pytest.raises(AiroadError, match="manifest"):
        serving.create_app_from_env()
    monkeypatch.setenv("AIROAD_SERVE_MODEL_DIR", str(quick_model))
    monkeypatch.setenv("AIROAD_API_KEYS", "")
    with pytest.raises(AiroadError, match="AIROAD_API_KEYS"):
        serving.create_app_from_env()
    monkeypatch.setenv("AIROAD_API_KEYS", "k:fast")
    with pytest.raises(AiroadError, match="must be a number"):
        serving.create_app_from_env()
    monkeypatch.setenv("AIROAD_API_KEYS", "k")
    monkeypatch.setenv("AIROAD_SERVE_BACKEND", "tpu")
    with pytest.raises(AiroadError, match="torch, onnx-int8"):
        serving.create_app_from_env()


# ---------------------------------------------------------------- the command's errors


def _serve(*args):
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    return result.output


def test_serve_errors_are_one_line(tmp_path, monkeypatch):
    """Unknown lab, model not trained (fresh clone), port in use, bad backend: one line, exit 1."""
    assert "no-such-lab" in _serve("no-such-lab")
    assert "--backend must be one of" in _serve(LAB, "--backend", "gpu")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert f"port {port} on 127.0.0.1 is already in use" in _serve(LAB, "--port", str(port))
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "fresh-clone"))
    assert "run `airoad run bert-sentiment` first" in _serve(LAB, "--port", "0")


def test_ui_without_gradio_says_how_to_install(monkeypatch):
    """`--ui` without the extra installed names `pip install airoad[ui]`."""
    monkeypatch.setitem(__import__("sys").modules, "gradio", None)
    assert "pip install airoad[ui]" in _serve(LAB, "--ui", "--port", "0")


def test_both_backends_clean_text_as_the_model_was_trained(quick_model):
    """A review with HTML breaks scores as its cleaned text did in training, on torch as on ONNX."""
    from airoad.production.predictors import HFTextClassifier

    model = HFTextClassifier(quick_model)
    raw, clean = "Lovely tea.<br /><br />Would   buy again", "Lovely tea. Would buy again"
    np.testing.assert_allclose(model.predict_proba([raw]), model.predict_proba([clean]), atol=1e-9)
