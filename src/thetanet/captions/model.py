r"""The captioner as a model graph: a CNN encoder and an LSTM decoder with attention (Figure 3).

Built from the engine's layers in Keras's functional style (:mod:`thetanet.graph`)::

    image (H, W, 1) ─ [Conv2D 3×3 same ReLU ─ MaxPool2D 2] × k ─ Conv2D w×w valid ReLU (window)
        window ─┬─ Reshape (L, d) ─┬─ Concatenate ─ features f_l = [what, where]
                │   positions (L, 2)┘
                └─ Flatten ─ Dense(s, ReLU) ─ summary
    words (T,) ─ Embedding(mask_zero) ─┐
    summary ─ RepeatVector(T) ─────────┴─ Concatenate ─ LSTM(u, return_sequences) ─ h_t
    [h_t, features] ─ AdditiveAttention ─ (ctx_t, α_t)
    [h_t, ctx_t] ─ Concatenate ─ Dense(hidden, ReLU) ─ Dense(V, softmax) ─ P(w_{t+1} | w_≤t, image)

- Each location's feature gets its position (row and column of the window's centre in
  [−1, 1], :func:`grid_positions`, a constant second input), so attention can pick "the digit
  at the top left" and the context says where it looked: the words "left", "above"… need it.
  (Coordinates as extra image channels instead slowed the CNN's learning of the digits
  severalfold: they dominate the first layers' activations.)
- The window layer makes each location's feature f_l describe a whole quadrant-sized window
  (w = 3 pooled cells = 24 px on a 48-px canvas, windows 8 px apart): a digit is read from one
  f_l, so attention has to pick a location, not assemble a digit from pieces.
- The summary (the whole flattened feature map through one Dense layer) enters the LSTM at
  every step: the decoder knows the scene's layout before it names a digit.
- Teacher forcing: ``words`` are ``<start> w_1 … w_k`` and the targets ``w_1 … w_k <end>``;
  padding (id 0) is masked from the embedding on, so padded steps count neither in J nor in δ.
- ``attention=False`` replaces ctx_t by the whole flattened feature map at every step (one
  vector for the whole caption, "Show and Tell"): the baseline.

Three :class:`~thetanet.graph.Model` objects share the same layers (one set of weights Θ):
``train`` (image, positions, words → P), ``encoder`` (image, positions → features, summary;
without attention also the flat map) and ``decoder`` (features, summary, words → P, α),
which decoding re-runs on each prefix without re-running the CNN, and which gives α for the
plots.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thetanet.data import scenes as _scenes
from thetanet.graph import Input, Model
from thetanet.layers import (
    LSTM,
    AdditiveAttention,
    Concatenate,
    Conv2D,
    Dense,
    Embedding,
    Flatten,
    MaxPool2D,
    RepeatVector,
    Reshape,
)
from thetanet.model import load_model

__all__ = ["CaptionConfig", "Captioner", "grid_extent", "grid_positions"]


@dataclass
class CaptionConfig:
    """The captioner's architecture (saved with the model)."""

    canvas: int = 48
    filters: tuple[int, ...] = (8, 16, 32)
    window: int = 3
    features: int = 64
    summary: int = 64
    embed: int = 16
    units: int = 64
    attention_units: int = 32
    hidden: int = 64
    attention: bool = True
    vocab: int = len(_scenes.VOCAB)
    max_len: int = _scenes.MAX_WORDS + 1
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.filters = tuple(self.filters)
        sizes = (self.canvas, self.window, self.features, self.summary, self.embed, self.units,
                 self.attention_units, self.hidden, self.vocab, self.max_len, *self.filters)
        if not self.filters or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                                   for s in sizes):
            raise ValueError(f"caption config sizes must be positive integers: {self}")
        if self.canvas % 2 ** len(self.filters):
            raise ValueError(f"canvas {self.canvas} must be divisible by 2^{len(self.filters)}"
                             " (one 2×2 pooling per conv layer)")
        if self.window > self.canvas // 2 ** len(self.filters):
            raise ValueError(f"window {self.window} is larger than the pooled map")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")

    @property
    def grid(self) -> tuple[int, int]:
        """(g_h, g_w): the feature map's size, L = g_h·g_w locations."""
        side = self.canvas // 2 ** len(self.filters) - self.window + 1
        return side, side

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["filters"] = list(self.filters)
        return d


def grid_extent(config: CaptionConfig) -> tuple[float, float, float, float]:
    """Where the α grid lies on the image (left, right, bottom, top, pixel coordinates): cell
    (i, j) drawn around its window's centre, (i + w/2)·c pixels (c pixels per pooled cell)."""
    c = 2 ** len(config.filters)
    g_h, g_w = config.grid
    lo = config.window / 2 * c - c / 2 - 0.5
    return lo, lo + g_w * c, lo + g_h * c, lo


def grid_positions(config: CaptionConfig) -> np.ndarray:
    """(L, 2): each feature location's (row, column) position in [−1, 1], row-major."""
    g_h, g_w = config.grid
    rows, cols = np.meshgrid(np.linspace(-1, 1, g_h), np.linspace(-1, 1, g_w), indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1).astype(config.dtype)


def _layers(cfg: CaptionConfig) -> dict[str, Any]:
    """Every layer of the captioner, by name (names are how a loaded model is re-wired)."""
    out: dict[str, Any] = {}
    for i, f in enumerate(cfg.filters):
        out[f"conv{i}"] = Conv2D(f, 3, padding="same", activation="relu",
                                 kernel_initializer="he_uniform", name=f"conv{i}")
        out[f"pool{i}"] = MaxPool2D(2, name=f"pool{i}")
    out["window"] = Conv2D(cfg.features, cfg.window, padding="valid", activation="relu",
                           kernel_initializer="he_uniform", name="window")
    g_h, g_w = cfg.grid
    out["reshape"] = Reshape((g_h * g_w, cfg.features), name="reshape")
    out["features"] = Concatenate(name="features")
    out["flatten"] = Flatten(name="flatten")
    out["summary"] = Dense(cfg.summary, "relu", name="summary")
    out["repeat"] = RepeatVector(cfg.max_len, name="repeat")
    out["embedding"] = Embedding(cfg.vocab, cfg.embed, mask_zero=True, name="embedding")
    out["lstm_in"] = Concatenate(name="lstm_in")
    out["lstm"] = LSTM(cfg.units, return_sequences=True, name="lstm")
    if cfg.attention:
        out["attention"] = AdditiveAttention(cfg.attention_units, name="attention")
    else:
        out["repeat_map"] = RepeatVector(cfg.max_len, name="repeat_map")
    out["deep_in"] = Concatenate(name="deep_in")
    out["deep"] = Dense(cfg.hidden, "relu", name="deep")
    out["next_word"] = Dense(cfg.vocab, "softmax", name="next_word")
    return out


def _encode(cfg: CaptionConfig, lay: dict[str, Any], image: Any, positions: Any
            ) -> tuple[Any, Any, Any]:
    """(features (L, d + 2), summary (s,), flat map) tensors of an image tensor."""
    a = image
    for i in range(len(cfg.filters)):
        a = lay[f"pool{i}"](lay[f"conv{i}"](a))
    a = lay["window"](a)
    flat = lay["flatten"](a)
    return lay["features"]([lay["reshape"](a), positions]), lay["summary"](flat), flat


def _decode(cfg: CaptionConfig, lay: dict[str, Any], features: Any, summary: Any, flat: Any,
            words: Any) -> tuple[Any, Any]:
    """(P, α or None) tensors: the decoder on features, summary and the words so far."""
    x = lay["lstm_in"]([lay["embedding"](words), lay["repeat"](summary)])
    h = lay["lstm"](x)
    if cfg.attention:
        ctx, alpha = lay["attention"]([h, features])
    else:
        ctx, alpha = lay["repeat_map"](flat), None
    r = lay["deep"](lay["deep_in"]([h, ctx]))
    return lay["next_word"](r), alpha


class Captioner:
    """The models of the module doc over one set of layers; ``train`` is compiled by the
    caller (:mod:`thetanet.captions.train`). ``trained``: a loaded training model whose
    layers (and Θ) to use."""

    def __init__(self, config: CaptionConfig, seed: int = 0,
                 trained: Model | None = None) -> None:
        self.config = cfg = config
        dt = cfg.dtype
        lay = _layers(cfg)  # a loaded model's layers replace these (unused ones stay fresh)
        lay.update({} if trained is None else {layer.name: layer for layer in trained.layers})
        saved = None if trained is None else {
            layer.name: [p.copy() for p in layer.params] for layer in trained.layers}
        image = Input((cfg.canvas, cfg.canvas, 1), name="image")
        positions = Input((cfg.grid[0] * cfg.grid[1], 2), name="positions")
        words = Input((cfg.max_len,), name="words")
        feats, summ, flat = _encode(cfg, lay, image, positions)
        probs, alpha = _decode(cfg, lay, feats, summ, flat, words)
        self.encoder = Model([image, positions],
                             [feats, summ] + ([] if cfg.attention else [flat]), dtype=dt,
                             seed=seed)
        f_in = Input(tuple(feats.shape), name="features_in")
        s_in = Input(tuple(summ.shape), name="summary_in")
        m_in = Input(tuple(flat.shape), name="map_in")
        w_in = Input((cfg.max_len,), name="words_in")
        p2, a2 = _decode(cfg, lay, f_in, s_in, m_in, w_in)
        dec_in = [f_in, s_in, w_in] if cfg.attention else [f_in, s_in, m_in, w_in]
        self.decoder = Model(dec_in, [p2, a2] if cfg.attention else [p2], dtype=dt, seed=seed)
        # Building a model (re)initialises the layers it calls and decides which of them pass
        # δ down: the model that trains is built last, then the loaded Θ (if any) put back.
        self.train = Model([image, positions, words], probs, dtype=dt, seed=seed,
                           name="captioner")
        if saved is not None:
            for layer in self.train.layers:
                for p, w in zip(layer.params, saved[layer.name]):
                    p[...] = w

    # -- inputs --------------------------------------------------------------------------------
    def image_input(self, images: np.ndarray) -> list[np.ndarray]:
        """The encoder's inputs for images (n, H, W): [images (n, H, W, 1), positions]."""
        images = np.asarray(images, self.config.dtype)
        c = self.config.canvas
        if images.ndim != 3 or images.shape[1:] != (c, c):
            raise ValueError(f"the captioner reads ({c}, {c}) images, got {images.shape[1:]}")
        pos = grid_positions(self.config)
        return [images[..., None], np.broadcast_to(pos, (len(images), *pos.shape))]

    def inputs(self, images: np.ndarray, words: np.ndarray) -> list[np.ndarray]:
        """The training model's inputs: images (n, H, W) and input tokens (n, T)."""
        return [*self.image_input(images), np.asarray(words, self.config.dtype)]

    def encode(self, images: np.ndarray) -> list[np.ndarray]:
        """The encoder's outputs for images (n, H, W): [features, summary(, flat map)]."""
        out = self.encoder.predict(self.image_input(images), batch_size=500)
        return out if isinstance(out, list) else [out]

    def words_input(self, prefixes: np.ndarray) -> np.ndarray:
        """Token prefixes (k, t), t ≤ T, zero-padded to the model's T steps."""
        k, t = prefixes.shape
        if t > self.config.max_len:
            raise ValueError(f"prefix of {t} tokens is longer than {self.config.max_len}")
        words = np.zeros((k, self.config.max_len), self.config.dtype)
        words[:, :t] = prefixes
        return words

    def step_function(self, encoded: list[np.ndarray]) -> Any:
        """``step(rows, prefixes) -> log P(next token | image, prefix)`` for
        :mod:`thetanet.captions.decode`: the decoder re-run on each prefix, the encoder's
        outputs ``encoded`` computed once."""

        def step(rows: np.ndarray, prefixes: np.ndarray) -> np.ndarray:
            x = [e[rows] for e in encoded] + [self.words_input(prefixes)]
            out = self.decoder.predict(x, batch_size=1000)
            probs = out[0] if isinstance(out, list) else out
            return np.log(np.maximum(probs[:, prefixes.shape[1] - 1], 1e-30))

        return step

    def attention_maps(self, images: np.ndarray, captions: list[str]) -> list[np.ndarray]:
        """Per image, α (k, g_h, g_w) of each of its caption's k words: where the decoder
        looked when it produced that word (teacher-forced on the caption)."""
        if not self.config.attention:
            raise ValueError("a model trained --no-attention has no attention weights")
        inputs, _ = _scenes.encode_captions(captions, self.config.max_len)
        encoded = self.encode(images)
        _, alpha = self.decoder.predict([*encoded, inputs.astype(self.config.dtype)])
        g = self.config.grid
        return [alpha[i, :len(c.split())].reshape(-1, *g) for i, c in enumerate(captions)]

    # -- files -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
             ) -> Path:
        """The training model via the engine's save (JSON + .npz), the config in metadata."""
        meta = {"captioner": self.config.to_json(), **(metadata or {})}
        self.train.save(path, metadata=meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> tuple[Captioner, dict[str, Any]]:
        """(captioner, metadata) of a model saved by :meth:`save`."""
        trained = load_model(path, compile=False)
        meta = dict(getattr(trained, "metadata", {}) or {})
        raw = meta.get("captioner")
        if not isinstance(raw, dict) or set(raw) - set(CaptionConfig.__dataclass_fields__):
            raise ValueError(f"{path}: not a saved captioner (no captioner config)")
        try:
            config = CaptionConfig(**raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid captioner config: {exc}") from exc
        if not isinstance(trained, Model) or {"conv0", "lstm", "next_word"} - {
                layer.name for layer in trained.layers}:
            raise ValueError(f"{path}: the saved model is not a captioner graph")
        g_h, g_w = config.grid
        expected = [(config.canvas, config.canvas, 1), (g_h * g_w, 2), (config.max_len,)]
        if [tuple(t.shape) for t in trained.inputs] != expected:  # before building anything
            raise ValueError(f"{path}: the captioner config does not match the saved graph's "
                             "inputs")
        return cls(config, trained=trained), meta
