"""Fused residual + LayerNorm: the end of both sub-blocks of a post-LayerNorm transformer layer,
``LayerNorm(residual + (projection + bias))``, in one pass over the rows instead of five NumPy passes.
"""

import numba
import numpy as np


def bias_residual_layer_norm_reference(projection, bias, residual, norm_weight, norm_bias, eps):
    """projection, residual (rows, width), bias, norm_weight, norm_bias (width,) -> (rows, width)."""
    x = residual + (projection + bias)
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * norm_weight + norm_bias


# reassoc lets LLVM vectorize the two sums (partial sums per SIMD lane): same numbers to float32 rounding.
@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _bias_residual_layer_norm(projection, bias, residual, norm_weight, norm_bias, eps):
    rows, width = residual.shape
    for row in range(rows):
        total = 0.0  # float64 sums: mean and variance of the row
        for column in range(width):
            value = residual[row, column] + (projection[row, column] + bias[column])
            residual[row, column] = value
            total += value
        mean = total / width
        squares = 0.0
        for column in range(width):
            centered = residual[row, column] - mean
            squares += centered * centered
        inverse_std = 1.0 / np.sqrt(squares / width + eps)
        for column in range(width):
            centered = residual[row, column] - mean
            residual[row, column] = centered * inverse_std * norm_weight[column] + norm_bias[column]


def bias_residual_layer_norm(projection, bias, residual, norm_weight, norm_bias, eps):
    """LayerNorm(residual + projection + bias), written into ``residual`` (rows, width), which is returned."""
    if residual.ndim != 2 or projection.shape != residual.shape:
        raise ValueError(
            f"bias_residual_layer_norm expects projection and residual of one (rows, width) shape, "
            f"got {projection.shape} and {residual.shape}"
        )
    width = residual.shape[1]
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
