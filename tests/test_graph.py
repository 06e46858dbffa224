"""The model graph (thetanet.graph, thetanet.backprop): a two-input, two-output network with a
shared layer, merge layers and loss weights — gradient checks, PyTorch autograd parity, fit with
lists and dicts, save/load, checkpoints, summary."""

from __future__ import annotations

import numpy as np
import pytest

from thetanet import (
    Add,
    Concatenate,
    Dense,
    Dropout,
    Input,
    Model,
    load_checkpoint,
    load_model,
)
from thetanet.gradcheck import backprop_gradients, gradcheck


def two_by_two(dropout: float = 0.0, dtype: str = "float64", seed: int = 0,
               share: bool = True) -> Model:
    """a, b → shared Dense on both branches → Concatenate → softmax "cls";
    Add(shared(a'), shared(b')) + a skip → linear "reg"."""
    a, b = Input((4,), name="a"), Input((3,), name="b")
    pa = Dense(5, "tanh", name="proj_a")(a)
    pb = Dense(5, "logistic", name="proj_b")(b)
    if dropout:
        drop = Dropout(dropout, name="drop")  # shared too: its draws must replay
        pa, pb = drop(pa), drop(pb)
    shared = Dense(4, "tanh", name="shared")
    sa = shared(pa)
    sb = shared(pb) if share else Dense(4, "tanh", name="twin")(pb)
    cls = Dense(3, "softmax", name="cls")(Concatenate()([sa, sb]))
    skip = Dense(4, name="skip")(pa)
    reg = Dense(2, name="reg")(Add()([sa, sb, skip]))
    return Model([a, b], [cls, reg], dtype=dtype, seed=seed)


def data(n: int = 12, seed: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    xa, xb = rng.normal(size=(n, 4)), rng.normal(size=(n, 3))
    return [xa, xb], [rng.integers(0, 3, n), rng.normal(size=(n, 2))]


def compiled(model: Model, optimizer: object = "sgd") -> Model:
    model.compile(optimizer, ["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5])
    return model


def test_graph_structure_shared_layer_has_two_nodes_and_one_theta() -> None:
    model = two_by_two()
    names = [layer.name for layer in model.layers]
    assert names.count("shared") == 1
    assert [n.layer.name for n in model.nodes].count("shared") == 2
    assert model.shared_layers
    assert [t.shape for t in model.outputs] == [(3,), (2,)]
    text = model.summary(print_fn=None)
    rows = [line.split() for line in text.splitlines()]
    shared_rows = [r for r in rows if r[0] == "shared"]
    assert [r[-2:] for r in shared_rows] == [["24", "proj_a"], ["shared", "proj_b"]]
    assert ["add_6", "(Add)", "4", "0", "shared,", "shared,", "skip"] in rows
    assert f"Total params: {model.count_params()}" in text and model.count_params() == 130


@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_gradcheck_two_inputs_two_outputs_shared_layer(dropout: float) -> None:
    model = compiled(two_by_two(dropout))
    x, y = data()
    assert gradcheck(model, x, y, training=bool(dropout), seed=3) < 1e-7


def test_shared_gradient_is_the_sum_over_calls() -> None:
    """The shared layer's ∂J/∂Θ equals the sum of the gradients of two unshared twins that
    hold the same Θ."""
    model = compiled(two_by_two())
    twins = compiled(two_by_two(share=False))
    w = dict(zip(model.weight_names(), model.get_weights()))
    w["twin/kernel"], w["twin/bias"] = w["shared/kernel"], w["shared/bias"]
    twins.set_weights([w[k] for k in twins.weight_names()])
    x, y = data()
    g = dict(zip(model.weight_names(), backprop_gradients(model, x, y)))
    gt = dict(zip(twins.weight_names(), backprop_gradients(twins, x, y)))
    for part in ("kernel", "bias"):
        assert np.abs(gt[f"twin/{part}"]).sum() > 0
        assert np.allclose(g[f"shared/{part}"], gt[f"shared/{part}"] + gt[f"twin/{part}"],
                           rtol=1e-12, atol=1e-15)
    assert model.count_params() < twins.count_params()


def _torch_forward(model: Model, x: list[np.ndarray], y: list[np.ndarray]) -> tuple:
    torch = pytest.importorskip("torch")
    w = {k: torch.tensor(v, requires_grad=True)
         for k, v in zip(model.weight_names(), model.get_weights())}

    def dense(name: str, t: object) -> object:
        return t @ w[f"{name}/kernel"] + w[f"{name}/bias"]

    xa, xb = (torch.tensor(v) for v in x)
    pa, pb = torch.tanh(dense("proj_a", xa)), torch.sigmoid(dense("proj_b", xb))
    sa, sb = torch.tanh(dense("shared", pa)), torch.tanh(dense("shared", pb))
    logits = dense("cls", torch.cat([sa, sb], dim=1))
    reg = dense("reg", sa + sb + dense("skip", pa))
    j1 = torch.nn.functional.cross_entropy(logits, torch.tensor(y[0]))
    j2 = torch.mean((reg - torch.tensor(y[1])) ** 2)
    loss = j1 + 0.5 * j2
    loss.backward()
    return float(loss.detach()), [w[k].grad.numpy() for k in model.weight_names()]


def test_torch_autograd_parity_float64() -> None:
    model = compiled(two_by_two())
    x, y = data(n=9)
    ours = backprop_gradients(model, x, y)
    j = model.forward_backward(model._check_x(x), model._check_y(y, 9), training=False)[0]
    tj, tgrads = _torch_forward(model, x, y)
    assert abs(j - tj) < 1e-12
    for name, a, b in zip(model.weight_names(), ours, tgrads):
        assert np.max(np.abs(a - b)) < 1e-6, name
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12), name


def test_fit_predict_evaluate_with_lists_and_dicts() -> None:
    model = compiled(two_by_two(dtype="float32"), {"name": "adam", "learning_rate": 0.02})
    x, y = data(n=64)
    before = model.evaluate(x, y, return_dict=True)
    hist = model.fit({"a": x[0], "b": x[1]}, {"cls": y[0], "reg": y[1]}, epochs=8,
                     batch_size=16, seed=0, verbose=0)
    after = model.evaluate(x, y, return_dict=True)
    assert after["loss"] < before["loss"]
    assert set(after) == {"loss", "cls_loss", "reg_loss"}
    assert after["loss"] == pytest.approx(after["cls_loss"] + 0.5 * after["reg_loss"], rel=1e-5)
    assert len(hist.history["loss"]) == 8
    p_cls, p_reg = model.predict(x)
    assert p_cls.shape == (64, 3) and p_reg.shape == (64, 2)
    assert np.allclose(p_cls.sum(axis=1), 1.0, atol=1e-5)


def test_bad_inputs_are_refused_with_clear_messages() -> None:
    model = compiled(two_by_two())
    x, y = data()
    with pytest.raises(ValueError, match="list of 2 arrays"):
        model.predict(x[0])
    with pytest.raises(ValueError, match="keys"):
        model.predict({"a": x[0]})
    with pytest.raises(ValueError, match="features per row"):
        model.predict([x[1], x[0]])
    with pytest.raises(ValueError, match="entries for 2 outputs"):
        model.compile("sgd", ["mse"])
    with pytest.raises(TypeError, match="symbolic tensors"):
        Dense(3)(x[0])
    with pytest.raises(ValueError, match="share the name"):
        Model(model.inputs[0], Dense(2, name="x")(Dense(2, name="x")(model.inputs[0])))
    orphan = Input((2,))
    with pytest.raises(ValueError, match="disconnected"):
        Model(model.inputs, Add()([Dense(2)(orphan), Dense(2)(model.inputs[0])]))


def test_save_load_and_checkpoint_resume(tmp_path: object) -> None:
    x, y = data(n=40)
    model = compiled(two_by_two(dropout=0.2, dtype="float32"), "adam")
    model.fit(x, y, epochs=2, batch_size=8, seed=4, verbose=0)
    model.save(tmp_path / "m")  # type: ignore[operator]
    again = load_model(tmp_path / "m")  # type: ignore[operator]
    assert type(again) is Model and again.weight_names() == model.weight_names()
    for p, q in zip(model.predict(x), again.predict(x)):
        assert np.array_equal(p, q)
    assert again.evaluate(x, y) == model.evaluate(x, y)
    # an interrupted run resumed from its checkpoint ends where an uninterrupted one does
    full = compiled(two_by_two(dropout=0.2, dtype="float32"), "adam")
    full.fit(x, y, epochs=3, batch_size=8, seed=5, verbose=0)
    part = compiled(two_by_two(dropout=0.2, dtype="float32"), "adam")
    ck = tmp_path / "ck"  # type: ignore[operator]
    part.fit(x, y, epochs=2, batch_size=8, seed=5, verbose=0, checkpoint=ck)
    resumed = load_checkpoint(ck).model
    resumed.fit(x, y, epochs=3, batch_size=8, seed=5, verbose=0, checkpoint=ck, resume=True)
    for a, b in zip(full.get_weights(), resumed.get_weights()):
        assert np.array_equal(a, b)


def test_output_without_loss_is_not_trained_but_predicted() -> None:
    model = two_by_two(dtype="float64")
    model.compile("sgd", {"cls": "sparse_categorical_crossentropy", "reg": None})
    x, y = data()
    w0 = dict(zip(model.weight_names(), model.get_weights()))
    model.fit(x, [y[0], None], epochs=1, batch_size=4, verbose=0)
    w1 = dict(zip(model.weight_names(), model.get_weights()))
    assert np.array_equal(w0["reg/kernel"], w1["reg/kernel"])  # nothing flows into it
    assert not np.array_equal(w0["cls/kernel"], w1["cls/kernel"])
    assert len(model.predict(x)) == 2
    # a second model on the same layers shares their Θ: same outputs
    assert model.get_layer("cls") is model.outputs[0].node.layer
    cls_only = Model(model.inputs, model.outputs[0])
    assert np.array_equal(cls_only.predict(x), model.predict(x)[0])
    with pytest.raises(ValueError, match="no layer named"):
        model.get_layer("nope")


def test_tampered_graph_input_shape_is_refused(tmp_path: object) -> None:
    import json

    from thetanet.files import ModelFileError
    from thetanet.saving import doc_digest

    model = two_by_two()
    path = tmp_path / "m"  # type: ignore[operator]
    model.save(path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["inputs"][0]["shape"] = [10**9]
    cfg["sha256"] = doc_digest(cfg)  # re-signed: only the size check can catch it
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(path)
