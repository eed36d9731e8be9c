"""minisbert.util's similarity functions (util/similarity.py) against sentence-transformers' util functions: at
embedding size, and on odd inputs (one row, zero rows, non-contiguous, float64, a zero vector); normalize_embeddings;
and the errors that name a bad argument. The kernels they call against their NumPy references: test_kernels.py."""

import numpy as np
import pytest
import torch
from sentence_transformers import util as reference_util

from minisbert import util
from test_kernels import ODD_EMBEDDINGS

RNG = np.random.default_rng(0)
MATRIX_FUNCTIONS = ["cos_sim", "dot_score", "euclidean_sim", "manhattan_sim"]
PAIRWISE_FUNCTIONS = ["pairwise_cos_sim", "pairwise_dot_score", "pairwise_euclidean_sim", "pairwise_manhattan_sim"]


def random_matrix(rows, dim=16, dtype=np.float32):
    return RNG.standard_normal((rows, dim)).astype(dtype)


def reference(name, a, b):
    """sentence_transformers.util.<name> on copies of a and b (torch takes no negative strides)."""
    return getattr(reference_util, name)(torch.from_numpy(a.copy()), torch.from_numpy(b.copy())).numpy()


def tolerance(name):
    # torch.cdist computes euclidean distances through a matrix product (|a|^2 + |b|^2 - 2ab), which loses
    # about 1e-5 relative on distances ~27; our kernel sums squared differences directly.
    return 1e-4 if "euclidean" in name else 1e-5


@pytest.mark.parametrize("name", MATRIX_FUNCTIONS + PAIRWISE_FUNCTIONS)
def test_util_function_matches_sentence_transformers(name):
    a, b = random_matrix(6, 384), random_matrix(6, 384)
    np.testing.assert_allclose(getattr(util, name)(a, b), reference(name, a, b), rtol=2e-6, atol=tolerance(name))


@pytest.mark.parametrize("case", ODD_EMBEDDINGS)
@pytest.mark.parametrize("name", MATRIX_FUNCTIONS)
def test_util_function_on_odd_inputs(name, case):
    a, b = ODD_EMBEDDINGS[case](np.random.default_rng(0))
    actual = getattr(util, name)(a, b)
    assert actual.shape == (a.shape[0], b.shape[0])
    assert actual.dtype == a.dtype
    np.testing.assert_allclose(actual, reference(name, a, b), rtol=1e-5, atol=tolerance(name))


@pytest.mark.parametrize("case", ODD_EMBEDDINGS)
@pytest.mark.parametrize("name", PAIRWISE_FUNCTIONS)
def test_pairwise_function_on_odd_inputs(name, case):
    a, _ = ODD_EMBEDDINGS[case](np.random.default_rng(0))
    b = RNG.standard_normal(a.shape).astype(a.dtype)
    actual = getattr(util, name)(a, b)
    assert actual.shape == (a.shape[0],) and actual.dtype == a.dtype
    np.testing.assert_allclose(actual, reference(name, a, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(7, 24), (24,), (3, 5)])
def test_normalize_embeddings_matches_sentence_transformers(shape):
    embeddings = RNG.standard_normal(shape).astype(np.float32)
    if len(shape) == 2:
        embeddings[0] = 0.0  # a zero row stays zero
    expected = reference_util.normalize_embeddings(torch.from_numpy(embeddings)).numpy()
    actual = util.normalize_embeddings(embeddings)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)


def test_similarity_of_a_single_vector_is_a_one_by_m_matrix():
    assert util.cos_sim(random_matrix(1)[0], random_matrix(4)).shape == (1, 4)


def test_similarity_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="dimensions differ"):
        util.cos_sim(random_matrix(2, 8), random_matrix(2, 9))


def test_pairwise_similarity_rejects_different_row_counts():
    with pytest.raises(ValueError, match="same shape"):
        util.pairwise_cos_sim(random_matrix(2), random_matrix(3))


def test_similarity_rejects_non_numbers():
    with pytest.raises(TypeError, match="numbers"):
        util.cos_sim([["a", "b"]], [["c", "d"]])
