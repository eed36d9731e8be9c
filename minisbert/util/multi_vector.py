"""Late interaction (ColBERT): MaxSim between multi-vector embeddings (one vector per token), as
sentence_transformers.util.maxsim / maxsim_pairwise / mean_maxsim / mean_maxsim_pairwise compute it (there, in
util/similarity.py), and multi_vector_search over a multi-vector corpus, which returns semantic_search's structure.
The arithmetic is in minisbert.kernels.maxsim; this module turns the accepted inputs (lists, padded arrays,
masks) into its packed sides. Imports the kernels and the private minisbert.util._search.
"""

import numpy as np

from minisbert.kernels.maxsim import maxsim as maxsim_kernel
from minisbert.kernels.maxsim import maxsim_pairwise as maxsim_pairwise_kernel
from minisbert.kernels.maxsim import pack
from minisbert.kernels.topk import RunningTopK
from minisbert.util._search import check_count, search_results

__all__ = ["maxsim", "maxsim_pairwise", "mean_maxsim", "mean_maxsim_pairwise", "multi_vector_search"]


def scored_tokens(embeddings, mask, name):
    """One side of a MaxSim call -> a list of (kept tokens, dim) float32 arrays: the tokens ``mask`` keeps.
    embeddings: a list of (tokens_i, dim) arrays, a padded (n, tokens, dim) array (without a mask, all-zero rows
    are padding), or one (tokens, dim) array (a batch of one); mask: (n, tokens), a list of (tokens_i,), or
    (tokens,) beside one (tokens, dim) array."""
    if not isinstance(embeddings, (np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be token embeddings (an array or a list of (tokens, dim) arrays), "
                        f"got {type(embeddings).__name__}")
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2:
        embeddings = embeddings[None]
        mask = None if mask is None else np.asarray(mask)[None]
    if isinstance(embeddings, np.ndarray):
        if embeddings.ndim != 3:
            raise ValueError(f"{name} must be (n, tokens, dim), (tokens, dim) or a list of (tokens, dim) arrays, "
                             f"got shape {embeddings.shape}")
        if mask is None:
            mask = np.any(embeddings != 0, axis=-1)  # (n, tokens)
        elif np.shape(mask) != embeddings.shape[:2]:
            raise ValueError(f"{name}'s mask has shape {np.shape(mask)}; embeddings of shape {embeddings.shape} "
                             f"need a mask of shape {embeddings.shape[:2]}")
    items = [np.asarray(item) for item in embeddings]
    for index, item in enumerate(items):
        if item.ndim != 2:
            raise ValueError(f"{name}[{index}] must be a (tokens, dim) array, got shape {item.shape}")
        if item.dtype.kind not in "biuf":
            raise TypeError(f"{name}[{index}] must hold real numbers, got an array of dtype {item.dtype}")
    items = [item.astype(np.float32, copy=False) for item in items]
    if mask is None:
        return items
    if len(mask) != len(items):
        raise ValueError(f"{name}'s mask has {len(mask)} rows for {len(items)} embeddings")
    kept = []
    for index, (item, item_mask) in enumerate(zip(items, mask)):
        item_mask = np.asarray(item_mask).astype(bool)
        if len(item_mask) < len(item):
            raise ValueError(f"{name}'s mask {index} covers {len(item_mask)} tokens, the embeddings {len(item)}")
        kept.append(item[item_mask[: len(item)]])
    return kept


def not_finite(items):
    """The positions of the first five (tokens, dim) arrays holding NaN or inf."""
    return [index for index, item in enumerate(items) if not np.isfinite(item).all()][:5]


def query_token_counts(queries):
    # the number of scored tokens of each query, at least 1 (MeanMaxSim's divisor, as sentence-transformers)
    return np.maximum([len(query) for query in queries], 1).astype(np.float32)


def maxsim(a, b, a_mask=None, b_mask=None, length_normalize=False):
    """MaxSim of every query in a with every document in b -> (len(a), len(b)) float32: the sum over each
    query's tokens of the largest dot product with a document token. A document with no token scores -1e9;
    length_normalize divides by the query's token count (MeanMaxSim). As sentence_transformers.util.maxsim."""

    queries, documents = scored_tokens(a, a_mask, "a"), scored_tokens(b, b_mask, "b")
    check_same_token_dimension(queries, documents)
    if not queries or not documents:
        return np.zeros((len(queries), len(documents)), dtype=np.float32)
    scores = maxsim_kernel(*pack(queries), *pack(documents))
    return scores / query_token_counts(queries)[:, None] if length_normalize else scores


def maxsim_pairwise(a, b, a_mask=None, b_mask=None, length_normalize=False):
    """MaxSim of query i with document i -> (n,) float32, as sentence_transformers.util.maxsim_pairwise."""

    queries, documents = scored_tokens(a, a_mask, "a"), scored_tokens(b, b_mask, "b")
    if len(queries) != len(documents):
        raise ValueError(f"maxsim_pairwise scores pairs: got {len(queries)} queries and {len(documents)} documents")
    check_same_token_dimension(queries, documents)
    scores = maxsim_pairwise_kernel(*pack(queries), *pack(documents))
    return scores / query_token_counts(queries) if length_normalize else scores


def mean_maxsim(a, b, a_mask=None, b_mask=None, length_normalize=True):
    """maxsim divided by each query's token count."""
    return maxsim(a, b, a_mask, b_mask, length_normalize)


def mean_maxsim_pairwise(a, b, a_mask=None, b_mask=None, length_normalize=True):
    """maxsim_pairwise divided by each query's token count."""
    return maxsim_pairwise(a, b, a_mask, b_mask, length_normalize)


def check_same_token_dimension(queries, documents):
    dims = {item.shape[1] for item in queries + documents if len(item)}
    if len(dims) > 1:
        raise ValueError(f"multi-vector embeddings of different dimensions: {sorted(dims)}")


def multi_vector_search(query_embeddings, corpus_embeddings, top_k=10, corpus_chunk_size=10000,
                        length_normalize=False):
    """For each query (a (tokens, dim) array), its top_k corpus documents by MaxSim, as semantic_search returns
    them: [[{"corpus_id", "score"}, ...] per query], best first, ties by corpus_id. The corpus is scored a chunk
    of documents at a time, so memory holds one chunk's token scores and (queries, top_k) results."""

    top_k = min(check_count(top_k, "top_k", 1), len(corpus_embeddings))  # heaps no larger than the corpus
    corpus_chunk_size = check_count(corpus_chunk_size, "corpus_chunk_size", 1)
    queries = scored_tokens(query_embeddings, None, "query_embeddings")
    packed_queries = pack(queries)
    running = RunningTopK(len(queries), top_k, np.float32)
    for start in range(0, len(corpus_embeddings), corpus_chunk_size):
        documents = scored_tokens(list(corpus_embeddings[start : start + corpus_chunk_size]), None, "corpus_embeddings")
        check_same_token_dimension(queries, documents)
        scores = maxsim_kernel(*packed_queries, *pack(documents))  # (queries, chunk)
        if length_normalize:
            scores = scores / query_token_counts(queries)[:, None]
        running.update(scores, start)
        if running.nan_counts.any():
            raise ValueError(
                f"{int(running.nan_counts.sum())} MaxSim scores are NaN, so they cannot be ranked; token embeddings "
                f"with NaN or inf values: queries {not_finite(queries)}, corpus {[start + i for i in not_finite(documents)]}"
                " (first five of each)")
    values, indices = running.result()
    return search_results(indices, values)
