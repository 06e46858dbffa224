"""conv_ops: col2im is the adjoint of im2col in both layouts (⟨im2col(x), C⟩ = ⟨x, col2im(C)⟩)
and matches a naive loop, for strides below, equal to and above the kernel width."""

import numpy as np
import pytest

from thetanet import conv_ops as ops


def naive_col2im(cols, shape, kh, kw, sh, sw, ho, wo):
    n, _, _, c = shape
    out = np.zeros(shape)
    c6 = cols.reshape(n, ho, wo, kh, kw, c)
    for p in range(ho):
        for q in range(wo):
            out[:, p * sh:p * sh + kh, q * sw:q * sw + kw, :] += c6[:, p, q]
    return out


@pytest.mark.parametrize("shape, kernel, strides", [
    ((2, 7, 9, 3), (3, 3), (1, 1)),
    ((2, 8, 8, 2), (2, 4), (2, 1)),  # overlapping columns: ⌈4/1⌉ = 4 groups
    ((3, 9, 11, 1), (5, 2), (1, 3)),  # gaps between windows
    ((1, 6, 6, 4), (3, 3), (2, 2)),
    ((2, 5, 5, 2), (5, 5), (1, 1)),  # one output pixel
])
@pytest.mark.parametrize("transposed", [False, True])
def test_col2im_is_the_adjoint_of_im2col(shape, kernel, strides, transposed):
    rng = np.random.default_rng(0)
    (kh, kw), (sh, sw) = kernel, strides
    n, h, w, c = shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    x = rng.normal(size=shape)
    k, p = kh * kw * c, n * ho * wo
    cols = ops.im2col(ops.windows(x, kh, kw, sh, sw, ho, wo),
                      np.empty((k, p) if transposed else (p, k)), transposed)
    g = rng.normal(size=cols.shape)
    back = np.zeros(shape)
    ops.col2im_add(g, back, kh, kw, sh, sw, ho, wo, transposed)
    assert np.vdot(cols, g) == pytest.approx(np.vdot(x, back), rel=1e-12)
    rows = g.T if transposed else g
    np.testing.assert_allclose(back, naive_col2im(np.ascontiguousarray(rows), shape, kh, kw, sh,
                                                  sw, ho, wo), rtol=1e-12, atol=1e-12)
    again = back.copy()
    ops.col2im_add(g, again, kh, kw, sh, sw, ho, wo, transposed)  # it adds
    np.testing.assert_allclose(again, 2 * back, rtol=1e-12, atol=1e-12)


def test_col2im_rows_layout_needs_a_contiguous_target():
    dxp = np.zeros((2, 6, 6, 2))[:, :, ::2]  # a strided view
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.col2im_add(np.zeros((2, 18)), dxp, 3, 3, 1, 1, 1, 1, False)
