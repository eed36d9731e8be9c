"""Activation functions the models name in their configs, as numba ufuncs over float32 (and float64) arrays;
bias_gelu, the fast encoder's bias + exact GELU in one pass; and bias_gelu_with_derivative, training's bias +
exact GELU that also writes GELU's derivative for the backward pass.

NumPy has no erf, so the exact GELU of BERT (0.5 x (1 + erf(x / sqrt 2))) is a numba vectorized function.
Each kernel has a ``*_reference`` beside it, the plain formula (erf from Python's math.erf, one element at a
time), which tests/test_kernels_activations.py compares it with.
"""

import math

import numba
import numpy as np

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_SQRT_TWO_OVER_PI = math.sqrt(2.0 / math.pi)
_HALF, _ONE = np.float32(0.5), np.float32(1.0)
_SQRT_HALF_32, _SQRT_TWO_OVER_PI_32 = np.float32(_SQRT_HALF), np.float32(_SQRT_TWO_OVER_PI)
_GELU_TANH_CUBIC = np.float32(0.044715)


def gelu_reference(x):
    erf = np.frompyfunc(math.erf, 1, 1)
    return (0.5 * x * (1.0 + erf(x * _SQRT_HALF).astype(np.float64))).astype(x.dtype)


# gelu and gelu_tanh run wherever an activation is applied element by element (architectures.layers.ACTIVATIONS):
# the reference encoder and training, ModernBERT's, Gemma 3's and T5's layers on both their paths, the fast
# encoder's tanh GELU, classification heads and Dense modules. The fast encoder's exact GELU is bias_gelu below.
# Both loops are compiled (or loaded from numba's cache) at import: a lazily compiled ufunc first called on
# float64 would serve float32 input with its float64 loop (safe casting) and return float64. The constants
# are float32 so that a float32 array stays float32 (a Python float would make it float64); float64 arrays
# get float32-accurate constants.
@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def gelu(x):
    return _HALF * x * (_ONE + math.erf(x * _SQRT_HALF_32))


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def gelu_tanh(x):
    return _HALF * x * (_ONE + math.tanh(_SQRT_TWO_OVER_PI_32 * (x + _GELU_TANH_CUBIC * x * x * x)))


def gelu_tanh_reference(x):
    return 0.5 * x * (1.0 + np.tanh(_SQRT_TWO_OVER_PI * (x + 0.044715 * x**3)))


# A float32-accurate erf made of multiplies, adds and one divide, so that numba vectorizes it (math.erf is a
# scalar libm call): Eigen's rational approximation x * p(x^2) / q(x^2) on [-4, 4], where erf is +-1 to
# float32 outside. Max abs error vs math.erf: 4.5e-7 (a few float32 ulp near +-1).
_ERF_NUMERATOR = tuple(
    np.float32(c)
    for c in (
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    )
)
_ERF_DENOMINATOR = tuple(
    np.float32(c)
    for c in (
        -1.45660718464996e-05,
        -2.13374055278905e-04,
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    )
)
_FOUR = np.float32(4.0)


@numba.njit(inline="always", error_model="numpy")
def odd_rational(x, clamp, numerator_coefficients, denominator_coefficients):
    # x clamped to [-clamp, clamp] -> x * p(x^2) / q(x^2), each polynomial's coefficients highest power first
    # (multiplies, adds and one divide: LLVM vectorizes it, as it does not a libm call)
    x = min(max(x, -clamp), clamp)
    x2 = x * x
    numerator = numerator_coefficients[0]
    for coefficient in numerator_coefficients[1:]:
        numerator = numerator * x2 + coefficient
    denominator = denominator_coefficients[0]
    for coefficient in denominator_coefficients[1:]:
        denominator = denominator * x2 + coefficient
    return x * numerator / denominator


@numba.njit(inline="always", error_model="numpy")
def _fast_erf(x):
    return odd_rational(x, _FOUR, _ERF_NUMERATOR, _ERF_DENOMINATOR)


def bias_gelu_reference(x, bias):
    """GELU(x + bias) with the exact erf: x (features, tokens), one token per column, bias (features,), one per
    row -> (features, tokens)."""
    return gelu_reference(x + bias[:, None])


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _bias_gelu(x, bias):
    features, tokens = x.shape
    for feature in range(features):
        for token in range(tokens):
            value = x[feature, token] + bias[feature]
            x[feature, token] = _HALF * value * (_ONE + _fast_erf(value * _SQRT_HALF_32))


def bias_gelu(x, bias):
    """GELU(x + bias), computed in place in x: x (features, tokens) float32/float64, bias (features,) -> x.

    The feed-forward block's first linear layer ends here; fusing its bias into the activation reads and
    writes the (intermediate, tokens) matrix once instead of three times.
    """
    if x.ndim != 2 or bias.shape != x.shape[:1]:
        raise ValueError(f"bias_gelu expects x (features, tokens) and bias (features,), got {x.shape} and {bias.shape}")
    _bias_gelu(x, bias.astype(x.dtype, copy=False))
    return x


# GELU's derivative needs the normal density exp(-x^2 / 2) too; math.exp is a scalar libm call as math.erf is,
# so exp(t) for t <= 0 is 2^k exp(r) with k = round(t / ln 2) and r = t - k ln 2 in [-ln 2 / 2, ln 2 / 2]: a
# degree-7 Taylor polynomial there (truncation 5e-9 relative), 2^-k an integer shift. ln 2 in two parts (Cody
# and Waite) so that k ln 2 is exact to float32. Max relative error vs math.exp on [-18, 0]: 2.5e-7.
_LOG2_E = np.float32(1.0 / math.log(2.0))
_LN2_HIGH, _LN2_LOW = np.float32(0.693359375), np.float32(math.log(2.0) - 0.693359375)
_EXP_TAYLOR = tuple(np.float32(1.0 / math.factorial(n)) for n in range(7, -1, -1))
_SIX, _INV_SQRT_TWO_PI_32 = np.float32(6.0), np.float32(1.0 / math.sqrt(2.0 * math.pi))


@numba.njit(inline="always", error_model="numpy")
def _fast_exp_of_non_positive(t):
    # t in [-18, 0] float32 -> exp(t)
    k = np.floor(t * _LOG2_E + _HALF)  # in [-26, 0]
    r = (t - k * _LN2_HIGH) - k * _LN2_LOW
    value = _EXP_TAYLOR[0]
    for coefficient in _EXP_TAYLOR[1:]:
        value = value * r + coefficient
    return value / np.float32(1 << np.int32(-k))


def bias_gelu_with_derivative_reference(x, bias):
    """x (tokens, features), bias (features,) -> GELU(x + bias), GELU'(x + bias) = Phi + (x + bias) phi, each
    (tokens, features), with Python's math.erf and math.exp one element at a time (float64), rounded to x's dtype."""
    erf = np.frompyfunc(math.erf, 1, 1)
    value = (x + bias).astype(np.float64)
    cdf = 0.5 * (1.0 + erf(value * _SQRT_HALF).astype(np.float64))
    density = np.exp(-0.5 * value * value) / math.sqrt(2.0 * math.pi)
    return (value * cdf).astype(x.dtype), (cdf + value * density).astype(x.dtype)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _bias_gelu_with_derivative(x, bias, derivative):
    # x (tokens, features); float32 throughout so that the inner loop vectorizes
    tokens, features = x.shape
    for token in range(tokens):
        for feature in range(features):
            value = x[token, feature] + bias[feature]
            cdf = _HALF * (_ONE + _fast_erf(value * _SQRT_HALF_32))
            # beyond |value| = 6, value * phi(value) < 4e-8: the density is taken at the clamped value
            clamped = min(max(value, -_SIX), _SIX)
            density = _fast_exp_of_non_positive(-_HALF * clamped * clamped) * _INV_SQRT_TWO_PI_32
            x[token, feature] = value * cdf
            derivative[token, feature] = cdf + value * density


def bias_gelu_with_derivative(x, bias):
    """x (tokens, features) float32 C-contiguous, the feed-forward block's first linear layer before its bias;
    bias (features,) -> x holding GELU(x + bias) (in place), and GELU'(x + bias) (tokens, features), which the
    backward pass multiplies its gradient by. One pass over x: reads 4 bytes and writes 8 per element, ~60
    float32 operations (erf's rational function, exp's polynomial). In the calling thread: it runs right after
    an sgemm, whose OpenBLAS workers spin on the other core for a while (split over both cores it took 8 ms
    instead of 2.9 for 1,800 x 1,536 after one).

    Float32 only: its erf and exp are accurate to float32 (4.5e-7 and 2.5e-7), not to float64."""
    if x.dtype != np.float32 or x.ndim != 2 or not x.flags.c_contiguous or bias.shape != x.shape[1:]:
        raise ValueError(f"bias_gelu_with_derivative expects x (tokens, features) C-contiguous float32 and bias "
                         f"(features,), got {x.dtype} {x.shape} and {bias.shape}")
    bias = bias.astype(np.float32, copy=False)
    derivative = np.empty_like(x)
    _bias_gelu_with_derivative(x, bias, derivative)
    return x, derivative
