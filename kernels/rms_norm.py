"""Norms over rows (the last axis): the RMSNorm of today's pre-norm layers (Qwen3, Gemma 3 with its 1 + weight,
T5, and the per-head query/key norms), LayerNorm without a bias (ModernBERT) and with one (the embeddings of BERT
and its descendants, layers.embeddings), each in two passes over a row
(the sum in float64, then the scaled row written) instead of NumPy's five or six over the whole matrix, one row
at a time so that it stays in L1. Per row of width n: 8n bytes moved, ~4n FLOPs (5n with the mean).

``row_norm_reference`` is the plain formula, as architectures/modern_layers.py wrote it.
"""

import numba
import numpy as np


def row_norm_reference(x, scale, eps, subtract_mean, shift=None):
    """x (..., width), scale and shift (width,) -> (..., width): (x - mean) / sqrt(mean((x - mean)^2) + eps) * scale
    (+ shift), mean the row's mean (LayerNorm) or 0 (RMSNorm)."""
    mean = x.mean(axis=-1, keepdims=True) if subtract_mean else np.zeros_like(x[..., :1])
    centered = x - mean
    normed = centered / np.sqrt((centered * centered).mean(axis=-1, keepdims=True) + x.dtype.type(eps)) * scale
    return normed if shift is None else normed + shift


# reassociated float64 sums: LLVM splits them over vector lanes; the row's float32 values are exact in float64
@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _row_norm(x, scale, shift, eps, subtract_mean, out):
    # shift: (width,), or empty for none
    rows, width = x.shape
    for r in range(rows):
        row, written = x[r], out[r]
        mean = 0.0
        if subtract_mean:
            for j in range(width):
                mean += row[j]
            mean /= width
        squares = 0.0
        for j in range(width):
            centered = row[j] - mean
            squares += centered * centered
        inverse = np.float32(1.0 / np.sqrt(squares / width + eps))
        mean32 = np.float32(mean)
        if len(shift):
            for j in range(width):
                written[j] = (row[j] - mean32) * inverse * scale[j] + shift[j]
        else:
            for j in range(width):
                written[j] = (row[j] - mean32) * inverse * scale[j]


def row_norm(x, scale, eps, subtract_mean, shift=None):
    """The numba version of ``row_norm_reference``: x (..., width) float32 -> a new float32 array of x's shape."""
    if x.dtype != np.float32 or scale.shape != x.shape[-1:] or (shift is not None and shift.shape != scale.shape):
        raise ValueError(f"row_norm expects float32 x (..., width), scale and shift (width,), got {x.dtype} "
                         f"{x.shape}, {scale.shape}, {None if shift is None else shift.shape}")
    shift = np.empty(0, np.float32) if shift is None else shift.astype(np.float32, copy=False)
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out = np.empty(rows.shape, dtype=np.float32)
    _row_norm(rows, scale.astype(np.float32, copy=False), shift, float(eps), bool(subtract_mean), out)
    return out.reshape(x.shape)
