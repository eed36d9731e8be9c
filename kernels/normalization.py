"""Fused residual + LayerNorm: the end of both sub-blocks of a post-LayerNorm transformer layer,
``LayerNorm(residual + (projection + bias))``, in three passes instead of five NumPy passes, over a
(width, tokens) matrix that holds one token per column, as the fast encoder lays them out. And LayerNorm's
backward pass for training, over (tokens, width) rows, in one pass over the rows instead of a dozen NumPy passes.
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


def layer_norm_backward_reference(d_out, x, weight, eps):
    """d_out, x (tokens, width), weight (width,) -> d_x (tokens, width), d_weight, d_bias (width,). With
    x_hat = (x - mean) / std and g = d_out * weight: d_x = (g - mean(g) - x_hat * mean(g * x_hat)) / std."""
    mean = x.mean(axis=-1, keepdims=True)
    inverse_std = 1 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)  # (tokens, 1)
    x_hat = (x - mean) * inverse_std  # (tokens, width)
    g = d_out * weight
    d_x = inverse_std * (g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat).mean(axis=-1, keepdims=True))
    return d_x, (d_out * x_hat).sum(axis=0), d_out.sum(axis=0)


# One token (row) at a time: its mean and variance, then one pass for the two means of g and the parameters'
# gradients, one for d_x; a row (width floats) stays in L1. Sums in float64 (the reference sums float32 in
# float32, so the kernel is the more accurate of the two: the LayerNorm bias gradients nearly cancel), in SIMD
# lanes: fastmath "reassoc" lets the row sums vectorize (4,000 x 384 float32: 1.9 ms, against 9 ms for the
# reference and 9-13 ms for this kernel without it).
@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _layer_norm_backward(d_out, x, weight, eps, d_x, d_weight, d_bias):
    tokens, width = x.shape
    for token in range(tokens):
        mean = 0.0
        for column in range(width):
            mean += x[token, column]
        mean /= width
        squares = 0.0
        for column in range(width):
            centered = x[token, column] - mean
            squares += centered * centered
        inverse_std = 1.0 / np.sqrt(squares / width + eps)
        sum_g, sum_g_x_hat = 0.0, 0.0
        for column in range(width):
            x_hat = (x[token, column] - mean) * inverse_std
            g = d_out[token, column] * weight[column]
            sum_g += g
            sum_g_x_hat += g * x_hat
            d_weight[column] += d_out[token, column] * x_hat
            d_bias[column] += d_out[token, column]
        mean_g, mean_g_x_hat = sum_g / width, sum_g_x_hat / width
        for column in range(width):
            x_hat = (x[token, column] - mean) * inverse_std
            g = d_out[token, column] * weight[column]
            d_x[token, column] = inverse_std * (g - mean_g - x_hat * mean_g_x_hat)


def layer_norm_backward(d_out, x, weight, eps):
    """The fast twin of layer_norm_backward_reference (same arguments and results, in x's dtype). Bytes: d_out
    and x read twice each (the second time from L1), d_x written once; ~15 FLOPs an element."""
    if x.ndim != 2 or d_out.shape != x.shape or weight.shape != x.shape[1:]:
        raise ValueError(f"layer_norm_backward expects d_out and x (tokens, width) and weight (width,), got "
                         f"{d_out.shape}, {x.shape} and {weight.shape}")
    d_x = np.empty_like(x)
    d_weight, d_bias = np.zeros(x.shape[1]), np.zeros(x.shape[1])  # float64 sums
    _layer_norm_backward(np.ascontiguousarray(d_out, dtype=x.dtype), np.ascontiguousarray(x),
                         weight.astype(x.dtype, copy=False), float(eps), d_x, d_weight, d_bias)
    return d_x, d_weight.astype(x.dtype), d_bias.astype(x.dtype)
