"""The middle of a gated feed-forward block (GeGLU, SwiGLU): act(gate) * up in one pass, written into ``gate``,
for the activations today's models name: the exact GELU (ModernBERT), the tanh GELU (Gemma 3) and SiLU (Qwen3).

NumPy spends three to five passes over the (tokens, intermediate) matrices on it, and numba's scalar
math.erf / math.tanh / math.exp do not vectorize; here every activation is made of multiplies, adds, one divide
and a clamp, which LLVM turns into 16-lane AVX-512 code: kernels.activations' rational erf for the GELU, Eigen's
rational tanh for the tanh GELU, and SiLU as x * (1 + tanh(x / 2)) / 2 (the same sigmoid, through that tanh).
Per element: 8 bytes read, 4 written, ~30 FLOPs.

``gated_activation_reference`` is the plain formula (erf from math.erf, NumPy's tanh and exp).
"""

import numba
import numpy as np

from minisbert.kernels.activations import _fast_erf, gelu_reference, gelu_tanh_reference, odd_rational

_HALF, _ONE = np.float32(0.5), np.float32(1.0)
_SQRT_HALF = np.float32(0.7071067811865476)
_SQRT_TWO_OVER_PI = np.float32(0.7978845608028654)
_GELU_TANH_CUBIC = np.float32(0.044715)

# Eigen's float tanh (generic_fast_tanh_float): x * p(x^2) / q(x^2) on [-7.9053, 7.9053], where tanh is +-1 to
# float32 outside. Max abs error vs float64 tanh: 3.9e-7 (a few float32 ulp).
_TANH_CLAMP = np.float32(7.90531110763549805)
_TANH_NUMERATOR = tuple(
    np.float32(c)
    for c in (
        -2.76076847742355e-16,
        2.00018790482477e-13,
        -8.60467152213735e-11,
        5.12229709037114e-08,
        1.48572235717979e-05,
        6.37261928875436e-04,
        4.89352455891786e-03,
    )
)
_TANH_DENOMINATOR = tuple(
    np.float32(c) for c in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
)


@numba.njit(inline="always", error_model="numpy")
def _fast_tanh(x):
    return odd_rational(x, _TANH_CLAMP, _TANH_NUMERATOR, _TANH_DENOMINATOR)


# activation name (transformers' hidden_act) -> the kernel's code for it
ACTIVATION_CODES = {"gelu": 0, "gelu_new": 1, "gelu_pytorch_tanh": 1, "silu": 2, "swish": 2}


def silu_reference(x):
    return x / (1 + np.exp(-x))


REFERENCES = {0: gelu_reference, 1: gelu_tanh_reference, 2: silu_reference}


def gated_activation_reference(gate, up, name):
    """gate, up (..., features) -> act(gate) * up, act named as in config.json (ACTIVATION_CODES' keys)."""
    return (REFERENCES[ACTIVATION_CODES[name]](gate) * up).astype(gate.dtype)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _gated_activation(gate, gate_stride, up, up_stride, rows, features, code):
    # gate, up: flat float32 buffers holding ``rows`` rows of ``features`` contiguous values, each row
    # ``*_stride`` values after the one before (1-D contiguous slices, which LLVM vectorizes); gate <- act(gate) * up
    for row in range(rows):
        g = gate[row * gate_stride : row * gate_stride + features]
        u = up[row * up_stride : row * up_stride + features]
        if code == 0:
            for j in range(features):
                x = g[j]
                g[j] = _HALF * x * (_ONE + _fast_erf(x * _SQRT_HALF)) * u[j]
        elif code == 1:
            for j in range(features):
                x = g[j]
                g[j] = _HALF * x * (_ONE + _fast_tanh(_SQRT_TWO_OVER_PI * (x + _GELU_TANH_CUBIC * x * x * x))) * u[j]
        else:
            for j in range(features):
                x = g[j]
                g[j] = _HALF * x * (_ONE + _fast_tanh(_HALF * x)) * u[j]


def flat_rows(x):
    """x (..., features) whose rows may be strided (ModernBERT's halves of one matrix) but each contiguous
    -> a flat view from its first row to its last, the distance between rows in values, the row count."""
    rows = np.reshape(x, (-1, x.shape[-1]), copy=False)  # an error if the rows cannot be a view
    if rows.shape[1] > 1 and rows.strides[1] != x.itemsize or rows.strides[0] % x.itemsize:
        raise ValueError(f"gated_activation expects each row contiguous, got strides {x.strides}")
    stride = rows.strides[0] // x.itemsize
    size = (len(rows) - 1) * stride + rows.shape[1] if len(rows) else 0
    return np.lib.stride_tricks.as_strided(rows, shape=(size,), strides=(x.itemsize,)), stride, len(rows)


def gated_activation(gate, up, name):
    """act(gate) * up computed in place in ``gate`` (float32 (..., features), rows contiguous, possibly strided),
    returned; ``name`` one of ACTIVATION_CODES' keys."""
    if gate.shape != up.shape or gate.dtype != np.float32 or up.dtype != np.float32:
        raise ValueError(f"gated_activation expects two float32 arrays of one shape, got {gate.dtype} {gate.shape} "
                         f"and {up.dtype} {up.shape}")
    if name not in ACTIVATION_CODES:
        raise ValueError(f"gated_activation has no fast {name!r}; it has {sorted(ACTIVATION_CODES)}")
    (gate_flat, gate_stride, rows), (up_flat, up_stride, _) = flat_rows(gate), flat_rows(up)
    _gated_activation(gate_flat, gate_stride, up_flat, up_stride, rows, gate.shape[-1], ACTIVATION_CODES[name])
    return gate
