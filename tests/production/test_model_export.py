"""Grader for model-export: pickle / joblib / state_dict / safetensors round trips are exact, the
unsafe-pickle demo really runs its payload and the safe loaders refuse it, the pickle scanner
finds the same globals as a recording unpickler, and TorchScript and ONNX (dynamo exporter,
skl2onnx) agree with the originals on batch and sequence lengths never seen at export."""

from __future__ import annotations

import io
import pickle
import time

import joblib
import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

REFERENCE = "airoad.production.model_export"

N_FEATURES, HIDDEN, N_CLASSES = 6, 8, 3
EXPORT_SHAPE = (2, 9, N_FEATURES)  # batch 2, sequence 9 at export; tests use other sizes
NEW_SHAPES = [(1, 1), (1, 28), (5, 3), (13, 41), (64, 7)]  # (batch, seq)


def _assert_same_pipeline(got, want, X):
    """Every fitted array bit-identical; outputs equal up to BLAS summation order (1e-12)."""
    for (name, a), (_, b) in zip(got.steps, want.steps, strict=True):
        for attr in ("mean_", "scale_", "components_", "coef_", "intercept_"):
            if hasattr(b, attr):
                np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=name)
    np.testing.assert_allclose(got.predict_proba(X), want.predict_proba(X), rtol=1e-12, atol=1e-15)


def _seq_model(impl, seed=0):
    torch.manual_seed(seed)
    return impl.SequenceClassifier(N_FEATURES, HIDDEN, N_CLASSES).eval()


def _inputs(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, t, N_FEATURES, generator=gen) for b, t in shapes]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


@pytest.fixture(scope="module")
def pipeline(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), PCA(12, random_state=0), LogisticRegression())
    return pipe.fit(X, y)


@pytest.fixture(scope="module")
def seq_export(impl, tmp_path_factory):
    """One dynamo export per test module (it takes seconds): (model, path to the .onnx file)."""
    folder = tmp_path_factory.mktemp("onnx_seq")
    model = _seq_model(impl)
    path = impl.export_onnx(
        model, torch.randn(*EXPORT_SHAPE), folder / "seq.onnx", {0: "batch", 1: "seq"}
    )
    return model, folder / "seq.onnx", path


class _Anything:
    """Stands in for every class a recording unpickler is asked for: accepts any construction."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Anything()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


def _recorded_globals(data: bytes) -> set[str]:
    """The names pickle's own Unpickler asks find_class for, with harmless stand-ins returned."""
    seen = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            seen.add(f"{module}.{name}")
            return _Anything

    Recorder(io.BytesIO(data)).load()
    return seen


def test_sequence_classifier_matches_torch_functional(impl):
    """SequenceClassifier = conv1d over T (padding 1), ReLU, max over T, linear (values and grads)."""
    model = _seq_model(impl).double()
    x = torch.randn(3, 11, N_FEATURES, dtype=torch.float64, requires_grad=True)
    out = model(x)
    x2 = x.detach().clone().requires_grad_(True)
    h = torch.relu(F.conv1d(x2.transpose(1, 2), model.conv.weight, model.conv.bias, padding=1))
    want = F.linear(h.amax(dim=2), model.out.weight, model.out.bias)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12, msg="logits differ from F ops")
    g = torch.randn_like(want)
    out.backward(g)
    want.backward(g)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-12, atol=1e-12, msg="input grads differ")
    assert model(x[:, :4]).shape == (3, N_CLASSES), "a shorter sequence must give (N, n_classes)"


def test_pickle_round_trip_is_exact(impl, pipeline, digits, tmp_path):
    """save_pickle is readable by pickle.load and load_pickle reads pickle.dump's file, exactly."""
    X, _ = digits
    path = impl.save_pickle(pipeline, tmp_path / "pipe.pkl")
    with open(tmp_path / "pipe.pkl", "rb") as fh:
        back = pickle.load(fh)
    _assert_same_pipeline(back, pipeline, X)
    assert path == tmp_path / "pipe.pkl", "save_pickle must return the path it wrote"
    obj = {"w": np.arange(5.0), "name": "x", "nested": [1, (2, 3)]}
    with open(tmp_path / "obj.pkl", "wb") as fh:
        pickle.dump(obj, fh)
    got = impl.load_pickle(tmp_path / "obj.pkl")
    assert got["name"] == "x" and got["nested"] == [1, (2, 3)]
    np.testing.assert_array_equal(got["w"], obj["w"])


def test_joblib_round_trip_is_exact_and_compress_shrinks(impl, pipeline, digits, tmp_path):
    """save_joblib writes what joblib.load reads; load_joblib reads joblib.dump; compress > 0 is smaller."""
    X, _ = digits
    impl.save_joblib(pipeline, tmp_path / "pipe.joblib")
    _assert_same_pipeline(joblib.load(tmp_path / "pipe.joblib"), pipeline, X)
    joblib.dump(pipeline, tmp_path / "lib.joblib")
    _assert_same_pipeline(impl.load_joblib(tmp_path / "lib.joblib"), pipeline, X)
    zeros = np.zeros(50_000)
    raw = impl.save_joblib(zeros, tmp_path / "raw.joblib")
    small = impl.save_joblib(zeros, tmp_path / "small.joblib", compress=3)
    assert small.stat().st_size < raw.stat().st_size / 10, "compress=3 should shrink zeros a lot"
    np.testing.assert_array_equal(joblib.load(small), zeros)


def test_marker_payload_runs_on_pickle_load_not_on_dump(impl, tmp_path):
    """Unpickling a MarkerPayload writes its marker file (pickle.loads, load_pickle, joblib.load)."""
    marker = tmp_path / "marker.txt"
    data = pickle.dumps(impl.MarkerPayload(marker, "owned"))
    assert not marker.exists(), "pickling alone must not run the payload"
    pickle.loads(data)
    assert marker.read_text() == "owned", "pickle.loads did not call the payload's callable"
    marker.unlink()
    impl.load_pickle(impl.save_pickle(impl.MarkerPayload(marker, "again"), tmp_path / "p.pkl"))
    assert marker.read_text() == "again", "load_pickle did not run the payload"
    marker.unlink()
    joblib.load(impl.save_joblib(impl.MarkerPayload(marker, "jl"), tmp_path / "p.joblib"))
    assert marker.read_text() == "jl", "joblib files are pickles: loading must run the payload"


def test_weights_only_loader_refuses_the_payload(impl, tmp_path):
    """load_state_dict (torch.load weights_only=True) raises UnpicklingError and runs nothing."""
    marker, bad = tmp_path / "marker.txt", tmp_path / "evil.pt"
    torch.save(impl.MarkerPayload(marker, "x"), bad)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):
        impl.load_state_dict(_seq_model(impl), bad)
    assert not marker.exists(), "the weights-only loader ran the payload"
    torch.load(bad, weights_only=False)  # the unsafe default of old torch versions
    assert marker.read_text() == "x", "the same file with weights_only=False runs the payload"


def test_safetensors_loader_refuses_the_payload(impl, tmp_path):
    """load_safetensors raises on a pickle file without running it; safetensors stores tensors only."""
    marker, bad = tmp_path / "marker.txt", tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps(impl.MarkerPayload(marker, "x")))
    with pytest.raises(Exception):  # noqa: B017 - safetensors' own error type is not public
        impl.load_safetensors(_seq_model(impl), bad)
    assert not marker.exists(), "the safetensors loader ran the payload"
    with pytest.raises(Exception):  # noqa: B017
        save_file({"payload": impl.MarkerPayload(marker)}, str(tmp_path / "x.safetensors"))
    good = impl.save_safetensors(_seq_model(impl), tmp_path / "good.safetensors")
    assert all(isinstance(v, torch.Tensor) for v in load_file(str(good)).values())


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_globals_matches_a_recording_unpickler(impl, protocol, pipeline, tmp_path):
    """pickle_globals lists exactly the names pickle's Unpickler would import, at every protocol."""
    from collections import OrderedDict

    marker = tmp_path / "marker.txt"
    objects = [
        impl.MarkerPayload(marker),
        pipeline,
        OrderedDict(a=np.arange(3), b=[1.5, "s"]),
        {"plain": [1, 2, (3, "four")], "s": "numpy", "t": "ndarray"},
    ]
    for obj in objects:
        data = pickle.dumps(obj, protocol=protocol)
        found = impl.pickle_globals(data)
        assert len(found) == len(set(found)), f"names repeated: {found}"
        assert set(found) == _recorded_globals(data), f"protocol {protocol}, {type(obj).__name__}"
    assert not marker.exists(), "scanning a pickle must never run it"
    names = impl.pickle_globals(pickle.dumps(impl.MarkerPayload(marker), protocol=protocol))
    wanted = "write_text" if protocol >= 4 else "getattr"  # before protocol 4: getattr(Path, ...)
    assert any(n.endswith(wanted) for n in names), f"the payload's callable is missing: {names}"


def test_pickle_globals_follows_the_stack_in_hand_made_pickles(impl):
    """pickle_globals tracks the stack and memo: junk pushed and popped between the two names does not fool it."""
    junk_between = b"\x80\x04\x8c\x07pathlib\x8c\x04Path)0\x93."  # 'pathlib' 'Path' () POP
    via_memo = (  # 'pathlib' memo 0, {} memo 1, POP, GET 0, 'Path', STACK_GLOBAL
        b"\x80\x04\x8c\x07pathlib\x94}\x940h\x00\x8c\x04Path\x93."
    )
    for data in (junk_between, via_memo):
        assert _recorded_globals(data) == {"pathlib.Path"}, "the hand-made pickle is malformed"
        assert impl.pickle_globals(data) == ["pathlib.Path"], pickletools_dis(data)


def pickletools_dis(data: bytes) -> str:
    import pickletools

    out = io.StringIO()
    pickletools.dis(data, out)
    return "expected ['pathlib.Path'] for this pickle:\n" + out.getvalue()


def test_state_dict_round_trip_is_exact_and_strict(impl, tmp_path):
    """save_state_dict/load_state_dict restore every weight exactly, in eval mode, strictly."""
    model = _seq_model(impl, seed=1)
    path = impl.save_state_dict(model, tmp_path / "w.pt")
    saved = torch.load(path, weights_only=True)
    assert saved.keys() == model.state_dict().keys()
    fresh = _seq_model(impl, seed=2).train()
    back = impl.load_state_dict(fresh, path)
    assert back is fresh and not back.training, "load_state_dict must return the model in eval mode"
    x = _inputs([(4, 10)])[0]
    torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)
    partial = {k: v for k, v in model.state_dict().items() if k != "out.bias"}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(RuntimeError):
        impl.load_state_dict(_seq_model(impl), tmp_path / "partial.pt")


def test_safetensors_round_trip_and_hand_read_header(impl, tmp_path):
    """save/load_safetensors are exact; safetensors_header agrees with safe_open's keys, shapes, dtypes."""
    model = _seq_model(impl, seed=3)
    path = impl.save_safetensors(model, tmp_path / "w.safetensors")
    lib = load_file(str(path))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(lib[k], v, rtol=0, atol=0, msg=f"tensor {k} changed")
    back = impl.load_safetensors(_seq_model(impl, seed=4).train(), path)
    x = _inputs([(3, 5)])[0]
    torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)
    assert not back.training
    header = impl.safetensors_header(path)
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    with safe_open(str(path), "pt") as fh:
        assert set(tensors) == set(fh.keys())
        for k in fh.keys():
            assert tensors[k]["shape"] == list(fh.get_slice(k).get_shape()), k
            assert tensors[k]["dtype"] == fh.get_slice(k).get_dtype(), k
    end = max(v["data_offsets"][1] for v in tensors.values())
    n = int.from_bytes(path.read_bytes()[:8], "little")
    assert 8 + n + end == path.stat().st_size, "offsets do not cover the file's data section"


def test_torchscript_round_trip_over_new_shapes(impl, tmp_path):
    """A traced, saved and reloaded SequenceClassifier matches eager torch on unseen batch/seq sizes."""
    model = _seq_model(impl, seed=5)
    path = impl.export_torchscript(model, torch.randn(*EXPORT_SHAPE), tmp_path / "m.ts")
    loaded = impl.load_torchscript(path)
    assert isinstance(loaded, torch.jit.ScriptModule)
    for x in _inputs(NEW_SHAPES):
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-6)


def test_onnx_export_is_one_file_with_symbolic_axes(impl, seq_export):
    """export_onnx writes one valid ONNX file whose input has named dynamic batch and seq dims."""
    _, path, returned = seq_export
    assert returned == path and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["seq.onnx"], (
        "weights must be inside the file"
    )
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    (inp,) = graph.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[:2]] == ["batch", "seq"], "batch/seq must be symbolic"
    assert dims[2].dim_value == N_FEATURES
    assert inp.name == "input" and graph.graph.output[0].name == "output"


def test_onnx_runtime_matches_torch_on_new_batch_and_seq(impl, seq_export):
    """ONNX Runtime on the exported graph equals eager torch (rtol 1e-4, atol 1e-5) at unseen sizes."""
    model, path, _ = seq_export
    session = impl.onnx_session(path, threads=1)
    assert session.get_session_options().intra_op_num_threads == 1
    for x in _inputs(NEW_SHAPES, seed=7):
        (out,) = impl.run_onnx(session, x.numpy())
        with torch.no_grad():
            want = model(x).numpy()
        np.testing.assert_allclose(
            out, want, rtol=1e-4, atol=1e-5, err_msg=f"shape {tuple(x.shape)}"
        )


def test_sklearn_onnx_matches_sklearn(impl, pipeline, digits, tmp_path):
    """skl2onnx graph: float64 probabilities equal sklearn's to 1e-10, float32 to 1e-4, labels equal."""
    X, _ = digits
    for dtype, atol in [(np.float64, 1e-10), (np.float32, 1e-4)]:
        path = impl.export_sklearn_onnx(
            pipeline, X.shape[1], tmp_path / f"p{dtype.__name__}.onnx", dtype
        )
        session = impl.onnx_session(path, threads=2)
        assert session.get_session_options().intra_op_num_threads == 2
        for n in (1, 7, 600):
            label, proba = impl.run_onnx(session, X[:n].astype(dtype))
            np.testing.assert_allclose(proba, pipeline.predict_proba(X[:n]), atol=atol, rtol=0)
            if dtype is np.float64:
                np.testing.assert_array_equal(label, pipeline.predict(X[:n]))


def test_check_round_trip_applies_the_tolerance(impl):
    """check_round_trip: ok iff |b - a| <= atol + rtol*|a| everywhere; shape mismatch and NaN fail."""
    xs = [np.array([1.0, -2.0, 100.0]), np.ones((2, 3))]
    rows = impl.check_round_trip(lambda x: x, lambda x: x, xs, rtol=0, atol=0)
    assert [r["ok"] for r in rows] == [True, True] and [r["max_abs_diff"] for r in rows] == [0, 0]
    assert [tuple(r["shape"]) for r in rows] == [(3,), (2, 3)]
    (r,) = impl.check_round_trip(lambda x: x, lambda x: x + 0.011, xs[:1], rtol=0, atol=0.01)
    assert not r["ok"] and r["max_abs_diff"] == pytest.approx(0.011)
    (r,) = impl.check_round_trip(lambda x: x, lambda x: x + 0.009, xs[:1], rtol=0, atol=0.01)
    assert r["ok"]
    (r,) = impl.check_round_trip(lambda x: x, lambda x: x * 1.001, xs[:1], rtol=2e-3, atol=0)
    assert r["ok"], "the relative tolerance scales with |original|"
    (r,) = impl.check_round_trip(lambda x: x, lambda x: x * 1.003, xs[:1], rtol=2e-3, atol=0)
    assert not r["ok"]
    (r,) = impl.check_round_trip(lambda x: x, lambda x: x[:2], xs[:1], rtol=1, atol=1)
    assert not r["ok"] and r["max_abs_diff"] == float("inf"), "different shapes can never match"
    (r,) = impl.check_round_trip(lambda x: x, lambda x: x * np.nan, xs[:1], rtol=1, atol=1)
    assert not r["ok"], "a NaN output must fail the check"


def test_size_on_disk_counts_files_and_folders(impl, tmp_path):
    """size_on_disk is a file's byte count, or the sum over all files under a folder."""
    (tmp_path / "a.bin").write_bytes(b"x" * 1234)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 766)
    assert impl.size_on_disk(tmp_path / "a.bin") == 1234
    assert impl.size_on_disk(tmp_path) == 2000


def test_median_latency_skips_warmup_and_outliers(impl):
    """median_latency_ms calls fn warmup+repeats times, times only the repeats, returns the median in ms."""
    calls, own_ms = [], []

    def fn(x):
        calls.append(x)
        slow = len(calls) <= 3 or len(calls) == 5  # three warm-up calls and one timed outlier
        start = time.perf_counter()
        time.sleep(0.04 if slow else 0.005)
        own_ms.append(1000 * (time.perf_counter() - start))

    ms = impl.median_latency_ms(fn, "x", repeats=5, warmup=3)
    assert len(calls) == 8 and calls == ["x"] * 8
    want = float(np.median(own_ms[3:]))  # the calls' own durations, warm-up left out
    assert want * 0.95 <= ms <= want * 1.25 + 0.5, (
        f"expected about the median of the timed calls' durations, {want:.2f} ms; got {ms:.2f}"
    )
