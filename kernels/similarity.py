"""Batched similarity kernels between two sets of embeddings a (n, dim) and b (m, dim) -> (n, m).

sentence-transformers' conventions: cosine and dot product are similarities; euclidean and manhattan are
*negative* distances, so that for every function a larger score means more similar. The ``pairwise_*``
versions compare row i of a with row i of b -> (n,).
"""

import numba
import numpy as np

from minisbert.runtime.threads import split_rows

NORM_EPSILON = 1e-12  # torch.nn.functional.normalize's default eps


def normalize_rows_reference(x):
    """Rows scaled to unit L2 norm, a zero row stays zero: (n, dim) -> (n, dim)."""
    norms = np.sqrt((x * x).sum(axis=1, keepdims=True))  # (n, 1)
    return x / np.maximum(norms, NORM_EPSILON)


def cosine_similarity_reference(a, b):
    return normalize_rows_reference(a) @ normalize_rows_reference(b).T


def dot_product_reference(a, b):
    return a @ b.T


def negative_euclidean_distance_reference(a, b):
    differences = a[:, None, :] - b[None, :, :]  # (n, m, dim)
    return -np.sqrt((differences * differences).sum(axis=-1))


def negative_manhattan_distance_reference(a, b):
    return -np.abs(a[:, None, :] - b[None, :, :]).sum(axis=-1)


# Serial: it runs right after OpenBLAS matmuls in encode, and numba's OpenMP threads would spin against
# OpenBLAS's for the two cores (a 9 ms stall per call where the work takes 0.03 ms; see bench/RESULTS.md).
@numba.njit(cache=True)
def _normalize_rows(x, out):
    for i in range(x.shape[0]):
        squared = 0.0
        for d in range(x.shape[1]):
            squared += x[i, d] * x[i, d]
        scale = 1.0 / max(np.sqrt(squared), NORM_EPSILON)
        for d in range(x.shape[1]):
            out[i, d] = x[i, d] * scale


@numba.njit(nogil=True, cache=True)
def _negative_euclidean(a, b, out):
    # a (n, dim), b (m, dim) -> out (n, m); the rows of a are split over threads by the caller
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            squared = 0.0
            for d in range(a.shape[1]):
                difference = a[i, d] - b[j, d]
                squared += difference * difference
            out[i, j] = -np.sqrt(squared)


@numba.njit(nogil=True, cache=True)
def _negative_manhattan(a, b, out):
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            total = 0.0
            for d in range(a.shape[1]):
                total += abs(a[i, d] - b[j, d])
            out[i, j] = -total


def as_embedding_matrix(x, name="embeddings"):
    """A contiguous float32/float64 (n, dim) array from an array, a list of vectors or one vector (1, dim)."""
    try:
        array = np.asarray(x)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular (n, dim) array of numbers: {error}") from None
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got an array of dtype {array.dtype}")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a vector (dim,) or a matrix (n, dim), got shape {array.shape}")
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)


def _pair(a, b):
    a = as_embedding_matrix(a, "a")
    b = as_embedding_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding dimensions differ: a has {a.shape[1]}, b has {b.shape[1]}")
    dtype = np.result_type(a.dtype, b.dtype)
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


def normalize_rows(x):
    x = as_embedding_matrix(x)
    out = np.empty_like(x)
    _normalize_rows(x, out)
    return out


def cosine_similarity(a, b):
    a, b = _pair(a, b)
    return normalize_rows(a) @ normalize_rows(b).T


def dot_product(a, b):
    a, b = _pair(a, b)
    return a @ b.T


def negative_euclidean_distance(a, b):
    a, b = _pair(a, b)
    out = np.empty((a.shape[0], b.shape[0]), dtype=a.dtype)
    split_rows(len(a), lambda part: _negative_euclidean(a[part], b, out[part]), work_per_row=b.size)
    return out


def negative_manhattan_distance(a, b):
    a, b = _pair(a, b)
    out = np.empty((a.shape[0], b.shape[0]), dtype=a.dtype)
    split_rows(len(a), lambda part: _negative_manhattan(a[part], b, out[part]), work_per_row=b.size)
    return out


def _same_shape_pair(a, b):
    a, b = _pair(a, b)
    if a.shape != b.shape:
        raise ValueError(f"pairwise similarity needs a and b of the same shape, got {a.shape} and {b.shape}")
    return a, b


def pairwise_cosine_similarity(a, b):
    a, b = _same_shape_pair(a, b)
    return (normalize_rows(a) * normalize_rows(b)).sum(axis=-1)


def pairwise_dot_product(a, b):
    a, b = _same_shape_pair(a, b)
    return (a * b).sum(axis=-1)


def pairwise_negative_euclidean_distance(a, b):
    a, b = _same_shape_pair(a, b)
    return -np.sqrt(((a - b) ** 2).sum(axis=-1))


def pairwise_negative_manhattan_distance(a, b):
    a, b = _same_shape_pair(a, b)
    return -np.abs(a - b).sum(axis=-1)
