"""Tests of the shared ONNX text module (`airoad.production.onnx_text`): the exported graph
matches the torch classifier over dynamic batch and sequence shapes, int8 stays close, and the
predictor tokenises like the torch model. A tiny random BERT stands in for MiniLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from airoad.errors import AiroadError
from airoad.production import onnx_text

INT8_ATOL = 0.05  # logits of order 0.1-1; int8 weights + per-batch int8 activations


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(folder, fp32 onnx, int8 onnx, torch model) of a tiny random BERT, exported once."""
    from transformers import AutoModelForSequenceClassification

    root = tmp_path_factory.mktemp("onnx_text")
    folder = onnx_text.save_tiny_classifier(root / "model", seed=3, max_length=12)
    fp32 = onnx_text.export_classifier_onnx(folder, root / "model.onnx")
    int8 = onnx_text.quantize_int8(fp32, root / "model.int8.onnx")
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    return folder, fp32, int8, model


def _torch_logits(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask)).logits


@pytest.mark.parametrize(("batch", "seq"), [(1, 2), (1, 40), (3, 7), (17, 12), (5, 64)])
def test_onnx_logits_match_torch_over_dynamic_shapes(tiny, batch, seq):
    """ONNX Runtime logits equal the torch model's for any batch size and sequence length."""
    import onnxruntime as ort

    _, fp32, int8, model = tiny
    gen = np.random.default_rng(batch * 100 + seq)
    ids = gen.integers(5, 30, size=(batch, seq)).astype(np.int64)
    lengths = gen.integers(2, seq + 1, size=batch)
    lengths[0] = seq  # at least one row with no padding
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    want = _torch_logits(model, ids, mask).numpy()
    feeds = {"input_ids": ids, "attention_mask": mask}
    got = ort.InferenceSession(str(fp32)).run(["logits"], feeds)[0]
    assert got.shape == (batch, 2)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4, err_msg="fp32 ONNX != torch")
    got8 = ort.InferenceSession(str(int8)).run(["logits"], feeds)[0]
    np.testing.assert_allclose(got8, want, atol=INT8_ATOL, err_msg="int8 ONNX far from torch")


def test_int8_file_is_smaller_and_stores_int8_weights(tiny):
    """The quantised graph keeps its MatMul weights as int8 initialisers and is smaller."""
    import onnx

    _, fp32, int8, _ = tiny
    model = onnx.load(str(int8))
    kinds = {t.data_type for t in model.graph.initializer}
    assert onnx.TensorProto.INT8 in kinds, "no int8 initialiser: weights were not quantised"
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in model.graph.node)
    assert int8.stat().st_size < fp32.stat().st_size


def test_predictor_matches_torch_with_truncation_and_order(tiny):
    """predict_proba equals softmax of torch logits on the same tokenisation, in input order."""
    from transformers import AutoTokenizer

    folder, fp32, _, model = tiny
    texts = [
        "great coffee, love it!",
        "bad",
        "the tea is not very good and the price is awful " * 4,  # cut at max_length 12
        "would buy<br />again",
        "",
    ]
    clf = onnx_text.OnnxTextClassifier(fp32, folder, threads=1, batch_size=2)
    assert clf.labels == ["other", "great"] and clf.max_length == 12
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok(
        [onnx_text.clean_text(t) for t in texts],
        truncation=True,
        max_length=12,
        padding=True,
        return_tensors="np",
    )
    assert enc["input_ids"].shape[1] == 12, "the long text should be truncated to max_length"
    want = torch.softmax(_torch_logits(model, enc["input_ids"], enc["attention_mask"]), 1)
    got = clf.predict_proba(texts)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5, err_msg="probabilities differ")
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    assert clf.predict_proba([]).shape == (0, 2)


def test_clean_text_drops_html_breaks():
    """<br /> tags become spaces and whitespace runs collapse, as in bert-sentiment training."""
    assert onnx_text.clean_text(" good<br />tea<BR>  again ") == "good tea again"


def test_predictor_errors_are_one_sentence(tiny, tmp_path):
    """A missing file or a bad thread count is a clear AiroadError, not a stack trace."""
    folder, fp32, _, _ = tiny
    with pytest.raises(AiroadError, match="export"):
        onnx_text.OnnxTextClassifier(tmp_path / "missing.onnx", folder)
    with pytest.raises(AiroadError, match="threads"):
        onnx_text.OnnxTextClassifier(fp32, folder, threads=0)
