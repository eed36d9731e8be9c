"""Similarity functions between embeddings, named as in sentence-transformers ("cosine", "dot",
"euclidean", "manhattan"), each in a matrix form (n, dim) x (m, dim) -> (n, m) and a pairwise form -> (n,).
The arithmetic is in the kernels (minisbert.kernels.similarity); this module is the public face.
"""

from minisbert.kernels import similarity as kernels


def cos_sim(a, b):
    """Cosine similarity of every row of a with every row of b: (n, dim), (m, dim) -> (n, m)."""
    return kernels.cosine_similarity(a, b)


def dot_score(a, b):
    """Dot product of every row of a with every row of b: (n, m)."""
    return kernels.dot_product(a, b)


def euclidean_sim(a, b):
    """Negative euclidean distance (larger is more similar): (n, m)."""
    return kernels.negative_euclidean_distance(a, b)


def manhattan_sim(a, b):
    """Negative manhattan (L1) distance (larger is more similar): (n, m)."""
    return kernels.negative_manhattan_distance(a, b)


def pairwise_cos_sim(a, b):
    """Cosine similarity of row i of a with row i of b: (n, dim), (n, dim) -> (n,)."""
    return kernels.pairwise_cosine_similarity(a, b)


def pairwise_dot_score(a, b):
    return kernels.pairwise_dot_product(a, b)


def pairwise_euclidean_sim(a, b):
    return kernels.pairwise_negative_euclidean_distance(a, b)


def pairwise_manhattan_sim(a, b):
    return kernels.pairwise_negative_manhattan_distance(a, b)


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
