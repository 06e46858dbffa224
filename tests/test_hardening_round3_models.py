"""Issue 27, items 2, 4, 5 and 10 (library level): every value a model file carries is safe on
its own, memory is bounded by products, a damaged MiniLM ``model.safetensors`` is one line
naming the file, and the small ones (checkpoint position, callbacks, one neighbours block,
``evaluate`` on no data)."""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thetanet import Dense, Sequential, initializers, load_model
from thetanet.compounds.adjustment import adjusted
from thetanet.compounds.embeddings import (
    EmbeddingsMissingError,
    StaticEmbeddings,
    resolve_model_dir,
)
from thetanet.compounds.system import NCClassifier, NCSettings
from thetanet.data.tratz import Compounds
from thetanet.files import ModelFileError

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _checksummed(doc: dict) -> dict:
    """``doc`` with its checksum recomputed — what anyone who edits a model file can do."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return {**body, "sha256": hashlib.sha256(json.dumps(body, sort_keys=True,
                                                        separators=(",", ":")).encode()
                                             ).hexdigest()}


def _one_line_model_error(exc: BaseException) -> bool:
    return isinstance(exc, ModelFileError) and "\n" not in str(exc)


@pytest.fixture(scope="module")
def tiny_nc(tmp_path_factory) -> tuple[Path, dict]:
    """A fitted noun-compound model on made-up words (features words + chars), τ = 1."""
    rng = np.random.default_rng(1)
    words = [f"w{i}x" for i in range(10)]
    mods = [words[i] for i in rng.integers(0, 10, 40)]
    heads = [words[i] for i in rng.integers(0, 10, 40)]
    labels = [["A", "B", "C"][i] for i in rng.integers(0, 3, 40)]
    s = NCSettings(features=["words", "chars:min_count=1"], hidden=[4], max_epochs=2,
                   batch_size=8, seeds=[0], logit_adjustment=1.0)
    clf = NCClassifier(s, ["A", "B", "C"])
    clf.fit(Compounds(mods, heads, labels), None, cache_dir=False, epochs=[2])
    path = tmp_path_factory.mktemp("nc") / "m"
    clf.save(path)
    return path, json.loads((path / "nc.json").read_text())


def _load_edited(path: Path, original: dict, edit) -> NCClassifier:
    doc = json.loads(json.dumps(original))
    edit(doc)
    (path / "nc.json").write_text(json.dumps(_checksummed(doc)))
    try:
        return NCClassifier.load(path, cache_dir=False)
    finally:
        (path / "nc.json").write_text(json.dumps(original))


PAIRS = Compounds(["w1x", "zz", "w3x"], ["w2x", "w3x", "qq"])

# --------------------------------------------------------------------------------------------
# item 2: a model file's values
# --------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(raw=st.lists(st.floats(1e-12, 1.0), min_size=2, max_size=40),
       tau=st.floats(-10, 10), seed=st.integers(0, 2**16))
def test_logit_adjustment_never_overflows_for_valid_priors(raw, tau, seed):
    prior = np.asarray(raw) / np.sum(raw)
    prior = np.maximum(prior, 1e-12)
    logits = np.random.default_rng(seed).normal(scale=30, size=(5, len(raw)))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True)).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    out = adjusted(probs.copy(), prior, tau)
    assert np.all(np.isfinite(out)) and np.allclose(out.sum(axis=1), 1, atol=1e-5)
    # the same argmax as log p − τ log π, where that is unambiguous
    with np.errstate(divide="ignore"):  # an underflowed p is −∞: never the argmax here
        want = np.log(probs.astype(np.float64)) - tau * np.log(prior)
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0] > 1e-3) & np.all(probs > 0, axis=1)
    assert np.array_equal(out.argmax(axis=1)[clear], want.argmax(axis=1)[clear])


@pytest.mark.parametrize("prior", [[1e-300, 0.5, 0.5], [0.0, 0.5, 0.5], [2.0, 0.5, 0.5],
                                   [0.2, 0.2, 0.2], [0.5, 0.5, 0.5], [1e-13, 0.5, 0.5 - 1e-13]])
def test_class_priors_outside_the_simplex_are_refused(tiny_nc, prior):
    path, original = tiny_nc
    with pytest.raises(ModelFileError) as err:
        _load_edited(path, original, lambda d: d.update(class_prior=prior))
    assert _one_line_model_error(err.value) and "class_prior" in str(err.value)


@pytest.mark.parametrize("tau", [10.0, -10.0])
def test_extreme_but_valid_priors_predict_finite_probabilities(tiny_nc, tau):
    path, original = tiny_nc

    def edit(d):
        d["class_prior"] = [1e-12, 0.5, 0.5 - 1e-12]
        d["settings"]["logit_adjustment"] = tau

    probs = _load_edited(path, original, edit).predict_proba(PAIRS)
    assert np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("tau", [float("nan"), 11, "1", None, True])
def test_tau_is_checked_as_the_command_line_does(tiny_nc, tau):
    path, original = tiny_nc
    with pytest.raises(ModelFileError) as err:
        _load_edited(path, original,
                     lambda d: d["settings"].update(logit_adjustment=tau))
    assert _one_line_model_error(err.value)


CHARS_OPTIONS = [{"ngram_min": 5, "ngram_max": 2}, {"ngram_min": 0}, {"ngram_max": 10**6},
                 {"lowercase": "yes"}, {"min_count": -1}, {"weight": 1e30}, {"evil": 1},
                 {"normalize": None}]


@pytest.mark.parametrize("bad", CHARS_OPTIONS)
def test_extractor_options_in_a_model_file_are_checked(tiny_nc, bad):
    path, original = tiny_nc

    def edit(d):
        d["features"]["extractors"][1]["options"].update(bad)

    with pytest.raises(ModelFileError) as err:
        _load_edited(path, original, edit)
    assert _one_line_model_error(err.value) and "chars" in str(err.value)


@pytest.mark.parametrize("spec", ["chars:ngram_min=5,ngram_max=2", "chars:evil=1",
                                  "words:min_count=0", "chars:weight=1e30"])
def test_feature_settings_in_a_model_file_are_checked(tiny_nc, spec):
    path, original = tiny_nc
    with pytest.raises(ModelFileError) as err:
        _load_edited(path, original, lambda d: d["settings"].update(features=[spec]))
    assert _one_line_model_error(err.value)


@pytest.mark.parametrize("model", ["org/name", "sentence-transformers/all-MiniLM-L6-v2",
                                   "https://example.org/m", "../nowhere"])
def test_a_model_option_never_reaches_the_network(monkeypatch, model):
    tried = []

    def refuse(self, address):
        tried.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(EmbeddingsMissingError, match="never downloads"):
        resolve_model_dir(model)
    assert tried == []


def test_nan_or_inf_weights_are_refused_at_load(tmp_path):
    model = Sequential([Dense(3, "relu"), Dense(2, "softmax")], seed=0).build(4)
    model.compile("sgd", "sparse_categorical_crossentropy")
    for bad in (np.nan, np.inf, -np.inf):
        model.params[0][1, 2] = bad  # as a damaged or edited file would hold it
        model.save(tmp_path / "m")
        with pytest.raises(ModelFileError, match="NaN or infinite") as err:
            load_model(tmp_path / "m")
        assert _one_line_model_error(err.value)


@pytest.mark.parametrize("mean, proj", [(1e308, 0.1), (1.5, 0.1), (0.1, 1e30)])
def test_a_bilinear_state_beyond_its_bounds_is_refused(mean, proj):
    from thetanet.compounds.features import EXTRACTORS

    e = EXTRACTORS["pair-bilinear"](cache_dir=False, d=1, space="minilm+gloss")
    side = {"words": ["a", "b"], "mean": [mean, 0.0], "projection": [[proj], [0.2]]}
    with pytest.raises(ValueError, match="pair-bilinear"):
        e.set_state({"modifiers": side, "heads": side})


def test_one_named_neighbours_block_with_a_saved_state_of_two():
    from thetanet.compounds.features.neighbours import NeighbourBlocks, NeighbourOptions

    with pytest.raises(ValueError, match="settings name 1 block, the saved state holds 2"):
        NeighbourBlocks.from_state([NeighbourOptions()], 3, {"blocks": [{}, {}]},
                                   cache_dir=False)


# --------------------------------------------------------------------------------------------
# item 4: memory bounded by products
# --------------------------------------------------------------------------------------------


def _in_child(code: str, limit_mb: int = 1200, timeout: int = 60) -> subprocess.CompletedProcess:
    prelude = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, "
               f"({limit_mb} << 20, {limit_mb} << 20))\n")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)


def test_a_network_above_the_parameter_budget_is_refused_before_allocating():
    r = _in_child("""
        from thetanet.builders import mlp
        from thetanet.layers import ParameterBudgetError
        try:
            mlp([16627, 100000, 37], seed=0)
        except ParameterBudgetError as exc:
            print("REFUSED", exc)
    """)
    assert r.returncode == 0 and "REFUSED" in r.stdout and "budget" in r.stdout, r.stderr[-800:]


@pytest.mark.parametrize("layer, shape", [
    ("Dense(100000)", 20000), ("Conv2D(1000, 30)", (200, 200, 64)),
    ("MaxPool2D(pool_size=(1000, 1000), padding='same')", (28, 28, 1)),
    ("AveragePool2D(pool_size=(10**6, 10**6), padding='same')", (28, 28, 1))])
def test_layer_products_are_bounded_at_build(layer, shape):
    r = _in_child(f"""
        import numpy as np
        from thetanet.layers import *  # noqa: F403
        try:
            {layer}.build({shape!r}, dtype=np.float32, rng=np.random.default_rng(0))
        except ValueError as exc:
            print("REFUSED", type(exc).__name__, exc)
    """)
    assert r.returncode == 0 and "REFUSED" in r.stdout, (r.stdout + r.stderr)[-800:]


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), chunk=st.integers(1, 50),
       name=st.sampled_from(["glorot_uniform", "glorot_normal", "he_uniform", "he_normal"]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_chunked_initialisation_draws_the_same_values(rows, cols, chunk, name, dtype):
    init = initializers.get(name)
    whole = init((rows, cols), np.random.default_rng(7), dtype)
    before = initializers.DRAW_CHUNK
    initializers.DRAW_CHUNK = chunk
    try:
        parts = init((rows, cols), np.random.default_rng(7), dtype)
    finally:
        initializers.DRAW_CHUNK = before
    assert parts.dtype == dtype and np.array_equal(whole, parts)


def test_float32_weights_are_drawn_without_a_float64_copy():
    shape = (2048, 4096)  # 32 MB in float32, 64 MB in float64
    tracemalloc.start()
    w = initializers.get("glorot_uniform")(shape, np.random.default_rng(0), np.float32)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert w.dtype == np.float32 and peak < 1.5 * w.nbytes


# --------------------------------------------------------------------------------------------
# item 5: a damaged MiniLM model.safetensors
# --------------------------------------------------------------------------------------------


def _minilm_dir() -> Path:
    try:
        return resolve_model_dir()
    except EmbeddingsMissingError:
        pytest.skip("the MiniLM package is not installed")


def _safetensors(tensors: dict[str, tuple[str, list[int], bytes]]) -> bytes:
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


KEY = "embeddings.word_embeddings.weight"


def _damaged(vocab: int) -> dict[str, bytes]:
    good = np.random.default_rng(0).normal(size=(vocab, 8)).astype(np.float32)
    full = _safetensors({KEY: ("F32", [vocab, 8], good.tobytes())})
    nan = good.copy()
    nan[5, 3] = np.nan
    return {
        "truncated": full[: len(full) // 2],
        "header length 2^60": struct.pack("<Q", 2**60) + full[8:],
        "ten rows": _safetensors({KEY: ("F32", [10, 8], good[:10].tobytes())}),
        "one dimension": _safetensors({KEY: ("F32", [vocab * 8], good.tobytes())}),
        "NaN": _safetensors({KEY: ("F32", [vocab, 8], nan.tobytes())}),
        "I8": _safetensors({KEY: ("I8", [vocab, 32], good.tobytes())}),
        "BOOL": _safetensors({KEY: ("BOOL", [vocab, 32], good.tobytes())}),
        "offsets beyond": full.replace(b'"data_offsets": [0, ', b'"data_offsets": [9, '),
        "not json": struct.pack("<Q", 4) + b"\xff{[(" + full[8:],
        "no table": _safetensors({"other": ("F32", [2], np.zeros(2, np.float32).tobytes())}),
    }


@pytest.fixture(scope="module")
def vocab_size() -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(_minilm_dir() / "tokenizer.json")).get_vocab_size()


@pytest.mark.parametrize("case", list(_damaged(16)))
def test_a_damaged_minilm_table_is_one_line_naming_the_file(tmp_path, vocab_size, case):
    d = tmp_path / "minilm"
    d.mkdir()
    (d / "tokenizer.json").write_bytes((_minilm_dir() / "tokenizer.json").read_bytes())
    (d / "model.safetensors").write_bytes(_damaged(vocab_size)[case])
    with pytest.raises(ModelFileError) as err:
        StaticEmbeddings(d)
    assert _one_line_model_error(err.value) and "model.safetensors" in str(err.value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_corruption_of_a_safetensors_file_is_a_model_file_error(tmp_path_factory, data):
    from thetanet.tensorfile import read_tensors

    good = np.arange(24, dtype=np.float32).reshape(4, 6)
    blob = bytearray(_safetensors({"t": ("F32", [4, 6], good.tobytes()),
                                   "u": ("F16", [3], np.ones(3, np.float16).tobytes())}))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    path = tmp_path_factory.mktemp("st") / "x.safetensors"
    path.write_bytes(bytes(blob[:cut]))
    try:
        out = read_tensors(path)
    except ModelFileError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    assert all(np.all(np.isfinite(a)) and a.dtype.kind == "f" for a in out.values())


# --------------------------------------------------------------------------------------------
# item 10: checkpoint position and callbacks; evaluate on no data
# --------------------------------------------------------------------------------------------


@pytest.fixture
def checkpointed(tmp_path):
    from thetanet.callbacks import EarlyStopping

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.integers(0, 2, 30)

    def make():
        m = Sequential([Dense(3, "relu"), Dense(2, "softmax")], seed=0)
        m.compile("adam", "sparse_categorical_crossentropy")
        return m

    make().fit(x, y, epochs=2, verbose=0, seed=0, checkpoint=tmp_path / "ck",
               callbacks=[EarlyStopping(monitor="loss", patience=5)])
    return tmp_path / "ck", make, x, y, EarlyStopping


def _edit_checkpoint(path: Path, edit) -> None:
    doc = json.loads((path / "checkpoint.json").read_text())
    edit(doc)
    (path / "checkpoint.json").write_text(json.dumps(_checksummed(doc)))


def _state(doc: dict) -> dict:
    return doc["state"] if "state" in doc else doc["training"]


@pytest.mark.parametrize("key, value", [("finished", "yes"), ("finished", 1),
                                        ("epoch", 10**18), ("epoch", 2.5), ("offset", "0")])
def test_a_checkpoint_position_must_be_typed_and_reachable(checkpointed, key, value):
    from thetanet.checkpoint import CheckpointMismatchError

    path, make, x, y, early = checkpointed
    doc = json.loads((path / "checkpoint.json").read_text())
    holder = next(v for v in doc.values() if isinstance(v, dict) and "finished" in v)
    _edit_checkpoint(path, lambda d: next(v for v in d.values() if isinstance(v, dict)
                                          and "finished" in v).update({key: value}))
    assert holder  # the state was found
    with pytest.raises((ModelFileError, CheckpointMismatchError)) as err:
        make().fit(x, y, epochs=4, verbose=0, seed=0, checkpoint=path, resume=True,
                   callbacks=[early(monitor="loss", patience=5)])
    assert "\n" not in str(err.value)


def test_a_tampered_callback_list_is_named_in_full(checkpointed):
    from thetanet.checkpoint import CheckpointMismatchError

    path, make, x, y, early = checkpointed

    def edit(d):
        state = next(v for v in d.values() if isinstance(v, dict) and "callbacks" in v)
        state["callbacks"][0]["class"] = "Evil"

    _edit_checkpoint(path, edit)
    with pytest.raises(CheckpointMismatchError, match="Evil") as err:
        make().fit(x, y, epochs=4, verbose=0, seed=0, checkpoint=path, resume=True,
                   callbacks=[early(monitor="loss", patience=5)])
    assert "[]" not in str(err.value)


def test_evaluate_on_no_data_is_an_error():
    model = Sequential([Dense(2, "softmax")], seed=0).build(3)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)
    assert len(model.evaluate(x, y)) == 2
    with pytest.raises(ValueError, match="at least one example"):
        model.evaluate(x[:0], y[:0])


def test_a_kernel_product_beyond_the_stored_weights_is_refused_before_building(tmp_path):
    """Each size fits the stored weight count, their product (the kernel) does not."""
    from thetanet.layers import Conv2D, Flatten

    model = Sequential([Conv2D(4, 3), Flatten(), Dense(3, "softmax")], seed=0)
    model.build((40, 40, 2))
    model.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "config.json").read_text())
    n = sum(w.size for w in model.get_weights())  # 17,371
    conv = doc["model"]["layers"][0]["config"]
    conv.update(kernel_size=[n // 2, n // 2], filters=n)  # each ≤ n; product ≈ n³/4
    (tmp_path / "m" / "config.json").write_text(json.dumps(_checksummed(doc)))
    r = _in_child(f"""
        from thetanet import load_model
        try:
            load_model({str(tmp_path / "m")!r})
        except ValueError as exc:
            print("REFUSED", type(exc).__name__, exc)
    """, limit_mb=800)
    assert "REFUSED ModelFileError" in r.stdout and "kernel" in r.stdout, r.stderr[-800:]
