"""Property tests (hypothesis) of the retrieval kernels against their plain references, on any shapes hypothesis
draws: sparse dot products and top-k search (kernels/sparse.py, reference scipy), MaxSim and pairwise MaxSim
(kernels/maxsim.py, reference NumPy). Weights are small integers, so every sum is exact and ties are everywhere:
the kernels must equal the references exactly, ties ordered by document index."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
scipy_sparse = pytest.importorskip("scipy.sparse")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from minisbert.kernels import maxsim as maxsim_kernels  # noqa: E402
from minisbert.kernels import sparse as sparse_kernels  # noqa: E402

PROFILE = settings(max_examples=60, deadline=None)


@st.composite
def integer_matrices(draw, rows, columns):
    """A (rows, columns) float32 matrix of small integers, mostly zero."""
    values = draw(st.lists(st.integers(-2, 3), min_size=rows * columns, max_size=rows * columns))
    keep = draw(st.lists(st.booleans(), min_size=rows * columns, max_size=rows * columns))
    return (np.array(values, dtype=np.float32) * np.array(keep)).reshape(rows, columns)


@st.composite
def sparse_problems(draw):
    vocab = draw(st.integers(1, 12))
    queries = draw(integer_matrices(draw(st.integers(0, 5)), vocab))
    corpus = draw(integer_matrices(draw(st.integers(0, 9)), vocab))
    return scipy_sparse.csr_array(queries), scipy_sparse.csr_array(corpus), draw(st.integers(1, 12))


@PROFILE
@given(sparse_problems())
def test_sparse_kernels_equal_scipy(problem):
    queries, corpus, k = problem
    postings = corpus.tocsc()
    arguments = (queries.indptr, queries.indices, queries.data, postings.indptr, postings.indices, postings.data,
                 corpus.shape[0])
    np.testing.assert_array_equal(sparse_kernels.sparse_dot(*arguments),
                                  sparse_kernels.sparse_dot_reference(queries, corpus))
    scores, indices = sparse_kernels.sparse_search(*arguments, k)
    expected_scores, expected_indices = sparse_kernels.sparse_search_reference(queries, corpus, k)
    np.testing.assert_array_equal(scores, expected_scores)
    np.testing.assert_array_equal(indices, expected_indices)


@st.composite
def ragged_sides(draw):
    dim = draw(st.integers(1, 4))
    sides = []
    for _ in range(2):
        lengths = draw(st.lists(st.integers(0, 5), max_size=5))
        sides.append([draw(integer_matrices(length, dim)) for length in lengths])
    return sides


@PROFILE
@given(ragged_sides())
def test_maxsim_kernels_equal_numpy(sides):
    queries, documents = sides
    if queries and documents:
        actual = maxsim_kernels.maxsim(*maxsim_kernels.pack(queries), *maxsim_kernels.pack(documents))
        np.testing.assert_array_equal(actual, maxsim_kernels.maxsim_reference(queries, documents))
    pairs = min(len(queries), len(documents))
    actual = maxsim_kernels.maxsim_pairwise(*maxsim_kernels.pack(queries[:pairs]),
                                            *maxsim_kernels.pack(documents[:pairs]))
    np.testing.assert_array_equal(actual, maxsim_kernels.maxsim_pairwise_reference(queries[:pairs], documents[:pairs]))
