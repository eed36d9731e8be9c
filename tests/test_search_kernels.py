"""The top-k, Hamming top-k and candidate rescoring kernels agree with their NumPy references (odd shapes,
k > columns, zero rows, ties, float64, non-contiguous input, chunked updates)."""

import numpy as np
import pytest

from minisbert.kernels.hamming import as_words, hamming_distance_reference, hamming_top_k_update
from minisbert.kernels.rescore import candidate_scores, candidate_scores_reference
from minisbert.kernels.topk import RunningTopK, top_k, top_k_reference

rng = np.random.default_rng(0)


def assert_top_k_equal(actual, expected):
    np.testing.assert_array_equal(actual[1], expected[1])
    np.testing.assert_array_equal(actual[0], expected[0])


@pytest.mark.parametrize(
    "shape, k",
    [((1, 1), 1), ((7, 33), 5), ((3, 4), 10), ((0, 9), 3), ((5, 0), 3), ((6, 50), 0), ((2, 1000), 50)],
)
def test_top_k_matches_reference(shape, k):
    scores = rng.standard_normal(shape).astype(np.float32)
    assert_top_k_equal(top_k(scores, k), top_k_reference(scores, k))


def test_top_k_orders_ties_by_index():
    scores = rng.integers(0, 3, size=(9, 40)).astype(np.float32)  # many equal scores
    assert_top_k_equal(top_k(scores, 7), top_k_reference(scores, 7))


def test_top_k_float64_and_non_contiguous():
    scores = rng.standard_normal((40, 31))[::3, ::2]  # float64, strided view
    assert_top_k_equal(top_k(scores, 4), top_k_reference(scores, 4))


def test_running_top_k_over_chunks_equals_one_pass():
    scores = rng.integers(0, 20, size=(11, 203)).astype(np.float32)
    running = RunningTopK(11, 9, np.float32)
    for start in range(0, 203, 17):
        for first_row in (0, 6):
            running.update(scores[first_row : first_row + 6, start : start + 17], start, first_row=first_row)
    assert_top_k_equal(running.result(), top_k_reference(scores, 9))


def test_top_k_refuses_nan():
    scores = np.array([[0.5, np.nan, 0.1]], dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        top_k(scores, 2)


def hamming_top_k(queries, corpus, k, corpus_chunk=None, query_chunk=None):
    running = RunningTopK(len(queries), k, np.int64)
    query_words, corpus_words = as_words(queries), as_words(corpus)
    corpus_chunk, query_chunk = corpus_chunk or max(len(corpus), 1), query_chunk or max(len(queries), 1)
    for column in range(0, len(corpus), corpus_chunk):
        for row in range(0, max(len(queries), 1), query_chunk):  # one (empty) update for zero queries
            hamming_top_k_update(
                running,
                query_words[row : row + query_chunk],
                corpus_words[column : column + corpus_chunk],
                column,
                first_row=row,
            )
    return running.result()


@pytest.mark.parametrize(
    "queries, corpus, width, k",
    [(1, 1, 1, 1), (5, 9, 7, 3), (4, 5000, 48, 10), (3, 6, 16, 20), (0, 8, 8, 2), (3, 0, 8, 2), (4, 30, 9, 0)],
)
def test_hamming_top_k_matches_reference(queries, corpus, width, k):
    # Few bits (width 1) give many equal distances: the tie order (smaller index first) is checked too.
    packed_queries = rng.integers(0, 256, size=(queries, width), dtype=np.uint8)
    packed_corpus = rng.integers(0, 256, size=(corpus, width), dtype=np.uint8)
    expected = top_k_reference(-hamming_distance_reference(packed_queries, packed_corpus), k)
    assert_top_k_equal(hamming_top_k(packed_queries, packed_corpus, k), expected)


def test_hamming_top_k_over_chunks_equals_one_pass():
    packed_queries = rng.integers(0, 256, size=(7, 3), dtype=np.uint8)
    packed_corpus = rng.integers(0, 256, size=(5000, 3), dtype=np.uint8)
    expected = top_k_reference(-hamming_distance_reference(packed_queries, packed_corpus), 12)
    assert_top_k_equal(hamming_top_k(packed_queries, packed_corpus, 12, corpus_chunk=777, query_chunk=3), expected)


def test_hamming_reference_counts_differing_bits():
    a = np.array([[0b10110000, 0xFF]], dtype=np.uint8)
    b = np.array([[0b00110001, 0x00], [0b10110000, 0xFF]], dtype=np.uint8)
    np.testing.assert_array_equal(hamming_distance_reference(a, b), [[2 + 8, 0]])


@pytest.mark.parametrize(
    "queries, candidates, dim, dtype",
    [(1, 1, 1, np.uint8), (5, 40, 384, np.uint8), (3, 7, 37, np.int8), (2, 0, 8, np.int8), (4, 5, 16, np.float32)],
)
def test_candidate_scores_match_reference(queries, candidates, dim, dtype):
    query_embeddings = rng.standard_normal((queries, dim)).astype(np.float32)
    if dtype == np.float32:
        candidate_embeddings = rng.standard_normal((queries, candidates, dim)).astype(dtype)
    else:
        candidate_embeddings = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, (queries, candidates, dim), dtype)
    np.testing.assert_allclose(
        candidate_scores(query_embeddings, candidate_embeddings),
        candidate_scores_reference(query_embeddings, candidate_embeddings),
        rtol=1e-12,
        atol=1e-9,
    )


def test_candidate_scores_non_contiguous_float64():
    query_embeddings = rng.standard_normal((6, 20))[::2]  # float64, strided
    candidate_embeddings = rng.integers(0, 2, (3, 9, 20), dtype=np.uint8)[:, ::3]
    np.testing.assert_allclose(
        candidate_scores(query_embeddings, candidate_embeddings),
        candidate_scores_reference(query_embeddings, candidate_embeddings),
        rtol=1e-12,
    )
