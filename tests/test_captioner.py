"""The captioner on the model graph: gradients, shared layers, decoding, saving, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thetanet.captions import decode as D
from thetanet.captions.model import CaptionConfig, Captioner, grid_positions
from thetanet.captions.train import TrainConfig, caption_images, split_validation
from thetanet.cli import main
from thetanet.data import scenes as S
from thetanet.gradcheck import gradcheck
from thetanet.optimizers import Adam

TINY = dict(canvas=8, filters=(2,), window=2, features=3, summary=3, embed=3, units=4,
            attention_units=3, hidden=4, max_len=5, vocab=8)


def _tiny_batch(seed: int = 0, n: int = 3):
    rng = np.random.default_rng(seed)
    images = rng.random((n, 8, 8))
    words = rng.integers(3, 8, (n, 5)).astype(float)
    targets = rng.integers(3, 8, (n, 5))
    words[0, 3:] = 0  # a short caption: padded steps
    targets[0, 3:] = 0
    return images, words, targets


@pytest.mark.parametrize("attention", [True, False])
def test_captioner_graph_gradients(attention):
    cap = Captioner(CaptionConfig(**TINY, attention=attention, dtype="float64"), seed=1)
    cap.train.compile("sgd", "sparse_categorical_crossentropy")
    images, words, targets = _tiny_batch()
    # ε = 1e-5: some gradients here are tiny, and smaller steps drown them in rounding
    assert gradcheck(cap.train, cap.inputs(images, words), targets, eps=1e-5) < 1e-6


def test_padded_steps_do_not_change_the_loss():
    cap = Captioner(CaptionConfig(**TINY, dtype="float64"), seed=1)
    cap.train.compile("sgd", "sparse_categorical_crossentropy")
    images, words, targets = _tiny_batch()
    x = cap.inputs(images, words)
    other = targets.copy()
    other[0, 4] = 7  # a target at a padded input step (mask_zero: not a real step)
    j1 = cap.train.evaluate(x, targets)
    j2 = cap.train.evaluate(x, other)
    assert j1 == pytest.approx(j2, abs=1e-12)
    other[0, 2] = 7  # a real step counts
    assert cap.train.evaluate(x, other) != pytest.approx(j1, abs=1e-6)


@pytest.mark.parametrize("attention", [True, False])
def test_the_three_models_share_one_set_of_weights(attention):
    cap = Captioner(CaptionConfig(**TINY, attention=attention, dtype="float64"), seed=2)
    images, words, _ = _tiny_batch(3)
    # training changes the shared layers: every model sees the change
    cap.train.compile(Adam(0.05), "sparse_categorical_crossentropy")
    cap.train.train_on_batch(cap.inputs(images, words), _tiny_batch(3)[2])
    p_train = cap.train.predict(cap.inputs(images, words))
    out = cap.decoder.predict([*cap.encode(images), words])
    p_dec = out[0] if isinstance(out, list) else out
    np.testing.assert_allclose(p_train, p_dec, atol=1e-12)
    if attention:
        alpha = out[1]
        assert alpha.shape == (3, 5, 9)
        np.testing.assert_allclose(alpha.sum(axis=2), 1.0, atol=1e-12)


def test_greedy_captions_are_the_argmax_chain_of_the_model():
    cap = Captioner(CaptionConfig(**TINY, dtype="float64"), seed=4)
    images = _tiny_batch(5)[0]
    encoded = cap.encode(images)
    ids = D.greedy_decode(cap.step_function(encoded), 3, 5, S.START, S.END)
    for i, tokens in enumerate(ids):
        prefix = [S.START, *tokens][:5]
        p = cap.train.predict(cap.inputs(images[i:i + 1],
                                         cap.words_input(np.array([prefix]))))[0]
        for t, tok in enumerate(tokens):
            assert p[t].argmax() == tok
        if len(tokens) < 5:
            assert p[len(tokens)].argmax() == S.END


def test_save_and_load_give_the_same_captions(tmp_path):
    cap = Captioner(CaptionConfig(**TINY), seed=5)
    images = _tiny_batch(6)[0]
    before = cap.decoder.predict([*cap.encode(images), _tiny_batch(6)[1]])
    cap.save(tmp_path / "m", metadata={"note": "x"})
    again, meta = Captioner.load(tmp_path / "m")
    assert meta["note"] == "x" and again.config == cap.config
    after = again.decoder.predict([*again.encode(images), _tiny_batch(6)[1]])
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_load_refuses_other_models(tmp_path):
    from thetanet import Dense, Sequential

    m = Sequential([Dense(2, "softmax")])
    m.build(3)
    m.save(tmp_path / "plain")
    with pytest.raises(ValueError, match="not a saved captioner"):
        Captioner.load(tmp_path / "plain")


def test_load_refuses_a_config_that_does_not_match_the_graph(tmp_path):
    cap = Captioner(CaptionConfig(**TINY), seed=5)
    cap.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "config.json").read_text())
    doc["metadata"]["captioner"]["canvas"] = 16  # edited: the document checksum catches it
    (tmp_path / "m" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="checksum"):
        Captioner.load(tmp_path / "m")
    wrong = Captioner(CaptionConfig(**TINY), seed=5)
    wrong.config = CaptionConfig(**{**TINY, "canvas": 16})  # a mismatching config, signed
    wrong.save(tmp_path / "w")
    with pytest.raises(ValueError, match="does not match"):
        Captioner.load(tmp_path / "w")


def test_grid_positions_are_the_window_centres_in_reading_order():
    pos = grid_positions(CaptionConfig())  # 48 px, three pools, windows of 3 cells: 4 × 4
    assert pos.shape == (16, 2)
    np.testing.assert_allclose(pos[:4, 0], -1)
    np.testing.assert_allclose(pos[:4, 1], np.linspace(-1, 1, 4))


def test_train_config_and_validation_split():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    r = TrainConfig(epochs=3, learning_rate=0.01, final_learning_rate=0.001)
    assert [round(r.rate(e), 6) for e in range(3)] == [0.01, round(0.01 * 0.1 ** 0.5, 6), 0.001]
    marked = np.arange(100)[:, None, None] * np.ones((1, 28, 28))  # image i is all i
    digits = S.SceneDigits(marked, np.arange(100) % 10, -np.ones((10, 28, 28)),
                           np.arange(10) % 10)
    (tx, ty), (vx, vy) = split_validation(digits)
    assert set(tx[:, 0, 0]) == set(range(90)) and set(vx[:, 0, 0]) == set(range(90, 100))
    assert len(ty) == 90 and len(vy) == 10


# ------------------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory, mnist_root):
    out = tmp_path_factory.mktemp("cap")
    code = main(["caption", "train", "--data-dir", str(mnist_root), "--epochs", "1",
                 "--scenes", "64", "--val-scenes", "8", "--out", str(out / "m"),
                 "--plots", str(out / "plots"), "--quiet"])
    assert code == 0
    return out


def test_cli_train_writes_a_model_and_plots(cli_model):
    assert (cli_model / "m" / "config.json").is_file()
    names = {p.name for p in (cli_model / "plots").iterdir()}
    assert "learning_curves.png" in names and "attention_0.png" in names


def test_cli_evaluate_json(cli_model, mnist_root, capsys):
    assert main(["caption", "evaluate", "--model", str(cli_model / "m"), "--data-dir",
                 str(mnist_root), "--n", "8", "--seed", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"exact_match", "bleu4", "word_accuracy"} and doc["n"] == 8
    assert 0 <= doc["exact_match"] <= 1 and 0 <= doc["bleu4"] <= 1


def test_cli_predict_npy_and_png(cli_model, mnist_root, tmp_path, capsys):
    from matplotlib.image import imsave

    digits = S.load_scene_digits(mnist_root)
    img = S.make_scenes(digits.test_images, digits.test_labels, 1, seed=0).images[0]
    np.save(tmp_path / "s.npy", img)
    imsave(tmp_path / "s.png", img, cmap="gray", vmin=0, vmax=1)
    model = str(cli_model / "m")
    assert main(["caption", "predict", "--model", model, str(tmp_path / "s.npy")]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["caption", "predict", "--model", model, str(tmp_path / "s.png")]) == 0
    second = capsys.readouterr().out.strip()
    assert first == second
    assert set(first.split()) <= set(S.WORDS)


def test_cli_errors(tmp_path, capsys):
    assert main(["caption", "evaluate", "--model", str(tmp_path / "none")]) == 2
    assert "no such model" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hi")
    assert main(["caption", "predict", "--model", str(tmp_path), str(tmp_path / "x.txt")]) == 2


def test_caption_images_batches_like_one_batch():
    cap = Captioner(CaptionConfig(**{**TINY, "max_len": S.MAX_WORDS + 1,
                                     "vocab": len(S.VOCAB)}), seed=6)
    images = np.random.default_rng(0).random((5, 8, 8)).astype(np.float32)
    assert caption_images(cap, images, batch_size=2) == caption_images(cap, images)
