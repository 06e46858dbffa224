r"""Shared arithmetic of the convolution and pooling layers: sizes, padding, strided windows,
im2col and its adjoint col2im. Channels-last (N, H, W, C) throughout, like Keras.

A window view is free: ``windows(xp, …)`` is an ``as_strided`` view of shape
(N, H_out, W_out, k_h, k_w, C) whose entry [n, p, q, i, j, c] is xp[n, p·s_h + i, q·s_w + j, c].
im2col copies it into a matrix with one row per output pixel and one column per (i, j, c), so a
convolution is one GEMM with the kernel reshaped to (k_h·k_w·C, C_out).

Speed path (named): :func:`im2col` writes either that matrix (``transposed=False``) or its
transpose (``transposed=True``). The copy runs fastest along the longest contiguous run of the
source: k_w·C elements per row in the first layout, W_out elements per row in the second when
C = 1. :func:`use_transposed_columns` picks the layout; the GEMMs take either (BLAS transposes
freely). :func:`wide_shape` (also named) lets the bias add and elementwise activations run on
long rows. Nothing loops over pixels in Python; :func:`col2im_add` loops over at most the
k_h·k_w kernel offsets (k_h·⌈k_w/s_w⌉ in the first layout, also named).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

#: Largest im2col matrix (in elements) built at once; bigger batches are done in chunks of
#: examples, so memory stays bounded (≈ 32 MiB in float32) whatever the batch size.
COLS_BUDGET = 1 << 23


def pair(value: Any, what: str) -> tuple[int, int]:
    """``3`` or ``(3, 3)`` → (3, 3); positive integers only."""
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(vals) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                             or v < 1 for v in vals):
        raise ValueError(f"{what} must be a positive integer or a pair of them, got {value!r}")
    return int(vals[0]), int(vals[1])


def check_padding(padding: Any) -> str:
    p = str(padding).lower()
    if p not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return p


def output_size(size: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """(output size, padding before, padding after) along one axis, with Keras/TensorFlow's
    rules: "valid" = no padding, ⌊(size − k)/s⌋ + 1 outputs; "same" = ⌈size/s⌉ outputs, padded
    with max((out − 1)·s + k − size, 0) zeros split so that the odd one goes after (bottom /
    right). PyTorch's symmetric ``padding=`` cannot express that odd split (even kernels)."""
    if padding == "same":
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        return out, total // 2, total - total // 2
    if size < k:
        raise ValueError(f"a window of {k} does not fit an input of size {size} with "
                         f"padding='valid'")
    return (size - k) // s + 1, 0, 0


def input_hwc(input_shape: Any, layer: str) -> tuple[int, int, int]:
    """(H, W, C) from a build shape (without the batch axis)."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else (input_shape,)
    if len(shape) != 3 or any(int(d) < 1 for d in shape):
        raise ValueError(f"{layer} needs inputs of shape (height, width, channels) per example "
                         f"(channels-last), got {shape}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def windows(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, ho: int, wo: int
            ) -> np.ndarray:
    """Read-only view (N, ho, wo, kh, kw, C): [n, p, q, i, j, c] = xp[n, p·sh + i, q·sw + j, c]."""
    n, _, _, c = xp.shape
    s_n, s_h, s_w, s_c = xp.strides
    return as_strided(xp, (n, ho, wo, kh, kw, c), (s_n, sh * s_h, sw * s_w, s_h, s_w, s_c),
                      writeable=False)


def offset_view(xp: np.ndarray, i: int, j: int, sh: int, sw: int, ho: int, wo: int
                ) -> np.ndarray:
    """xp[:, i::sh, j::sw, :] limited to (ho, wo): kernel offset (i, j) of every window."""
    return xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :]


def use_transposed_columns(c_in: int, kw: int, wo: int) -> bool:
    """The speed path of :func:`im2col`: one input channel and output rows longer than the
    kernel → copy whole output rows (transposed columns); otherwise copy k_w·C runs."""
    return c_in == 1 and wo > kw


def im2col(win: np.ndarray, out: np.ndarray, transposed: bool) -> np.ndarray:
    """Copy the window view ``win`` (N, ho, wo, kh, kw, C) into ``out``: shape
    (N·ho·wo, kh·kw·C) or, ``transposed``, (kh·kw·C, N·ho·wo) (a view with row stride allowed)."""
    n, ho, wo, kh, kw, c = win.shape
    if transposed:
        dst = out.reshape(kh, kw, c, n, ho, wo) if out.flags.c_contiguous else \
            as_strided(out, (kh, kw, c, n, ho, wo),
                       (out.strides[0] * kw * c, out.strides[0] * c, out.strides[0],
                        ho * wo * out.itemsize, wo * out.itemsize, out.itemsize))
        np.copyto(dst, win.transpose(3, 4, 5, 0, 1, 2))
    else:
        np.copyto(out.reshape(n, ho, wo, kh, kw, c), win)
    return out


def col2im_add(cols: np.ndarray, dxp: np.ndarray, kh: int, kw: int, sh: int, sw: int,
               ho: int, wo: int, transposed: bool) -> None:
    """The adjoint of :func:`im2col`: ``cols`` in either of its layouts, (N·ho·wo, kh·kw·C) or
    ``transposed`` (kh·kw·C, N·ho·wo), holds ∂J/∂ of every column entry; this adds
    dxp[n, p·sh + i, q·sw + j, c] += cols[(n, p, q), (i, j, c)] into the C-contiguous ``dxp``.

    Speed path (named): in the first layout, the k_w·C entries of one kernel row i of a window
    are contiguous both in ``cols`` and in ``dxp``, and windows t = ⌈k_w/s_w⌉ columns apart
    never overlap: one add per (i, q mod t) covers all examples and pixels, k_h·t adds with
    runs of k_w·C numbers (instead of k_h·k_w adds with runs of C). The transposed layout
    (C = 1) adds per kernel offset, in runs along the output rows."""
    n, _, _, c = dxp.shape
    if transposed:
        src = cols.reshape(kh, kw, c, n, ho, wo).transpose(0, 1, 3, 4, 5, 2)
        for i in range(kh):
            for j in range(kw):
                dst = offset_view(dxp, i, j, sh, sw, ho, wo)
                np.add(dst, src[i, j], out=dst)
        return
    if not dxp.flags.c_contiguous:
        raise ValueError("col2im_add needs a C-contiguous dxp")
    src = cols.reshape(n, ho, wo, kh, kw * c)
    t = -(-kw // sw)
    s_n, s_h, s_w, s_c = dxp.strides
    for i in range(kh):
        for r in range(min(t, wo)):
            nq = len(range(r, wo, t))
            dst = as_strided(dxp[:, i:, r * sw:], (n, ho, nq, kw * c),
                             (s_n, sh * s_h, t * sw * s_w, s_c))
            np.add(dst, src[:, :, r::t, i], out=dst)


def wide_shape(rows: int, cols: int, target: int = 512) -> tuple[int, int]:
    """A (rows·cols / w, w) shape for the same contiguous numbers with rows w = r·cols of about
    ``target`` elements (r divides ``rows``): NumPy's elementwise loops and the bias add run per
    row, so a few C_out = 6 wide rows per pixel cost far more than long ones (speed path)."""
    best = 1
    for r in range(1, max(target // max(cols, 1), 1) + 1):
        if rows % r == 0:
            best = r
    return rows // best, best * cols


def chunks(n: int, per_example: int) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges of examples whose im2col matrices stay within COLS_BUDGET."""
    step = max(1, COLS_BUDGET // max(per_example, 1))
    for start in range(0, n, step):
        yield start, min(start + step, n)


def fits_one_chunk(n: int, per_example: int) -> bool:
    return n * per_example <= COLS_BUDGET

