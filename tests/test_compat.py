"""Files written by thetanet 0.1.0 (commit 361fe74, before the engine redesign) still load.

The fixtures in ``tests/fixtures/`` were written by ``tests/fixtures/make_fixtures.py`` run
against that commit; the expected values in ``expected.npz`` are what the old code computed.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

import thetanet
from thetanet.model import load_checkpoint

FIXTURES = Path(__file__).resolve().parent / "fixtures"
_spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
assert _spec is not None and _spec.loader is not None
mk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mk)


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "expected.npz", allow_pickle=False) as f:
        return dict(f)


def _weights(exp: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    return [exp[f"{prefix}{i}"] for i in range(sum(k.startswith(prefix) for k in exp))]


def test_old_float32_model_loads_and_predicts_the_same(expected):
    model = thetanet.load_model(FIXTURES / "model_f32")
    assert model.dtype == np.float32 and model.name == "compat32"
    assert model.metadata == {"labels": ["a", "b", "c"], "note": "compat"}
    assert [type(ly).__name__ for ly in model.layers] == ["Dense", "Dropout", "Maxout", "Dense",
                                                          "Dense"]
    assert model.optimizer is not None and model.optimizer.get_config()["name"] == "adam"
    assert model.metrics == ["accuracy"]
    pred = model.predict(expected["x_val"])
    np.testing.assert_allclose(pred, expected["model_f32_pred"], rtol=1e-5, atol=1e-7)
    # the loaded model trains on (compiled, Adam state fresh)
    model.fit(expected["x"], expected["y"], epochs=1, batch_size=16, verbose=0, seed=0)
    assert np.all(np.isfinite(model.predict(expected["x_val"])))


def test_old_float64_model_loads_and_predicts_the_same(expected):
    model = thetanet.load_model(FIXTURES / "model_f64")
    assert model.dtype == np.float64
    assert model.optimizer.get_config() == {"name": "sgd", "learning_rate": 0.05,
                                            "momentum": 0.9, "nesterov": True}
    pred = model.predict(expected["x_val"].astype(np.float64))
    np.testing.assert_allclose(pred, expected["model_f64_pred"], rtol=1e-12, atol=1e-14)


def test_old_checkpoint_loads(expected):
    ck = load_checkpoint(FIXTURES / "ckpt_mid")
    assert [ck.epoch, ck.batch_offset] == expected["ckpt_epoch_offset"].tolist() == [1, 24]
    for w, e in zip(ck.model.get_weights(), _weights(expected, "ckpt_w"), strict=True):
        np.testing.assert_array_equal(w, e)
    np.testing.assert_allclose(ck.model.predict(expected["x_val"]), expected["ckpt_pred"],
                               rtol=1e-5, atol=1e-7)


def test_resume_from_old_checkpoint_matches_the_uninterrupted_old_run(expected, tmp_path):
    path = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "ckpt_mid", path)
    model = mk.ckpt_model()
    val = (expected["x_val"], expected["y_val"])
    mk.fit_ckpt(model, expected["x"], expected["y"], val, path, mk.StopAt(), resume=True)
    for w, e in zip(model.get_weights(), _weights(expected, "final_w"), strict=True):
        np.testing.assert_allclose(w, e, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.history.history["loss"], expected["final_loss"],
                               rtol=1e-5)
    np.testing.assert_allclose(model.predict(expected["x_val"]), expected["final_pred"],
                               rtol=1e-4, atol=1e-6)
    # the resumed run wrote a new-format checkpoint that loads again
    assert load_checkpoint(path).epoch == mk.EPOCHS
