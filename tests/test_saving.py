"""The model format (thetanet.saving) and loading it back (thetanet.model.load_model)."""

import json
import zipfile

import numpy as np
import pytest

from thetanet import Dense, Dropout, Sequential, __version__, load_model, rebuild
from thetanet.files import ModelFileError
from thetanet.saving import FORMAT_VERSION, doc_digest, read_model


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


# ------------------------------------------------------------------- hardening (issue 6)

def _saved(rng, tmp_path):
    model, x = trained(rng)
    path = tmp_path / "m"
    model.save(path)
    return model, path, json.loads((path / "config.json").read_text())


def _write_signed(path, cfg):
    """Rewrite config.json with a valid document checksum (to reach the deeper checks)."""

    cfg = json.loads(json.dumps(cfg))
    cfg["sha256"] = doc_digest(cfg)
    (path / "config.json").write_text(json.dumps(cfg))


def test_edited_config_refused_by_its_checksum(rng, tmp_path):
    _, path, cfg = _saved(rng, tmp_path)
    cfg["model"]["layers"][0]["config"]["activation"] = {"name": "tanh"}  # same shapes
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="config.json: checksum mismatch"):
        load_model(path)
    del cfg["sha256"]  # a format-2 file must carry it
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(path)
    cfg["format_version"] = 1  # format 1 files (no document checksum) still load
    (path / "config.json").write_text(json.dumps(cfg))
    assert load_model(path).layers[0].activation.name == "tanh"


def test_metadata_records_versions_and_checksums(rng, tmp_path):

    model, path, cfg = _saved(rng, tmp_path)
    assert cfg["thetanet_version"] == __version__
    assert cfg["format_version"] == FORMAT_VERSION
    assert len(cfg["weights"]) == len(model.get_weights())
    assert all(len(w["sha256"]) == 64 for w in cfg["weights"])


def test_files_get_the_umask_mode_not_0600(rng, tmp_path):
    import os

    _, path, cfg = _saved(rng, tmp_path)
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.json", cfg["weights_file"]):
        assert (path / name).stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("key,value,match", [
    ("weights_file", "../../etc/passwd", "invalid weights_file"),
    ("weights_file", "/tmp/x.npz", "invalid weights_file"),
    ("weights_file", 5, "invalid weights_file"),
    ("format", "something-else", "not a thetanet model"),
    ("format_version", "1", "invalid format_version"),
    ("format_version", 0, "invalid format_version"),
    ("weights", "nope", "must be a list"),
])
def test_tampered_config_refused(rng, tmp_path, key, value, match):
    _, path, cfg = _saved(rng, tmp_path)
    cfg[key] = value
    _write_signed(path, cfg)
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    assert "config.json" in str(info.value)


def test_tampered_shapes_and_sizes_refused_before_allocating(rng, tmp_path):
    _, path, cfg = _saved(rng, tmp_path)
    good = json.dumps(cfg)
    cfg["weights"][0]["shape"] = [5, 8]
    _write_signed(path, cfg)
    with pytest.raises(ModelFileError, match="shape"):
        load_model(path)
    cfg = json.loads(good)
    cfg["model"]["layers"][0]["config"]["units"] = 10**12  # would allocate terabytes
    _write_signed(path, cfg)
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(path)
    cfg = json.loads(good)
    cfg["model"]["layers"][0]["class_name"] = "os.system"
    _write_signed(path, cfg)
    with pytest.raises(ModelFileError, match="cannot rebuild"):
        load_model(path)


def test_extra_or_renamed_npz_members_refused(rng, tmp_path):
    _, path, cfg = _saved(rng, tmp_path)
    wfile = path / cfg["weights_file"]
    with zipfile.ZipFile(wfile, "a") as zf:
        zf.writestr("extra.npy", b"\x93NUMPY")
    with pytest.raises(ModelFileError, match="unexpected extra"):
        load_model(path)


def test_raw_pickle_member_never_unpickled(rng, tmp_path):
    import pickle

    _, path, cfg = _saved(rng, tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    wfile = path / cfg["weights_file"]
    with zipfile.ZipFile(wfile) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["w000.npy"] = pickle.dumps(Evil())
    with zipfile.ZipFile(wfile, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    with pytest.raises(ModelFileError, match=wfile.name):
        load_model(path)
    assert not marker.exists()


def test_truncated_config_refused_naming_the_file(rng, tmp_path):
    _, path, _ = _saved(rng, tmp_path)
    raw = (path / "config.json").read_bytes()
    (path / "config.json").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="config.json: corrupt"):
        load_model(path)
    (path / "config.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ModelFileError, match="config.json"):
        load_model(path)


def test_unserialisable_metadata_fails_before_writing(rng, tmp_path):
    model, _ = trained(rng)
    with pytest.raises(TypeError):
        model.save(tmp_path / "m", metadata={"x": object()})
    assert not (tmp_path / "m").exists()


def test_stale_temp_files_of_killed_writers_are_swept(rng, tmp_path):
    model, path, _ = _saved(rng, tmp_path)
    (path / ".config.json.abc123.tmp").write_text("{")
    (path / ".weights-0123.npz.xyz.tmp").write_bytes(b"PK")
    model.save(path)
    assert sorted(p.name.split("-")[0] for p in path.iterdir()) == ["config.json", "weights"]


def test_read_model_then_rebuild_is_load_model(rng, tmp_path):
    model, x = trained(rng)
    model.save(tmp_path / "m", metadata={"k": 1})
    config, weights = read_model(tmp_path / "m")
    assert config["model"] == model.get_config() and len(weights) == len(model.params)
    again = rebuild(config, weights)
    assert again.metadata == {"k": 1} and again.optimizer.get_config()["name"] == "adam"
    np.testing.assert_array_equal(again.predict(x), load_model(tmp_path / "m").predict(x))
    assert rebuild(config, weights, compile=False).optimizer is None
    with pytest.raises(ModelFileError, match="here: cannot rebuild"):
        rebuild({**config, "model": {**config["model"], "dtype": "int8"}}, weights,
                source="here")
