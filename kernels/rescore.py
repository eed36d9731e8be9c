"""Rescoring of search candidates: the dot product of each query with each of its candidates' embeddings (0/1
bits, int8 or float rows gathered by the caller), in float64 as sentence-transformers' einsum rescoring computes
it, without widening the candidates to an int64/float64 copy first.
"""

import numba
import numpy as np

from minisbert.runtime.threads import split_rows


def candidate_scores_reference(queries, candidates):
    """queries (q, dim), candidates (q, c, dim) -> (q, c) float64 dot products."""
    return np.einsum("ij,ikj->ik", queries.astype(np.float64), candidates.astype(np.float64))


@numba.njit(nogil=True, cache=True)
def _candidate_scores(queries, candidates, out):
    # queries (q, dim), candidates (q, c, dim) of any numeric dtype -> out (q, c) float64; rows split over threads
    for i in range(candidates.shape[0]):
        for c in range(candidates.shape[1]):
            total = 0.0
            for d in range(candidates.shape[2]):
                total += np.float64(queries[i, d]) * np.float64(candidates[i, c, d])
            out[i, c] = total


def candidate_scores(queries, candidates):
    """The fast twin of candidate_scores_reference: (q, dim), (q, c, dim) -> (q, c) float64."""
    queries, candidates = np.ascontiguousarray(queries), np.ascontiguousarray(candidates)
    if candidates.ndim != 3 or queries.shape != (candidates.shape[0], candidates.shape[2]):
        raise ValueError(f"expected queries (q, dim) and candidates (q, c, dim), got {queries.shape}, {candidates.shape}")
    out = np.empty(candidates.shape[:2], dtype=np.float64)
    split_rows(
        len(queries),
        lambda part: _candidate_scores(queries[part], candidates[part], out[part]),
        work_per_row=candidates.shape[1] * candidates.shape[2],
    )
    return out
