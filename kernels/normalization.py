"""Fused residual + LayerNorm: the end of both sub-blocks of a post-LayerNorm transformer layer,
``LayerNorm(residual + (projection + bias))``, in three passes instead of five NumPy passes, over a
(width, tokens) matrix that holds one token per column, as the fast encoder lays them out.
"""

import numba
import numpy as np


def bias_residual_layer_norm_reference(projection, bias, residual, norm_weight, norm_bias, eps):
    """projection, residual (width, tokens), one token per column; bias, norm_weight, norm_bias (width,) ->
    (width, tokens), each column normalised."""
    x = residual + (projection + bias[:, None])
    mean = x.mean(axis=0, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=0, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * norm_weight[:, None] + norm_bias[:, None]


# Tokens are columns: each pass runs along a row, updating every token's running sum (float64) at once, so the
# loops vectorize across tokens with no reordering of any sum.
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _bias_residual_layer_norm(projection, bias, residual, norm_weight, norm_bias, eps):
    width, tokens = residual.shape
    mean = np.zeros(tokens)
    for row in range(width):
        for token in range(tokens):
            value = residual[row, token] + (projection[row, token] + bias[row])
            residual[row, token] = value
            mean[token] += value
    mean /= width
    squares = np.zeros(tokens)
    for row in range(width):
        for token in range(tokens):
            centered = residual[row, token] - mean[token]
            squares[token] += centered * centered
    inverse_std = 1.0 / np.sqrt(squares / width + eps)
    for row in range(width):
        for token in range(tokens):
            centered = residual[row, token] - mean[token]
            residual[row, token] = centered * inverse_std[token] * norm_weight[row] + norm_bias[row]


def bias_residual_layer_norm(projection, bias, residual, norm_weight, norm_bias, eps):
    """LayerNorm(residual + projection + bias) of every column, written into ``residual`` (width, tokens),
    which is returned."""
    if residual.ndim != 2 or projection.shape != residual.shape:
        raise ValueError(
            f"bias_residual_layer_norm expects projection and residual of one (width, tokens) shape, "
            f"got {projection.shape} and {residual.shape}"
        )
    width = residual.shape[0]
    for name, vector in (("bias", bias), ("norm_weight", norm_weight), ("norm_bias", norm_bias)):
        if vector.shape != (width,):
            raise ValueError(f"bias_residual_layer_norm: {name} has shape {vector.shape}, expected ({width},)")
    dtype = residual.dtype
    _bias_residual_layer_norm(
        projection.astype(dtype, copy=False),
        bias.astype(dtype, copy=False),
        residual,
        norm_weight.astype(dtype, copy=False),
        norm_bias.astype(dtype, copy=False),
        float(eps),
    )
    return residual
