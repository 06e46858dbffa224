"""Pins "never unpickle" on every file format thetanet reads (issue 18, behaviour 6).

A pickle is planted in each: as an object array (a ``.npy`` member whose header says ``|O``
and whose body is a pickle) and as a bare pickle member, both of which would create a marker
file if unpickled. Every reader must refuse the file (or, for the feature cache, ignore and
rebuild it) and the marker must never appear. ``test_the_payload_is_live`` shows that a
pickle-capable reader (``np.load(..., allow_pickle=True)``) does run the payload.

Formats: a saved model (config.json + weights npz), a training checkpoint, a noun-compound
model directory (``nc predict`` / ``nc evaluate``), the per-word feature cache under
``$THETANET_CACHE``, and MNIST's IDX files.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thetanet import Dense, Dropout, Sequential, load_model
from thetanet.cli import main
from thetanet.model import load_checkpoint

KINDS = ["object-array", "bare-pickle"]


class Payload:
    """Unpickling this creates ``marker`` (code execution, harmless here)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _payload_bytes(kind: str, marker: Path) -> bytes:
    if kind == "bare-pickle":
        return pickle.dumps(Payload(marker))
    buf = io.BytesIO()
    np.save(buf, np.array([Payload(marker), 1], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _plant(npz: Path, kind: str, marker: Path) -> None:
    """Replace the first member of ``npz`` by the payload (test-only: writes a hostile file)."""
    with zipfile.ZipFile(npz) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members[sorted(members)[0]] = _payload_bytes(kind, marker)
    with zipfile.ZipFile(npz, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _plant_all(root: Path, kind: str, marker: Path) -> list[Path]:
    files = sorted(root.rglob("*.npz"))
    assert files, f"no .npz under {root}"
    for f in files:
        _plant(f, kind, marker)
    return files


def _xy(n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n)


def _model() -> Sequential:
    model = Sequential([Dense(6, "relu"), Dropout(0.2), Dense(3, "softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_the_payload_is_live(tmp_path):
    marker = tmp_path / "ran"
    model = _model()
    model.fit(*_xy(), epochs=1, verbose=0)
    model.save(tmp_path / "m")
    (npz,) = _plant_all(tmp_path / "m", "object-array", marker)
    with np.load(npz, allow_pickle=True) as z:
        for k in z.files:
            z[k]
    assert marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_model_weights(tmp_path, kind):
    marker = tmp_path / "ran"
    model = _model()
    model.fit(*_xy(), epochs=1, verbose=0)
    model.save(tmp_path / "m")
    _plant_all(tmp_path / "m", kind, marker)
    with pytest.raises(ValueError):
        load_model(tmp_path / "m")
    assert not marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint(tmp_path, kind):
    marker, ck = tmp_path / "ran", tmp_path / "ck"
    x, y = _xy()
    _model().fit(x, y, epochs=1, batch_size=8, seed=0, verbose=0, checkpoint=ck)
    _plant_all(ck, kind, marker)
    with pytest.raises(ValueError):
        _model().fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0, checkpoint=ck,
                     resume=True)
    with pytest.raises(ValueError):
        load_checkpoint(ck)
    assert not marker.exists()


@pytest.fixture(scope="module")
def nc_model(tmp_path_factory):
    from thetanet.compounds.system import NCClassifier, NCSettings
    from thetanet.data.tratz import Compounds, labels_for

    rels = list(labels_for("coarse_random"))[:2]
    mods, heads = ["olive", "steel", "morning", "night"] * 4, ["oil", "bridge", "tea", "shift"] * 4
    data = Compounds(mods, heads, [rels[i % 2] for i in range(len(mods))])
    clf = NCClassifier(NCSettings(features=["words"], max_epochs=2, seeds=[0, 1]),
                       list(labels_for("coarse_random")))
    clf.fit(data, data, cache_dir=False)
    root = tmp_path_factory.mktemp("nc")
    gold = root / "gold.tsv"
    gold.write_text("".join(f"{m}\t{h}\t{r}\n" for m, h, r in zip(mods, heads, data.labels)))
    return clf, root, gold


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_nc_model_directory(nc_model, tmp_path, kind, command, capsys):
    clf, _, gold = nc_model
    marker, path = tmp_path / "ran", tmp_path / "nc-model"
    clf.save(path)
    assert main(["nc", command, "--model", str(path), "--input", str(gold)]) == 0  # intact
    planted = _plant_all(path, kind, marker)
    assert len(planted) == 2  # one weights file per ensemble member
    capsys.readouterr()
    assert main(["nc", command, "--model", str(path), "--input", str(gold)]) == 2
    err = capsys.readouterr().err
    assert any(f.name in err for f in planted), err
    assert not marker.exists()


CACHED = ["wordnet", "minilm-static", "wordnet-gloss"]  # the extractors with a per-word cache
TRAIN_WORDS = (["olive", "steel", "morning"], ["oil", "bridge", "meeting"], ["A", "B", "A"])


def _cached_features(tmp_path, monkeypatch) -> tuple[Path, np.ndarray, Any]:
    """(cache root, features, a function building them again) with the cache under tmp."""
    from thetanet.compounds.features import build_features
    from thetanet.data.tratz import Compounds

    cache = tmp_path / "cache"
    monkeypatch.setenv("THETANET_CACHE", str(cache))
    train = Compounds(*TRAIN_WORDS)

    def build() -> np.ndarray:
        return build_features(CACHED, train).transform_dense(train)

    try:
        return cache, build(), build
    except Exception as exc:  # WordNet or the MiniLM table not installed
        if isinstance(exc, ImportError) or type(exc).__name__.endswith("MissingError"):
            pytest.skip(f"feature resources missing: {exc}")
        raise


@pytest.mark.parametrize("kind", KINDS)
def test_feature_cache_never_unpickles(tmp_path, monkeypatch, kind):
    cache, _, build = _cached_features(tmp_path, monkeypatch)
    marker = tmp_path / "ran"
    assert len(_plant_all(cache, kind, marker)) == len(CACHED)
    with warnings.catch_warnings(), contextlib.suppress(Exception):
        warnings.simplefilter("ignore")
        build()
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["object-array", "bare-pickle"])
def test_feature_cache_with_a_pickle_is_ignored_and_rebuilt(tmp_path, monkeypatch, kind):
    cache, first, build = _cached_features(tmp_path, monkeypatch)
    marker = tmp_path / "ran"
    planted = _plant_all(cache, kind, marker)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = build()
    assert not marker.exists()
    said = " ".join(str(w.message) for w in caught)
    assert all(str(f) in said for f in planted), said  # each planted file was refused
    np.testing.assert_array_equal(first, again)  # ... and rebuilt from the resources
    for f in planted:  # rewritten without the payload
        with np.load(f, allow_pickle=False) as z:
            assert all(z[k].dtype != object for k in z.files)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files(tmp_path, gz):
    from thetanet.data.idx import MNIST_FILES, read_idx, read_mnist

    marker = tmp_path / "ran"
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    data = pickle.dumps(Payload(marker))
    for name in MNIST_FILES["t10k"]:
        path = mnist / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)
        with pytest.raises(ValueError):
            read_idx(path)
    with pytest.raises(ValueError):
        read_mnist("t10k", tmp_path)
    assert not marker.exists()


def test_nc_json_documents_are_json(nc_model, tmp_path):
    """The NC model's own document is JSON: a pickle in its place is a corrupt file."""
    clf, _, gold = nc_model
    marker, path = tmp_path / "ran", tmp_path / "nc-model"
    clf.save(path)
    doc = path / "nc.json"
    json.loads(doc.read_text())
    doc.write_bytes(pickle.dumps(Payload(marker)))
    assert main(["nc", "predict", "--model", str(path), "--input", str(gold)]) == 2
    assert not marker.exists()
