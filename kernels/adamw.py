"""One AdamW update of one parameter array, in place, with torch.optim.AdamW's arithmetic: the NumPy reference
(eight array passes, each with a temporary as large as the parameter) and a numba kernel that reads and writes
each element once, split over the cores for large arrays. The trainer's optimizer step is mostly the word
embedding table (30,522 x 384 floats for MiniLM), so this pass is memory-bound: bytes moved per element are
4 arrays read + 3 written, 28 bytes in float32, against 8 x 3 x 4 = 96 for the reference's passes.
"""

import numba
import numpy as np

from minisbert.runtime.threads import split_rows


def adamw_update_reference(param, grad, m, v, decay_factor, beta1, beta2, step_size, correction2_sqrt, eps):
    """param, grad, m, v: arrays of one shape and dtype (param, m, v updated in place). decay_factor
    = 1 - lr * weight_decay (1 for no decay); step_size = lr / (1 - beta1^step); correction2_sqrt =
    sqrt(1 - beta2^step). As torch's single-tensor AdamW: decay, lerp of m, v * beta2 + g * g * (1 - beta2),
    param -= step_size * m / (sqrt(v) / correction2_sqrt + eps)."""
    dtype = param.dtype.type
    if decay_factor != 1:
        param *= dtype(decay_factor)
    m += (grad - m) * dtype(1 - beta1)
    v *= dtype(beta2)
    v += grad * grad * dtype(1 - beta2)
    denominator = np.sqrt(v) / dtype(correction2_sqrt) + dtype(eps)
    param -= dtype(step_size) * m / denominator


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _adamw_update(param, grad, m, v, start, stop, decay_factor, one_minus_beta1, beta2, one_minus_beta2, step_size,
                  correction2_sqrt, eps):
    # flat arrays; elements [start, stop); every scalar has the arrays' dtype, so float32 stays float32 and each
    # element sees the reference's operations in the reference's order
    for i in range(start, stop):
        g = grad[i]
        p = param[i] * decay_factor
        mi = m[i] + (g - m[i]) * one_minus_beta1
        vi = v[i] * beta2 + g * g * one_minus_beta2
        m[i] = mi
        v[i] = vi
        param[i] = p - step_size * mi / (np.sqrt(vi) / correction2_sqrt + eps)


def adamw_update(param, grad, m, v, decay_factor, beta1, beta2, step_size, correction2_sqrt, eps):
    """The fast twin of adamw_update_reference (same arguments; param, grad, m, v C-contiguous)."""
    for name, array in (("param", param), ("grad", grad), ("m", m), ("v", v)):
        if not array.flags.c_contiguous or array.shape != param.shape or array.dtype != param.dtype:
            raise ValueError(f"adamw_update: {name} must be C-contiguous with param's shape and dtype")
    dtype = param.dtype.type
    flat = [array.reshape(-1) for array in (param, grad, m, v)]
    scalars = [dtype(value) for value in (decay_factor, 1 - beta1, beta2, 1 - beta2, step_size, correction2_sqrt, eps)]
    split_rows(param.size, lambda part: _adamw_update(*flat, part.start, part.stop, *scalars))
