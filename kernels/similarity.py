"""Similarity kernels over sets of embeddings: rows scaled to unit L2 norm (cosine similarity's first step, and
the Normalize module's), and the negative euclidean and manhattan distances between every row of a (n, dim) and
every row of b (m, dim) -> (n, m), negative so that larger means more similar, as sentence-transformers scores
them. Cosine and dot product need no kernel beyond the normalisation: they are one BLAS product, written in
minisbert.util.similarity, the public functions that call these kernels.
"""

import numba
import numpy as np

from minisbert.runtime.threads import split_rows

NORM_EPSILON = 1e-12  # torch.nn.functional.normalize's default eps


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


# --- row normalisation -----------------------------------------------------------------------------------------


def normalize_rows_reference(x):
    """Rows scaled to unit L2 norm, a zero row stays zero: (n, dim) -> (n, dim)."""
    norms = np.sqrt((x * x).sum(axis=1, keepdims=True))  # (n, 1)
    return x / np.maximum(norms, NORM_EPSILON)


# Serial: it runs right after OpenBLAS matmuls in encode, where numba's OpenMP threads would spin against
# OpenBLAS's for the cores (bench/RESULTS.md, "What the fast path does, and why": Threads).
@numba.njit(cache=True)
def _normalize_rows(x, out):
    for i in range(x.shape[0]):
        squared = 0.0
        for d in range(x.shape[1]):
            squared += x[i, d] * x[i, d]
        scale = 1.0 / max(np.sqrt(squared), NORM_EPSILON)
        for d in range(x.shape[1]):
            out[i, d] = x[i, d] * scale


def normalize_rows(x):
    """The numba version of normalize_rows_reference, on anything as_embedding_matrix takes -> (n, dim)."""
    x = as_embedding_matrix(x)
    out = np.empty_like(x)
    _normalize_rows(x, out)
    return out


# --- distances between every pair of rows ----------------------------------------------------------------------


def negative_euclidean_distance_reference(a, b):
    differences = a[:, None, :] - b[None, :, :]  # (n, m, dim)
    return -np.sqrt((differences * differences).sum(axis=-1))


def negative_manhattan_distance_reference(a, b):
    return -np.abs(a[:, None, :] - b[None, :, :]).sum(axis=-1)


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


def negative_euclidean_distance(a, b):
    """The numba version of negative_euclidean_distance_reference: a (n, dim), b (m, dim) of one float dtype
    -> (n, m) in that dtype, the rows of a split over threads."""
    out = np.empty((a.shape[0], b.shape[0]), dtype=a.dtype)
    split_rows(len(a), lambda part: _negative_euclidean(a[part], b, out[part]), work_per_row=b.size)
    return out


def negative_manhattan_distance(a, b):
    """The numba version of negative_manhattan_distance_reference: (n, dim), (m, dim) -> (n, m)."""
    out = np.empty((a.shape[0], b.shape[0]), dtype=a.dtype)
    split_rows(len(a), lambda part: _negative_manhattan(a[part], b, out[part]), work_per_row=b.size)
    return out
