"""One AdamW update of one parameter array, in place, with torch.optim.AdamW's arithmetic: the NumPy reference
(eight array passes, each with a temporary as large as the parameter) and a numba kernel that reads and writes
each element once, split over the cores for large arrays. The trainer's optimizer step is mostly the word
embedding table (30,522 x 384 floats for MiniLM), so this pass is memory-bound: bytes moved per element are
4 arrays read + 3 written, 28 bytes in float32, against 8 x 3 x 4 = 96 for the reference's passes.

A row whose gradient has always been zero (a token no batch has held yet) has m = v = 0, and AdamW without
weight decay leaves it as it is (p - step_size * 0 / eps): the update can take only the rows that have had a
gradient (``rows``), which ``rows_with_gradient`` keeps track of. It changes no number.
"""

import math

import numba
import numpy as np

from minisbert.runtime.threads import split_rows


def adamw_update_reference(param, grad, m, v, decay_factor, beta1, beta2, step_size, correction2_sqrt, eps,
                           rows=None, grad_scale=1.0):
    """param, grad, m, v: arrays of one shape and dtype (param, m, v updated in place). decay_factor
    = 1 - lr * weight_decay (1 for no decay); step_size = lr / (1 - beta1^step); correction2_sqrt =
    sqrt(1 - beta2^step). As torch's single-tensor AdamW: decay, lerp of m, v * beta2 + g * g * (1 - beta2),
    param -= step_size * m / (sqrt(v) / correction2_sqrt + eps). rows (int indices along the first axis): only
    those rows are updated (all when None). grad_scale: the gradient is grad * grad_scale (gradient clipping's
    factor, which torch multiplies into the gradients in place before the update)."""
    if rows is not None:
        parts = [array[rows] for array in (param, grad, m, v)]
        adamw_update_reference(*parts, decay_factor, beta1, beta2, step_size, correction2_sqrt, eps,
                               grad_scale=grad_scale)
        param[rows], m[rows], v[rows] = parts[0], parts[2], parts[3]
        return
    dtype = param.dtype.type
    grad = grad * dtype(grad_scale)
    if decay_factor != 1:
        param *= dtype(decay_factor)
    m += (grad - m) * dtype(1 - beta1)
    v *= dtype(beta2)
    v += grad * grad * dtype(1 - beta2)
    denominator = np.sqrt(v) / dtype(correction2_sqrt) + dtype(eps)
    param -= dtype(step_size) * m / denominator


@numba.njit(inline="always", error_model="numpy")
def _updated(param, grad, m, v, scalars):
    # one element -> its new (param, m, v); every scalar has the arrays' dtype, so float32 stays float32 and each
    # element sees the reference's operations in the reference's order
    grad_scale, decay_factor, one_minus_beta1, beta2, one_minus_beta2, step_size, correction2_sqrt, eps = scalars
    grad = grad * grad_scale
    m = m + (grad - m) * one_minus_beta1
    v = v * beta2 + grad * grad * one_minus_beta2
    return param * decay_factor - step_size * m / (np.sqrt(v) / correction2_sqrt + eps), m, v


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _adamw_update(param, grad, m, v, start, stop, scalars):
    # flat arrays; elements [start, stop)
    for i in range(start, stop):
        param[i], m[i], v[i] = _updated(param[i], grad[i], m[i], v[i], scalars)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _adamw_update_rows(param, grad, m, v, rows, start, stop, scalars):
    # (rows, width) arrays; the rows listed in rows[start:stop]
    for row in rows[start:stop]:
        for i in range(param.shape[1]):
            param[row, i], m[row, i], v[row, i] = _updated(param[row, i], grad[row, i], m[row, i], v[row, i], scalars)


def adamw_update(param, grad, m, v, decay_factor, beta1, beta2, step_size, correction2_sqrt, eps, rows=None,
                 grad_scale=1.0):
    """The fast twin of adamw_update_reference (same arguments; param, grad, m, v C-contiguous)."""
    for name, array in (("param", param), ("grad", grad), ("m", m), ("v", v)):
        if not array.flags.c_contiguous or array.shape != param.shape or array.dtype != param.dtype:
            raise ValueError(f"adamw_update: {name} must be C-contiguous with param's shape and dtype")
    dtype = param.dtype.type
    scalars = tuple(dtype(value) for value in
                    (grad_scale, decay_factor, 1 - beta1, beta2, 1 - beta2, step_size, correction2_sqrt, eps))
    if rows is None:
        flat = [array.reshape(-1) for array in (param, grad, m, v)]
        split_rows(param.size, lambda part: _adamw_update(*flat, part.start, part.stop, scalars))
        return
    tables = [array.reshape(len(param), math.prod(param.shape[1:])) for array in (param, grad, m, v)]
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(param)):
        raise ValueError(f"adamw_update: rows must be indices of param's {len(param)} rows")
    split_rows(len(rows), lambda part: _adamw_update_rows(*tables, rows, part.start, part.stop, scalars),
               work_per_row=tables[0].shape[1])


def rows_with_gradient_reference(grad, seen):
    """seen (rows,) bool, in place: True for every row of grad (rows, ...) holding a non-zero value."""
    seen |= (grad.reshape(len(seen), math.prod(grad.shape[1:])) != 0).any(axis=1)


@numba.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _rows_with_gradient(grad, seen):
    for row in range(len(seen)):
        if not seen[row]:  # a row seen once stays seen: it is not read again
            magnitude = np.float32(0.0)  # a sum of absolute values: zero only when every value is (vectorized)
            for value in grad[row]:
                magnitude += abs(value)
            seen[row] = magnitude != 0


def rows_with_gradient(grad, seen):
    """The fast twin of rows_with_gradient_reference: rows already seen are not read."""
    if len(grad) != len(seen) or seen.dtype != np.bool_:
        raise ValueError(f"rows_with_gradient: seen must be bool with one entry per row of grad {grad.shape}")
    _rows_with_gradient(np.ascontiguousarray(grad).reshape(len(seen), math.prod(grad.shape[1:])), seen)
