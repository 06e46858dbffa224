import json
import zipfile

import numpy as np
import pytest

from thetanet import Dense, Dropout, Sequential, load_model
from thetanet.io import ModelFileError


def trained(rng):
    x = rng.normal(size=(30, 5)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    model = Sequential([Dense(7, "relu", l2=0.01), Dropout(0.2), Dense(3, "softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=3, verbose=0, seed=0)
    return model, x


def test_round_trip_predictions_exact(rng, tmp_path):
    model, x = trained(rng)
    model.save(tmp_path / "m", metadata={"labels": ["a", "b", "c"]})
    again = load_model(tmp_path / "m")
    assert np.array_equal(model.predict(x), again.predict(x))
    assert again.metadata == {"labels": ["a", "b", "c"]}
    assert again.get_compile_config() == model.get_compile_config()
    # saving twice replaces, and leaves exactly one weights file
    model.fit(x, np.zeros(30, int), epochs=1, verbose=0)
    model.save(tmp_path / "m")
    assert len(list((tmp_path / "m").glob("weights-*.npz"))) == 1
    assert np.array_equal(load_model(tmp_path / "m").predict(x), model.predict(x))


def test_pickled_object_refused(rng, tmp_path):
    model, _ = trained(rng)
    path = tmp_path / "m"
    model.save(path)
    cfg = json.loads((path / "config.json").read_text())
    wfile = path / cfg["weights_file"]
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arrays = dict(np.load(wfile))
    arrays["w000"] = np.array([Evil()], dtype=object)
    np.savez(wfile, **arrays)  # test-only: write a hostile file
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(path)
    assert not marker.exists()


def test_flipped_byte_refused(rng, tmp_path):
    model, _ = trained(rng)
    path = tmp_path / "m"
    model.save(path)
    cfg = json.loads((path / "config.json").read_text())
    wfile = path / cfg["weights_file"]
    with zipfile.ZipFile(wfile) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    raw = bytearray(members["w000.npy"])
    raw[-3] ^= 0x01
    members["w000.npy"] = bytes(raw)
    with zipfile.ZipFile(wfile, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(path)


def test_truncated_and_missing_refused(rng, tmp_path):
    model, _ = trained(rng)
    path = tmp_path / "m"
    model.save(path)
    cfg = json.loads((path / "config.json").read_text())
    wfile = path / cfg["weights_file"]
    wfile.write_bytes(wfile.read_bytes()[:100])
    with pytest.raises(ModelFileError, match=str(wfile.name)):
        load_model(path)
    with pytest.raises(ModelFileError, match="missing config.json"):
        load_model(tmp_path)


def test_newer_format_says_so(rng, tmp_path):
    model, _ = trained(rng)
    path = tmp_path / "m"
    model.save(path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["format_version"] = 99
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="format 99.*upgrade"):
        load_model(path)


def test_no_temp_files_left(rng, tmp_path):
    model, _ = trained(rng)
    model.save(tmp_path / "m")
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "m").iterdir()) == [
        "config.json", "weights"]
