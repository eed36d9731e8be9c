"""The pooling and similarity kernels agree with their NumPy references, and with sentence-transformers'
util functions, on ordinary and odd shapes (one row, zero rows, non-contiguous, float64)."""

import numpy as np
import pytest
import torch
from sentence_transformers import util as reference_util

from minisbert import util
from minisbert.kernels import pooling, similarity

RNG = np.random.default_rng(0)


def random_matrix(rows, dim=16, dtype=np.float32):
    return RNG.standard_normal((rows, dim)).astype(dtype)


def odd_inputs():
    yield "ordinary", random_matrix(5), random_matrix(7)
    yield "one row", random_matrix(1), random_matrix(1)
    yield "zero rows", random_matrix(0), random_matrix(3)
    yield "non-contiguous", random_matrix(6, 32)[:, ::2], random_matrix(4, 32)[::-1, 1::2]
    yield "float64", random_matrix(3, dtype=np.float64), random_matrix(2, dtype=np.float64)
    yield "zero vector", np.zeros((2, 16), np.float32), random_matrix(2)


MATRIX_KERNELS = [
    (similarity.cosine_similarity, similarity.cosine_similarity_reference),
    (similarity.dot_product, similarity.dot_product_reference),
    (similarity.negative_euclidean_distance, similarity.negative_euclidean_distance_reference),
    (similarity.negative_manhattan_distance, similarity.negative_manhattan_distance_reference),
]


@pytest.mark.parametrize("kernel, reference", MATRIX_KERNELS, ids=lambda f: getattr(f, "__name__", ""))
@pytest.mark.parametrize("case", list(odd_inputs()), ids=lambda case: case[0])
def test_similarity_kernel_agrees_with_reference(kernel, reference, case):
    _, a, b = case
    actual = kernel(a, b)
    expected = reference(a.astype(actual.dtype), b.astype(actual.dtype))
    assert actual.shape == (a.shape[0], b.shape[0])
    assert actual.dtype == a.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


UTIL_PAIRS = [
    ("cos_sim", "cos_sim"),
    ("dot_score", "dot_score"),
    ("euclidean_sim", "euclidean_sim"),
    ("manhattan_sim", "manhattan_sim"),
    ("pairwise_cos_sim", "pairwise_cos_sim"),
    ("pairwise_dot_score", "pairwise_dot_score"),
    ("pairwise_euclidean_sim", "pairwise_euclidean_sim"),
    ("pairwise_manhattan_sim", "pairwise_manhattan_sim"),
]


@pytest.mark.parametrize("name, reference_name", UTIL_PAIRS)
def test_util_function_matches_sentence_transformers(name, reference_name):
    a, b = random_matrix(6, 384), random_matrix(6, 384)
    actual = getattr(util, name)(a, b)
    expected = getattr(reference_util, reference_name)(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    # torch.cdist computes euclidean distances through a matrix product (|a|^2 + |b|^2 - 2ab), which loses
    # about 1e-5 relative on distances ~27; our kernel sums squared differences directly.
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=1e-4 if "euclidean" in name else 1e-5)


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


def pooling_cases():
    token_embeddings = RNG.standard_normal((4, 9, 16)).astype(np.float32)
    mask = (np.arange(9)[None, :] < np.array([9, 1, 5, 0])[:, None]).astype(np.int64)
    yield "mixed lengths and an empty row", token_embeddings, mask
    yield "one row", token_embeddings[:1], mask[:1]
    yield "zero rows", token_embeddings[:0], mask[:0]
    yield "non-contiguous", token_embeddings[:, :, ::2], mask
    yield "float64", token_embeddings.astype(np.float64), mask


@pytest.mark.parametrize("case", list(pooling_cases()), ids=lambda case: case[0])
def test_mean_pool_agrees_with_reference(case):
    _, token_embeddings, mask = case
    actual = pooling.mean_pool(token_embeddings, mask)
    expected = pooling.mean_pool_reference(token_embeddings, mask)
    assert actual.dtype == token_embeddings.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


def test_mean_pool_of_an_all_padding_row_is_zero():
    assert not pooling.mean_pool(np.ones((1, 3, 4), np.float32), np.zeros((1, 3))).any()


def test_mean_pool_rejects_a_mask_of_the_wrong_shape():
    with pytest.raises(ValueError, match="mask"):
        pooling.mean_pool(np.ones((2, 3, 4), np.float32), np.ones((2, 4)))
