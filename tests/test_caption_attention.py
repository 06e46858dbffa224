"""The attention plots say something true: on fixed two-digit test scenes, the word naming each
digit puts most of its attention α on that digit's region.

The model is the captioner trained by ``benchmarks/captions.py`` with the defaults
(``thetanet caption train``), committed as a fixture (tests/fixtures/captioner, JSON + npz):
training one in the test would take minutes. The scenes are fresh ones from the held-out
digits, which the model never saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thetanet.captions.model import CaptionConfig, Captioner
from thetanet.data import scenes as S

FIXTURE = Path(__file__).parent / "fixtures" / "captioner"


def location_quadrants(config: CaptionConfig) -> np.ndarray:
    """(L, 2): the quadrant (row, col) that each feature location's window is centred in."""
    cell = 2 ** len(config.filters)  # pixels per pooled cell
    g_h, g_w = config.grid
    centre = (np.arange(g_h) + config.window / 2) * cell  # window i spans cells i … i + w − 1
    half = config.canvas / 2
    rows, cols = np.meshgrid(centre >= half, (np.arange(g_w) + config.window / 2) * cell >= half,
                             indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1).astype(int)


def test_location_quadrants_of_the_default_grid():
    q = location_quadrants(CaptionConfig()).reshape(4, 4, 2)
    # centres at 12, 20, 28, 36 px on a 48-px canvas: a 2 × 2 block of locations per quadrant
    np.testing.assert_array_equal(q[:2, :2], 0)
    np.testing.assert_array_equal(q[2:, 2:], 1)
    np.testing.assert_array_equal(q[:2, 2:, 1], 1)
    np.testing.assert_array_equal(q[:2, 2:, 0], 0)


def digit_attention(cap: Captioner, scenes: S.Scenes) -> list[tuple[float, float]]:
    """Per digit-naming word: (α on its digit's quadrant, α on the other digit's quadrant)."""
    quads = location_quadrants(cap.config)
    maps = cap.attention_maps(scenes.images, scenes.captions)
    out = []
    for places, caption, alpha in zip(scenes.placements, scenes.captions, maps):
        flat = alpha.reshape(alpha.shape[0], -1)
        names = [t for t, w in enumerate(caption.split()) if w in S.DIGIT_NAMES]
        assert len(names) == len(places) == 2
        for k, t in enumerate(names):
            own = (quads == (places[k].row, places[k].col)).all(axis=1)
            other = (quads == (places[1 - k].row, places[1 - k].col)).all(axis=1)
            out.append((float(flat[t, own].sum()), float(flat[t, other].sum())))
    return out


@pytest.mark.skipif(not (FIXTURE / "config.json").exists(), reason="no trained fixture")
def test_each_digit_word_looks_at_its_digit(mnist_root):
    cap, _ = Captioner.load(FIXTURE)
    digits = S.load_scene_digits(mnist_root)
    scenes = S.make_scenes(digits.test_images, digits.test_labels, 150, seed=26,
                           canvas=cap.config.canvas)
    two = [i for i, p in enumerate(scenes.placements) if len(p) == 2][:40]
    assert len(two) >= 30
    fixed = S.Scenes(scenes.images[two], [scenes.captions[i] for i in two],
                     [scenes.placements[i] for i in two])
    masses = np.array(digit_attention(cap, fixed))
    own, other = masses[:, 0], masses[:, 1]
    # most of α (more than half) on the named digit's quadrant, for every such word (the
    # fixture puts at least 0.94 there; an untrained captioner about a quarter)
    assert np.all(own > 0.5), np.sort(own)[:10]
    assert np.median(own) > 0.9
    assert np.all(own > 5 * other)
