"""Sparse x sparse scoring for SPLADE-style vectors (vocabulary-sized, a few dozen non-zeros each), and the top-k
search over a sparse corpus built on it: an inverted index.

Queries come as CSR (indptr, indices, data): row q's non-zeros are indices[indptr[q]:indptr[q + 1]]. The corpus
comes as CSC, which *is* an inverted index: column (vocabulary entry) t lists the documents holding t and their
weights. A query's scores are then the sum, over its terms t, of q_t times t's posting list: the work is the length
of the posting lists the query touches, not corpus x vocabulary. The plain references use scipy.sparse (a CSR
product), so they need the ``sparse`` extra; the kernels take bare NumPy arrays and need only numba.

Top-k order is minisbert.kernels.topk's: larger score first, equal scores by smaller document index.
"""

import numba
import numpy as np

from minisbert.kernels.topk import heap_push
from minisbert.runtime.threads import split_rows


def sparse_dot_reference(queries, corpus):
    """queries (n, vocab), corpus (m, vocab) scipy sparse -> (n, m) dense dot products, by scipy."""
    return np.asarray((queries @ corpus.T).toarray())


@numba.njit(inline="always")
def _score_against_postings(
    query_indptr, query_indices, query_data, q, posting_indptr, posting_rows, posting_data, out
):
    # out (m,) zeroed: out[d] = sum over the query's terms t of q_t * corpus[d, t], read from t's posting list
    for position in range(query_indptr[q], query_indptr[q + 1]):
        term, weight = query_indices[position], query_data[position]
        for posting in range(posting_indptr[term], posting_indptr[term + 1]):
            out[posting_rows[posting]] += weight * posting_data[posting]


@numba.njit(cache=True, nogil=True)
def _sparse_dot(query_indptr, query_indices, query_data, posting_indptr, posting_rows, posting_data, out, first, end):
    # out (n, m) zeroed; queries [first, end)
    for q in range(first, end):
        _score_against_postings(
            query_indptr, query_indices, query_data, q, posting_indptr, posting_rows, posting_data, out[q]
        )


def sparse_dot(query_indptr, query_indices, query_data, posting_indptr, posting_rows, posting_data, corpus_size):
    """The fast twin of sparse_dot_reference: queries as CSR arrays, the corpus as CSC arrays (posting lists)
    -> (n, corpus_size) dense scores, in the queries' dtype."""
    out = np.zeros((len(query_indptr) - 1, corpus_size), dtype=np.result_type(query_data, posting_data))
    split_rows(len(out), lambda part: _sparse_dot(
        query_indptr, query_indices, query_data, posting_indptr, posting_rows, posting_data, out, part.start, part.stop
    ), work_per_row=max(1, len(posting_rows)))
    return out


def sparse_search_reference(queries, corpus, k):
    """The k best documents of each query by dot product, best first: scipy sparse (n, vocab), (m, vocab)
    -> scores (n, min(k, m)), indices (n, min(k, m)) int64."""
    scores = sparse_dot_reference(queries, corpus)  # (n, m)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@numba.njit(cache=True, nogil=True)
def _sparse_search(
    query_indptr, query_indices, query_data, posting_indptr, posting_rows, posting_data, corpus_size, heap_values,
    heap_indices, first, end,
):
    # heap_values, heap_indices (n, k): one min-heap per query of [first, end), filled to min(k, corpus_size)
    for q in range(first, end):
        scores = np.zeros(corpus_size, dtype=heap_values.dtype)  # (m,) this query's accumulator
        _score_against_postings(
            query_indptr, query_indices, query_data, q, posting_indptr, posting_rows, posting_data, scores
        )
        size = 0
        for document in range(corpus_size):  # every document, untouched ones at 0, as a dense search ranks them
            size = heap_push(heap_values, heap_indices, q, size, scores[document], document)


def sparse_search(query_indptr, query_indices, query_data, posting_indptr, posting_rows, posting_data, corpus_size, k):
    """The fast twin of sparse_search_reference on CSR queries and CSC corpus arrays -> scores, indices
    (n, min(k, corpus_size)), best first."""
    queries = len(query_indptr) - 1
    kept = min(k, corpus_size)
    dtype = np.result_type(query_data, posting_data)
    heap_values = np.empty((queries, kept), dtype=dtype)
    heap_indices = np.empty((queries, kept), dtype=np.int64)
    split_rows(queries, lambda part: _sparse_search(
        query_indptr, query_indices, query_data, posting_indptr, posting_rows, posting_data, corpus_size, heap_values,
        heap_indices, part.start, part.stop,
    ), work_per_row=corpus_size + len(posting_rows))
    order = np.lexsort((heap_indices, -heap_values), axis=-1)  # (n, kept): score descending, then index
    return np.take_along_axis(heap_values, order, axis=1), np.take_along_axis(heap_indices, order, axis=1)
