"""Activation functions the models name in their configs, as numba ufuncs over float32 arrays.

NumPy has no erf, so the exact GELU of BERT (0.5 x (1 + erf(x / sqrt 2))) is a numba vectorized function;
the reference evaluates it with Python's math.erf, one element at a time.
"""

import math

import numba
import numpy as np

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_SQRT_TWO_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_reference(x):
    erf = np.frompyfunc(math.erf, 1, 1)
    return (0.5 * x * (1.0 + erf(x * _SQRT_HALF).astype(np.float64))).astype(x.dtype)


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def gelu(x):
    return 0.5 * x * (1.0 + math.erf(x * _SQRT_HALF))


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def gelu_tanh(x):
    return 0.5 * x * (1.0 + math.tanh(_SQRT_TWO_OVER_PI * (x + 0.044715 * x * x * x)))


def gelu_tanh_reference(x):
    return 0.5 * x * (1.0 + np.tanh(_SQRT_TWO_OVER_PI * (x + 0.044715 * x**3)))
