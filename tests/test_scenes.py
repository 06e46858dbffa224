"""Digit scenes: the generator, the grammar, tokens, and the train/test digit split."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from thetanet.data import scenes as S


def _fake_digits(m: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.random((m, 28, 28)).astype(np.float32)
    return images, np.arange(m) % 10


def test_vocabulary_has_the_grammar_words():
    assert len(S.WORDS) >= 20 and len(set(S.WORDS)) == len(S.WORDS)
    assert set(S.DIGIT_NAMES) <= set(S.WORDS) and set(S.SIZES) <= set(S.WORDS)
    assert S.VOCAB[S.PAD] == "<pad>" and S.VOCAB[S.START] == "<start>"
    assert S.VOCAB[S.END] == "<end>"


def test_same_seed_same_scenes_other_seed_other_scenes():
    images, labels = _fake_digits()
    a = S.make_scenes(images, labels, 20, seed=3)
    b = S.make_scenes(images, labels, 20, seed=3)
    c = S.make_scenes(images, labels, 20, seed=4)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert a.captions != c.captions


def test_scene_pixels_are_the_placed_digits():
    images, labels = _fake_digits()
    sc = S.make_scenes(images, labels, 50, seed=1, canvas=48)
    assert sc.images.shape == (50, 48, 48) and sc.images.dtype == np.float32
    for img, places in zip(sc.images, sc.placements):
        covered = np.zeros(img.shape, bool)
        assert 1 <= len(places) <= 3
        assert len({(p.row, p.col) for p in places}) == len(places)
        for p in places:
            t, left, b, r = p.box()
            # inside its own quadrant
            assert p.row * 24 <= t and b <= (p.row + 1) * 24
            assert p.col * 24 <= left and r <= (p.col + 1) * 24
            assert p.extent == S.size_pixels(p.size, 48)
            expected = S.area_resize(images[p.source], p.extent)
            np.testing.assert_allclose(img[t:b, left:r], np.clip(expected, 0, 1), atol=1e-6)
            assert p.label == labels[p.source]
            covered[t:b, left:r] = True
        assert not img[~covered].any()


def test_scenes_vary_in_count_size_and_position():
    images, labels = _fake_digits()
    sc = S.make_scenes(images, labels, 300, seed=2)
    places = [p for ps in sc.placements for p in ps]
    assert {len(ps) for ps in sc.placements} == {1, 2, 3}
    assert {p.size for p in places} == {"small", "large"}
    assert len({(p.top, p.left) for p in places}) > 50
    assert S.size_pixels("large", 48) > S.size_pixels("small", 48)


def _p(label, size, row, col):
    return S.Placement(label, size, row, col, 0, 0, 10, 0)


@pytest.mark.parametrize("places, sentence", [
    ([_p(7, "large", 0, 0), _p(2, "small", 0, 1)], "a large seven to the left of a small two"),
    ([_p(3, "small", 1, 1)], "a small three at the bottom right"),
    ([_p(0, "large", 0, 1)], "a large zero at the top right"),
    ([_p(1, "small", 0, 1), _p(4, "large", 1, 0)],
     "a small one above and to the right of a large four"),
    ([_p(5, "small", 0, 0), _p(6, "small", 1, 0), _p(9, "large", 1, 1)],
     "a small five above a small six to the left of a large nine"),
    ([_p(8, "large", 0, 0), _p(8, "large", 1, 1)],
     "a large eight above and to the left of a large eight"),
])
def test_describe_follows_the_grammar(places, sentence):
    assert S.describe(places) == sentence


def test_describe_refuses_bad_scenes():
    with pytest.raises(ValueError, match="reading order"):
        S.describe([_p(1, "small", 0, 1), _p(2, "small", 0, 0)])
    with pytest.raises(ValueError, match="1 to 3"):
        S.describe([])


def test_captions_parse_and_fit_the_token_length():
    images, labels = _fake_digits()
    sc = S.make_scenes(images, labels, 200, seed=5)
    inputs, targets = S.encode_captions(sc.captions)
    assert inputs.shape == targets.shape == (200, S.MAX_WORDS + 1)
    assert (inputs[:, 0] == S.START).all()
    for caption, inp, tgt in zip(sc.captions, inputs, targets):
        k = len(caption.split())
        assert S.decode_tokens(tgt) == caption == S.decode_tokens(inp)
        assert tgt[k] == S.END and not tgt[k + 1:].any() and not inp[k + 1:].any()
        np.testing.assert_array_equal(inp[1:k + 1], tgt[:k])  # teacher forcing: shifted by one


def test_token_errors():
    with pytest.raises(ValueError, match="not in the scene vocabulary"):
        S.tokenize("a huge seven")
    with pytest.raises(ValueError, match="does not fit"):
        S.encode_captions(["a large seven at the top left"], length=4)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        S.decode_tokens([3, 99])


def test_area_resize_keeps_the_mean_and_averages_blocks():
    rng = np.random.default_rng(0)
    img = rng.random((28, 28))
    half = S.area_resize(img, 14)
    np.testing.assert_allclose(half, img.reshape(14, 2, 14, 2).mean(axis=(1, 3)), atol=1e-6)
    for size in (5, 22, 40):
        np.testing.assert_allclose(S.area_resize(img, size).mean(), img.mean(), rtol=1e-5)


def test_make_scenes_argument_errors():
    images, labels = _fake_digits()
    with pytest.raises(ValueError, match="one label per image"):
        S.make_scenes(images, labels[:3], 2, 0)
    with pytest.raises(ValueError, match="even canvas"):
        S.make_scenes(images, labels, 2, 0, canvas=47)


def _hashes(images: np.ndarray) -> set[str]:
    return {hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images}


def test_train_and_test_scenes_use_disjoint_digit_images(mnist_root):
    digits = S.load_scene_digits(mnist_root)
    assert len(digits.train_images) == 8000 and len(digits.test_images) == 2000
    # the MNIST t10k split of `thetanet digits --dataset mnist-t10k`
    assert not _hashes(digits.train_images) & _hashes(digits.test_images)
    train = S.make_scenes(digits.train_images, digits.train_labels, 300, seed=0)
    test = S.make_scenes(digits.test_images, digits.test_labels, 300, seed=0)
    used_train = _hashes(digits.train_images[[p.source for ps in train.placements for p in ps]])
    used_test = _hashes(digits.test_images[[p.source for ps in test.placements for p in ps]])
    assert used_train and used_test and not used_train & used_test
    assert used_test <= _hashes(digits.test_images)
