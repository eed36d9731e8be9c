"""Similarity functions between embeddings, as sentence_transformers.util names them: cos_sim, dot_score,
euclidean_sim, manhattan_sim, each (n, dim) x (m, dim) -> (n, m), and their pairwise_* forms, row i with row i
-> (n,); euclidean and manhattan are *negative* distances, so that for every function a larger score means more
similar. SIMILARITY_FUNCTIONS maps the names a model's config uses ("cosine", "dot", "euclidean", "manhattan") to
the two forms. normalize_embeddings scales rows to unit length (after it, dot_score equals cos_sim).

Each function is written here once and calls its kernel (minisbert.kernels.similarity: row normalisation and
the all-pairs distances) directly. Imports the kernels only.
"""

import numpy as np

from minisbert.kernels.similarity import (
    as_embedding_matrix,
    negative_euclidean_distance,
    negative_manhattan_distance,
    normalize_rows,
)

__all__ = [
    "cos_sim",
    "dot_score",
    "euclidean_sim",
    "manhattan_sim",
    "pairwise_cos_sim",
    "pairwise_dot_score",
    "pairwise_euclidean_sim",
    "pairwise_manhattan_sim",
    "normalize_embeddings",
    "SIMILARITY_FUNCTIONS",
    "similarity_function_name",
]


def embedding_pair(a, b):
    """a (n, dim), b (m, dim) as contiguous arrays of one float dtype, or an error naming what does not fit."""
    a = as_embedding_matrix(a, "a")
    b = as_embedding_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding dimensions differ: a has {a.shape[1]}, b has {b.shape[1]}")
    dtype = np.result_type(a.dtype, b.dtype)
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


def same_shape_pair(a, b):
    """embedding_pair for the pairwise forms: a and b (n, dim) of the same shape."""
    a, b = embedding_pair(a, b)
    if a.shape != b.shape:
        raise ValueError(f"pairwise similarity needs a and b of the same shape, got {a.shape} and {b.shape}")
    return a, b


def cos_sim(a, b):
    """Cosine similarity of every row of a with every row of b: (n, dim), (m, dim) -> (n, m)."""
    a, b = embedding_pair(a, b)
    return normalize_rows(a) @ normalize_rows(b).T


def dot_score(a, b):
    """Dot product of every row of a with every row of b: (n, m)."""
    a, b = embedding_pair(a, b)
    return a @ b.T


def euclidean_sim(a, b):
    """Negative euclidean distance (larger is more similar): (n, m)."""
    return negative_euclidean_distance(*embedding_pair(a, b))


def manhattan_sim(a, b):
    """Negative manhattan (L1) distance (larger is more similar): (n, m)."""
    return negative_manhattan_distance(*embedding_pair(a, b))


def pairwise_cos_sim(a, b):
    """Cosine similarity of row i of a with row i of b: (n, dim), (n, dim) -> (n,)."""
    a, b = same_shape_pair(a, b)
    return (normalize_rows(a) * normalize_rows(b)).sum(axis=-1)


def pairwise_dot_score(a, b):
    """Dot product of row i of a with row i of b: (n,)."""
    a, b = same_shape_pair(a, b)
    return (a * b).sum(axis=-1)


def pairwise_euclidean_sim(a, b):
    """Negative euclidean distance of row i of a to row i of b: (n,)."""
    a, b = same_shape_pair(a, b)
    return -np.sqrt(((a - b) ** 2).sum(axis=-1))


def pairwise_manhattan_sim(a, b):
    """Negative manhattan (L1) distance of row i of a to row i of b: (n,)."""
    a, b = same_shape_pair(a, b)
    return -np.abs(a - b).sum(axis=-1)


def normalize_embeddings(embeddings):
    """Rows scaled to unit L2 norm (a zero row stays zero): (n, dim) -> (n, dim), (dim,) -> (dim,)."""
    normalized = normalize_rows(embeddings)
    return normalized[0] if np.ndim(embeddings) == 1 else normalized


SIMILARITY_FUNCTIONS = {
    "cosine": (cos_sim, pairwise_cos_sim),
    "dot": (dot_score, pairwise_dot_score),
    "euclidean": (euclidean_sim, pairwise_euclidean_sim),
    "manhattan": (manhattan_sim, pairwise_manhattan_sim),
}
# sentence-transformers accepts these spellings too.
SIMILARITY_ALIASES = {"cos_sim": "cosine", "dot_score": "dot", "dot_product": "dot"}


def similarity_function_name(name):
    """The canonical name of a similarity function, or a ValueError listing the valid ones."""
    name = SIMILARITY_ALIASES.get(name, name)
    if name not in SIMILARITY_FUNCTIONS:
        raise ValueError(f"unknown similarity function {name!r}; choose one of {sorted(SIMILARITY_FUNCTIONS)}")
    return name
