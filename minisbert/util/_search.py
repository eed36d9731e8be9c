"""Private helpers of the search functions, shared by minisbert.util's modules (retrieval, quantization,
multi_vector) and by the other searches built on them (minisbert.dask, distributed.streaming, the sparse
encoder's search): argument checks, the chunked dense top-k that semantic_search runs, and semantic_search's
return structure. Imports the kernels and minisbert.util.similarity only.
"""

import numpy as np

from minisbert.kernels.similarity import as_embedding_matrix, normalize_rows
from minisbert.kernels.topk import RunningTopK
from minisbert.util.similarity import cos_sim


def check_count(value, name, minimum):
    """value as an int >= minimum, or a TypeError / ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def query_and_corpus(query_embeddings, corpus_embeddings):
    """(queries, dim) and (corpus, dim) arrays of one dimension; an empty list stands for zero rows."""
    queries = as_embedding_matrix(query_embeddings, "query_embeddings")
    if np.size(corpus_embeddings) == 0 and np.ndim(corpus_embeddings) < 2:
        return queries, np.empty((0, queries.shape[1]), dtype=queries.dtype)
    corpus = as_embedding_matrix(corpus_embeddings, "corpus_embeddings")
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(
            f"query embeddings have {queries.shape[1]} dimensions but corpus embeddings have {corpus.shape[1]}"
        )
    return queries, corpus


def refuse_nan_scores(running, queries, corpus_chunk, corpus_start):
    """A ValueError naming the rows whose NaN/inf values made some scores NaN (NaN has no rank)."""
    bad_queries = np.flatnonzero(~np.isfinite(queries).all(axis=1))[:5].tolist()
    bad_corpus = (np.flatnonzero(~np.isfinite(corpus_chunk).all(axis=1))[:5] + corpus_start).tolist()
    raise ValueError(
        f"{int(running.nan_counts.sum())} similarity scores are NaN, so they cannot be ranked; "
        f"rows with NaN or inf values: queries {bad_queries}, corpus {bad_corpus} (first five of each)"
    )


def top_k_scores(
    query_embeddings,
    corpus_embeddings,
    query_chunk_size=100,
    corpus_chunk_size=500000,
    top_k=10,
    score_function=cos_sim,
):
    """The top_k best corpus rows of every query: values, indices (queries, min(top_k, corpus)), best first.

    Memory beyond the inputs: one (query_chunk_size, corpus_chunk_size) block of scores, a normalised copy of
    one corpus chunk for cos_sim, and the (queries, top_k) running heaps."""
    if not callable(score_function):
        raise TypeError(f"score_function must be a function such as util.cos_sim or util.dot_score, got {score_function!r:.80}")
    queries, corpus = query_and_corpus(query_embeddings, corpus_embeddings)
    query_chunk_size = check_count(query_chunk_size, "query_chunk_size", 1)
    corpus_chunk_size = check_count(corpus_chunk_size, "corpus_chunk_size", 1)
    top_k = min(check_count(top_k, "top_k", 0), len(corpus))  # heaps no larger than the corpus
    # cos_sim would normalise a corpus chunk once per query chunk; normalising each once gives the same scores.
    normalize_chunks = score_function is cos_sim
    if normalize_chunks:
        queries = normalize_rows(queries)
    if len(queries) == 0 or len(corpus) == 0 or top_k == 0:
        return np.empty((len(queries), 0), dtype=queries.dtype), np.empty((len(queries), 0), dtype=np.int64)
    running = None
    for corpus_start in range(0, len(corpus), corpus_chunk_size):
        corpus_chunk = corpus[corpus_start : corpus_start + corpus_chunk_size]  # (chunk, dim)
        if normalize_chunks:
            corpus_chunk = normalize_rows(corpus_chunk)
        for query_start in range(0, len(queries), query_chunk_size):
            query_chunk = queries[query_start : query_start + query_chunk_size]  # (query_chunk, dim)
            if normalize_chunks:
                scores = query_chunk @ corpus_chunk.T  # (query_chunk, chunk)
            else:
                scores = np.asarray(score_function(query_chunk, corpus_chunk))
                if scores.shape != (len(query_chunk), len(corpus_chunk)):
                    raise ValueError(f"score_function must return (queries, corpus) scores, here "
                                     f"{(len(query_chunk), len(corpus_chunk))}; it returned shape {scores.shape}")
            if running is None:
                running = RunningTopK(len(queries), top_k, scores.dtype)
            running.update(scores, corpus_start, first_row=query_start)
            del scores  # freed before the next block is computed: one score block alive at a time
        if running.nan_counts.any():
            refuse_nan_scores(running, queries, corpus_chunk, corpus_start)
    return running.result()


def search_results(indices, scores):
    """(queries, k) corpus ids and scores -> semantic_search's list per query of {"corpus_id", "score"}."""
    return [
        [{"corpus_id": corpus_id, "score": score} for corpus_id, score in zip(row_ids, row_scores)]
        for row_ids, row_scores in zip(indices.tolist(), scores.tolist())
    ]
