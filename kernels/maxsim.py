"""MaxSim, ColBERT's late-interaction score: for a query of s token vectors and a document of t token vectors,
sum over the query's tokens of the largest dot product with any of the document's tokens.

A side is *packed*: its texts' token vectors stacked into one (total tokens, dim) matrix, with offsets (texts + 1)
marking where each text starts (text i is vectors[offsets[i]:offsets[i + 1]]). Masked tokens are simply left out
when packing: a masked query token adds nothing to the sum, a masked document token never wins the max.
A document with no token scores EMPTY_DOCUMENT_SCORE, as sentence-transformers scores it (below any real score).

``maxsim``: every query against every document. One matmul (numpy's BLAS) scores a chunk of query tokens against
all document tokens, (query tokens, document tokens); the numba kernel then takes, for each document, the max over
its segment of columns and sums over each query's rows. ``maxsim_pairwise``: query i against document i, loops.
"""

import numba
import numpy as np

from minisbert.runtime.threads import split_rows

EMPTY_DOCUMENT_SCORE = -1e9  # sentence-transformers' score for a document without a token
# Query tokens scored against the document tokens at once: the (query tokens, document tokens) float32 block
# stays near 64 MB.
SCORE_BLOCK_ELEMENTS = 16_000_000


def pack(token_vectors):
    """A list of (tokens_i, dim) arrays -> vectors (sum tokens_i, dim) float32, offsets (n + 1,) int64."""
    lengths = [len(vectors) for vectors in token_vectors]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    dim = next((np.shape(v)[1] for v in token_vectors if np.ndim(v) == 2), 0)
    vectors = (
        np.concatenate([np.asarray(v, dtype=np.float32).reshape(-1, dim) for v in token_vectors])
        if token_vectors
        else np.zeros((0, dim), dtype=np.float32)
    )
    return vectors, offsets


def maxsim_reference(queries, documents):
    """queries, documents: lists of (tokens, dim) arrays -> (n, m) float32, one pair at a time in NumPy."""
    scores = np.zeros((len(queries), len(documents)), dtype=np.float32)
    for i, query in enumerate(queries):
        for j, document in enumerate(documents):
            if len(document) == 0:
                scores[i, j] = EMPTY_DOCUMENT_SCORE
            elif len(query):
                scores[i, j] = (query @ document.T).max(axis=1).sum()  # (s, t) -> (s,) -> ()
    return scores


@numba.njit(cache=True, nogil=True)
def _sum_of_segment_maxima(token_scores, row_offsets, column_offsets, out, first_document, end_document):
    # token_scores (query tokens, document tokens); row_offsets (queries + 1), column_offsets (documents + 1)
    # -> out (queries, documents), columns [first_document, end_document): for each query and document, the sum
    # over the query's rows of the max over the document's columns
    for j in range(first_document, end_document):
        start, end = column_offsets[j], column_offsets[j + 1]
        for i in range(len(row_offsets) - 1):
            if start == end:
                out[i, j] = EMPTY_DOCUMENT_SCORE
                continue
            total = np.float32(0.0)
            for row in range(row_offsets[i], row_offsets[i + 1]):
                best = token_scores[row, start]
                for column in range(start + 1, end):
                    best = max(best, token_scores[row, column])
                total += best
            out[i, j] = total


def maxsim(query_vectors, query_offsets, document_vectors, document_offsets):
    """The fast twin of maxsim_reference on packed sides -> (queries, documents) float32."""
    queries, documents = len(query_offsets) - 1, len(document_offsets) - 1
    out = np.empty((queries, documents), dtype=np.float32)
    rows_per_block = max(1, SCORE_BLOCK_ELEMENTS // max(1, len(document_vectors)))
    first = 0
    while first < queries:  # a block of whole queries holding about rows_per_block tokens
        last = first + 1
        while last < queries and query_offsets[last + 1] - query_offsets[first] <= rows_per_block:
            last += 1
        rows = slice(query_offsets[first], query_offsets[last])
        token_scores = query_vectors[rows] @ document_vectors.T  # (block tokens, document tokens)
        row_offsets, block = query_offsets[first : last + 1] - query_offsets[first], out[first:last]
        split_rows(documents, lambda part: _sum_of_segment_maxima(
            token_scores, row_offsets, document_offsets, block, part.start, part.stop
        ), work_per_row=rows.stop - rows.start)
        first = last
    return out


def maxsim_pairwise_reference(queries, documents):
    """Query i against document i: lists of (tokens, dim) arrays -> (n,) float32."""
    return np.array([maxsim_reference([q], [d])[0, 0] for q, d in zip(queries, documents)], dtype=np.float32)


@numba.njit(cache=True, nogil=True)
def _maxsim_pairwise(query_vectors, query_offsets, document_vectors, document_offsets, out, first, end):
    for i in range(first, end):
        start, end = document_offsets[i], document_offsets[i + 1]
        if start == end:
            out[i] = EMPTY_DOCUMENT_SCORE
            continue
        total = np.float32(0.0)
        for row in range(query_offsets[i], query_offsets[i + 1]):
            best = np.float32(-np.inf)
            for column in range(start, end):
                dot = np.float32(0.0)
                for d in range(query_vectors.shape[1]):
                    dot += query_vectors[row, d] * document_vectors[column, d]
                best = max(best, dot)
            total += best
        out[i] = total


def maxsim_pairwise(query_vectors, query_offsets, document_vectors, document_offsets):
    """The fast twin of maxsim_pairwise_reference on packed sides with as many queries as documents -> (n,)."""
    out = np.empty(len(query_offsets) - 1, dtype=np.float32)
    work = len(document_vectors) * query_vectors.shape[1] * max(1, len(query_vectors)) // max(1, len(out))
    split_rows(len(out), lambda part: _maxsim_pairwise(
        query_vectors, query_offsets, document_vectors, document_offsets, out, part.start, part.stop
    ), work_per_row=work)
    return out
