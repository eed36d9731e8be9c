"""kernels/sparse.py against its scipy references on odd shapes: empty rows, rows with one non-zero, no queries,
an empty corpus, a corpus smaller than k, float64, and ties (small integer weights, so sums are exact and many
scores are equal: the order must still be score descending, then document index)."""

import numpy as np
import pytest

from minisbert.kernels.sparse import sparse_dot, sparse_dot_reference, sparse_search, sparse_search_reference

scipy_sparse = pytest.importorskip("scipy.sparse")


def random_csr(rows, vocab, density, seed, dtype=np.float32, integer=False, empty_rows=(), single_rows=()):
    rng = np.random.default_rng(seed)
    dense = rng.random((rows, vocab)) * (rng.random((rows, vocab)) < density)
    if integer:
        dense = np.ceil(dense * 3)
    for row in empty_rows:
        dense[row] = 0
    for row in single_rows:
        dense[row] = 0
        dense[row, rng.integers(vocab)] = 1 + rng.integers(3)
    return scipy_sparse.csr_array(dense.astype(dtype))


def kernel_arguments(queries, corpus):
    postings = corpus.tocsc()
    return (queries.indptr, queries.indices, queries.data, postings.indptr, postings.indices, postings.data,
            corpus.shape[0])


SHAPES = [  # (queries, corpus, vocab, density)
    (5, 40, 300, 0.05),
    (1, 1, 7, 0.5),
    (0, 10, 50, 0.1),
    (4, 0, 50, 0.1),
    (3, 2, 50, 0.3),
    (17, 200, 1000, 0.01),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_sparse_dot_matches_scipy(shape, dtype):
    n, m, vocab, density = shape
    queries = random_csr(n, vocab, density, 1, dtype, empty_rows=range(0, n, 3), single_rows=range(1, n, 4))
    corpus = random_csr(m, vocab, density, 2, dtype, empty_rows=range(0, m, 5), single_rows=range(2, m, 7))
    actual = sparse_dot(*kernel_arguments(queries, corpus))
    expected = sparse_dot_reference(queries, corpus)
    assert actual.shape == (n, m) and actual.dtype == dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 10, 500])
@pytest.mark.parametrize("shape", SHAPES)
def test_sparse_search_matches_scipy_with_ties(shape, k):
    n, m, vocab, density = shape
    queries = random_csr(n, vocab, density, 3, integer=True, empty_rows=range(0, n, 3))
    corpus = random_csr(m, vocab, density, 4, integer=True, empty_rows=range(0, m, 5), single_rows=range(2, m, 7))
    scores, indices = sparse_search(*kernel_arguments(queries, corpus), k)
    expected_scores, expected_indices = sparse_search_reference(queries, corpus, k)
    assert scores.shape == indices.shape == (n, min(k, m))
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(scores, expected_scores)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_search_on_random_weights(dtype):
    queries = random_csr(20, 2000, 0.01, 5, dtype)
    corpus = random_csr(500, 2000, 0.02, 6, dtype, empty_rows=range(0, 500, 9))
    scores, indices = sparse_search(*kernel_arguments(queries, corpus), 10)
    expected_scores, expected_indices = sparse_search_reference(queries, corpus, 10)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    # ids equal wherever the reference's neighbouring scores are not equal to float rounding
    distinct = np.abs(np.diff(expected_scores, axis=1)) > 1e-5
    clear = np.concatenate([distinct[:, :1], distinct[:, :-1] & distinct[:, 1:], distinct[:, -1:]], axis=1)
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(indices[clear], expected_indices[clear])


def test_sparse_search_api_checks_top_k_and_vocabulary():
    from minisbert.families.sparse_encoder import sparse_search as search

    queries, corpus = random_csr(2, 30, 0.2, 7), random_csr(5, 30, 0.2, 8)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        search(queries, corpus, top_k=0)
    with pytest.raises(ValueError, match="30 dimensions but corpus embeddings have 31"):
        search(queries, random_csr(5, 31, 0.2, 8), top_k=2)
    hits = search(queries, corpus, top_k=3)
    assert [len(row) for row in hits] == [3, 3] and set(hits[0][0]) == {"corpus_id", "score"}


def test_a_prebuilt_inverted_index_gives_the_same_hits():
    from minisbert.families.sparse_encoder import inverted_index, sparse_search

    queries, corpus = random_csr(4, 300, 0.05, 9), random_csr(60, 300, 0.05, 10, empty_rows=[0, 7])
    index = inverted_index(corpus)
    assert index.format == "csc" and index.shape == corpus.shape
    assert sparse_search(queries, index, top_k=7) == sparse_search(queries, corpus, top_k=7)
    assert sparse_search(queries, corpus.toarray(), top_k=7) == sparse_search(queries, corpus, top_k=7)
