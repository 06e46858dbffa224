"""Figures: confusion matrix, learning curves, a grid of digit images, the learnt filters of a
convolutional layer (PNG via matplotlib).

matplotlib is imported lazily, when a figure is drawn, and only through its object-oriented API
with the Agg canvas (no ``pyplot``, no global backend switch), so plotting works without a
display. Importing this module raises ``ImportError`` when matplotlib is not installed
(``pip install 'thetanet[plot]'``); importing thetanet itself never needs it.

``plot_confusion_matrix`` and ``plot_learning_curves`` are generic (any classes, any logged
metrics); ``plot_digit_grid`` shows images with their true and predicted labels;
``plot_filters`` shows a Conv2D kernel (k_h, k_w, C_in, C_out) as one small image per filter;
``plot_attention`` shows an image with each generated word's attention map over it.
Files are written atomically (a reader never sees half a PNG).
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_attention", "plot_confusion_matrix", "plot_digit_grid", "plot_filters",
           "plot_learning_curves"]

# Fail at import when matplotlib is absent (callers catch this), but import it only when
# a figure is drawn.
if importlib.util.find_spec("matplotlib") is None:  # pragma: no cover - environment
    raise ImportError("thetanet.plots needs matplotlib: pip install 'thetanet[plot]'")


def _figure(figsize: tuple[float, float]) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'thetanet[plot]'") from exc
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    from thetanet.files import atomic_write_bytes

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format=p.suffix.lstrip(".").lower() or "png")
    atomic_write_bytes(p, buf.getvalue())
    return p


def plot_confusion_matrix(cm: Any, labels: Sequence[str], path: str | os.PathLike[str],
                          title: str | None = None, normalize: bool = True) -> Path:
    """Write the confusion matrix ``cm`` (C[i, j] = examples of true class i predicted as j) to
    ``path`` (PNG). Colours show each row as a fraction of its class (``normalize``) or raw
    counts; cells carry the counts when there are at most 20 classes. Returns the path."""
    c = np.asarray(cm)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {c.shape}")
    k = c.shape[0]
    labels = [str(s) for s in labels]
    if len(labels) != k:
        raise ValueError(f"{k} classes in the matrix but {len(labels)} labels")
    if np.any(c < 0):
        raise ValueError("confusion matrix entries must be non-negative counts")
    if normalize:
        rows = c.sum(axis=1, keepdims=True)
        shown = np.divide(c, rows, out=np.zeros(c.shape, float), where=rows > 0)
        vmax = 1.0
    else:
        shown = c.astype(float)
        vmax = max(float(shown.max()), 1.0)
    size = min(max(4.5, 0.32 * k + 2.5), 18.0)
    fig = _figure((size + 1.0, size))
    ax = fig.add_subplot()
    im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8,
                 label="fraction of the true class" if normalize else "examples")
    font = 9 if k <= 12 else 7 if k <= 20 else 5
    ax.set_xticks(range(k), labels, rotation=90 if max(map(len, labels)) > 3 else 0,
                  fontsize=font)
    ax.set_yticks(range(k), labels, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if c[i, j]:
                    ax.text(j, i, str(int(c[i, j])), ha="center", va="center", fontsize=font,
                            color="white" if shown[i, j] > 0.5 * vmax else "black")
    total = c.sum()
    acc = np.trace(c) / total if total else 0.0
    ax.set_title(title or f"Confusion matrix (accuracy {acc:.2%}, {int(total)} examples)")
    return _save(fig, path)


def plot_learning_curves(history_dict: Mapping[str, Sequence[float]],
                         path: str | os.PathLike[str], title: str | None = None,
                         chosen_epoch: int | None = None) -> Path:
    """Plot per-epoch values (``History.history``: ``loss``, ``val_loss``, ``accuracy`` …).

    Keys containing "loss" go in a left panel, every other metric in a right panel (one panel
    when only one kind is present). ``chosen_epoch`` (0-based, e.g. early stopping's best
    epoch) is marked by a dashed vertical line in every panel. Returns the path."""
    series = {k: np.asarray(v, float) for k, v in history_dict.items() if len(v)}
    if not series:
        raise ValueError("history is empty: nothing to plot")
    losses = {k: v for k, v in series.items() if "loss" in k}
    others = {k: v for k, v in series.items() if "loss" not in k}
    groups = [(g, label) for g, label in ((losses, "loss"), (others, "metric")) if g]
    fig = _figure((5.5 * len(groups), 4.0))
    from matplotlib.ticker import MaxNLocator

    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (group, label) in zip(axes, groups):
        for name, values in group.items():
            epochs = np.arange(1, values.size + 1)
            ax.plot(epochs, values, marker="o" if values.size <= 30 else None, markersize=3,
                    label=name)
        if chosen_epoch is not None:
            ax.axvline(chosen_epoch + 1, color="0.3", linestyle="--", linewidth=1,
                       label=f"chosen epoch {chosen_epoch + 1}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_digit_grid(images: Any, true: Sequence[int], pred: Sequence[int],
                    path: str | os.PathLike[str], title: str | None = None,
                    max_images: int = 64, columns: int | None = None) -> Path:
    """A grid of images (n, h, w) — or flat square images (n, h·h) — each titled
    "true → predicted" (red when they differ). At most ``max_images`` are shown."""
    imgs = np.asarray(images, dtype=float)
    if imgs.ndim == 2:
        side = int(round(math.sqrt(imgs.shape[1])))
        if side * side != imgs.shape[1]:
            raise ValueError(f"flat images of width {imgs.shape[1]} are not square; "
                             "pass them as (n, h, w)")
        imgs = imgs.reshape(-1, side, side)
    if imgs.ndim != 3:
        raise ValueError(f"images must be (n, h, w) or (n, h·w), got shape {imgs.shape}")
    t, p = list(true), list(pred)
    if not len(t) == len(p) == imgs.shape[0]:
        raise ValueError(f"{imgs.shape[0]} images but {len(t)} true and {len(p)} predicted "
                         "labels")
    n = min(imgs.shape[0], int(max_images))
    cols = columns or max(1, min(8, n))
    rows = max(1, math.ceil(n / cols))
    width = max(1.3 * cols, 6.0)  # a few images still leave room for the whole title
    lines = textwrap.wrap(title, int(width * 12)) if title else []
    fig = _figure((width, 1.45 * rows + 0.3 * len(lines) + (0.2 if lines else 0.0)))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(imgs[i], cmap="gray_r", interpolation="nearest")
        ok = t[i] == p[i]
        ax.set_title(f"{t[i]} → {p[i]}", fontsize=9, color="black" if ok else "crimson")
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no images", ha="center", va="center")
    if lines:
        fig.suptitle("\n".join(lines), fontsize=11)
    return _save(fig, path)


def plot_filters(kernel: Any, path: str | os.PathLike[str], title: str | None = None,
                 max_inputs: int = 8) -> Path:
    """A Conv2D kernel Θ (k_h, k_w, C_in, C_out) as a grid: one column per filter (output
    channel), one row per input channel (at most ``max_inputs``). A diverging colour map
    centred on 0 (blue negative, red positive, one scale for the whole grid), so the pattern
    each filter responds to — an edge, a stroke, a blob — is visible. Returns the path."""
    k = np.asarray(kernel, dtype=float)
    if k.ndim != 4:
        raise ValueError(f"a Conv2D kernel has shape (k_h, k_w, C_in, C_out), got {k.shape}")
    kh, kw, c_in, c_out = k.shape
    rows = min(c_in, int(max_inputs))
    cols = min(c_out, 16)
    grid_rows = rows * math.ceil(c_out / cols)
    vmax = float(np.abs(k).max()) or 1.0
    fig = _figure((0.9 * cols + 0.8, 0.9 * grid_rows + (0.5 if title else 0.2)))
    axes = fig.subplots(grid_rows, cols, squeeze=False)
    im = None
    for f in range(math.ceil(c_out / cols) * cols):
        block, col = divmod(f, cols)
        for c in range(rows):
            ax = axes[block * rows + c, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if f >= c_out:
                ax.set_axis_off()
                continue
            im = ax.imshow(k[:, :, c, f], cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                           interpolation="nearest")
            if c == 0:
                ax.set_title(str(f), fontsize=8)
            if col == 0 and rows > 1:
                ax.set_ylabel(f"in {c}", fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="weight")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_attention(image: Any, words: Sequence[str], alphas: Any, path: str | os.PathLike[str],
                   title: str | None = None, columns: int = 7,
                   extent: tuple[float, float, float, float] | None = None) -> Path:
    """The lecture's Figure 3 rows: the image, then for each generated word the image with that
    word's attention weights α (one per feature-map location, shape (T, g_h, g_w)) laid over
    it, smoothed; the brightest region is where the word "looked". ``extent`` (left, right,
    bottom, top in pixel coordinates) places the α grid's outer cell edges on the image
    (default: the whole image)."""
    image = np.asarray(image, float)
    alphas = np.asarray(alphas, float)
    if image.ndim != 2 or alphas.ndim != 3 or alphas.shape[0] != len(words) or not len(words):
        raise ValueError(f"need a 2-D image and one (g_h, g_w) α map per word, got image "
                         f"{image.shape}, alphas {alphas.shape} and {len(words)} words")
    h, w = image.shape
    panels = len(words) + 1
    cols = max(1, min(columns, panels))
    rows = math.ceil(panels / cols)
    fig = _figure((1.6 * cols, 1.75 * rows + (0.3 if title else 0)))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("image", fontsize=8)
    extent = extent or (-0.5, w - 0.5, h - 0.5, -0.5)
    for ax, word, alpha in zip(axes[1:], words, alphas):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.imshow(alpha / max(alpha.max(), 1e-12), cmap="inferno", alpha=0.6, extent=extent,
                  interpolation="bilinear", vmin=0, vmax=1)
        ax.set_title(word, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
