"""What sentence_transformers.util offers for working with embeddings, without torch: the similarity functions
(cos_sim, dot_score, ... and their pairwise_* forms), normalize_embeddings, semantic_search, paraphrase mining and
community detection, with sentence-transformers' arguments and return structures.
May import the kernels and the runtime; the families use it.
"""

import heapq

import numpy as np

from minisbert.kernels.similarity import as_embedding_matrix, normalize_rows
from minisbert.kernels.topk import RunningTopK
from minisbert.util.similarity import (  # noqa: F401  (re-exported: minisbert.util mirrors sentence_transformers.util)
    cos_sim,
    dot_score,
    euclidean_sim,
    manhattan_sim,
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_sim,
    pairwise_manhattan_sim,
)


def normalize_embeddings(embeddings):
    """Rows scaled to unit L2 norm (a zero row stays zero): (n, dim) -> (n, dim), (dim,) -> (dim,)."""
    normalized = normalize_rows(embeddings)
    return normalized[0] if np.ndim(embeddings) == 1 else normalized


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
            if running is None:
                running = RunningTopK(len(queries), top_k, scores.dtype)
            running.update(scores, corpus_start, first_row=query_start)
            del scores  # freed before the next block is computed: one score block alive at a time
        if running.nan_counts.any():
            refuse_nan_scores(running, queries, corpus_chunk, corpus_start)
    return running.result()


def semantic_search(
    query_embeddings,
    corpus_embeddings,
    query_chunk_size=100,
    corpus_chunk_size=500000,
    top_k=10,
    score_function=cos_sim,
):
    """For every query, a list of {"corpus_id": int, "score": float} for its top_k best corpus rows, best first.

    As sentence_transformers.util.semantic_search: the corpus is scanned in chunks; top-k selection runs in a
    numba kernel that keeps one small heap per query, so memory is bounded by the chunk sizes. Equal scores are
    ordered by corpus_id. NaN scores (from NaN or inf embeddings) raise a ValueError instead of being ranked."""
    values, indices = top_k_scores(
        query_embeddings, corpus_embeddings, query_chunk_size, corpus_chunk_size, top_k, score_function
    )
    return search_results(indices, values)


def search_results(indices, scores):
    """(queries, k) corpus ids and scores -> semantic_search's list per query of {"corpus_id", "score"}."""
    return [
        [{"corpus_id": corpus_id, "score": score} for corpus_id, score in zip(row_ids, row_scores)]
        for row_ids, row_scores in zip(indices.tolist(), scores.tolist())
    ]


def paraphrase_mining(
    model,
    sentences,
    show_progress_bar=False,
    batch_size=32,
    query_chunk_size=5000,
    corpus_chunk_size=100000,
    max_pairs=500000,
    top_k=100,
    score_function=cos_sim,
    truncate_dim=None,
    prompt_name=None,
    prompt=None,
):
    """Embeds the sentences with model and returns paraphrase_mining_embeddings of them: [[score, i, j], ...]."""
    embeddings = model.encode(
        sentences,
        show_progress_bar=show_progress_bar,
        batch_size=batch_size,
        truncate_dim=truncate_dim,
        prompt_name=prompt_name,
        prompt=prompt,
    )
    return paraphrase_mining_embeddings(
        embeddings, query_chunk_size, corpus_chunk_size, max_pairs, top_k, score_function
    )


def paraphrase_mining_embeddings(
    embeddings, query_chunk_size=5000, corpus_chunk_size=100000, max_pairs=500000, top_k=100, score_function=cos_sim
):
    """The max_pairs most similar pairs among the rows, as [score, i, j] with i < j, highest score first.

    Each row is compared with its top_k nearest other rows (score_function is assumed symmetric)."""
    embeddings = as_embedding_matrix(embeddings)
    query_chunk_size = check_count(query_chunk_size, "query_chunk_size", 1)
    max_pairs = check_count(max_pairs, "max_pairs", 1)
    top_k = check_count(top_k, "top_k", 0)
    pairs = []  # min-heap of (score, i, j), i < j, at most max_pairs
    queued_pairs = set()  # the (i, j) of every pair in `pairs`
    min_score = float("-inf")
    for query_start in range(0, len(embeddings), query_chunk_size):
        values, indices = top_k_scores(
            embeddings[query_start : query_start + query_chunk_size],
            embeddings,
            query_chunk_size,
            corpus_chunk_size,
            top_k + 1,
            score_function,
        )  # (query_chunk, top_k + 1): the row itself is usually among them
        for offset, (row_ids, row_scores) in enumerate(zip(indices.tolist(), values.tolist())):
            i = query_start + offset
            neighbours = [(j, score) for j, score in zip(row_ids, row_scores) if j != i][:top_k]
            for j, score in neighbours:
                if score <= min_score:
                    continue
                pair = (i, j) if i < j else (j, i)
                if pair in queued_pairs:
                    continue
                queued_pairs.add(pair)
                if len(pairs) < max_pairs:
                    heapq.heappush(pairs, (score, *pair))
                else:
                    evicted = heapq.heappushpop(pairs, (score, *pair))
                    queued_pairs.discard(evicted[1:])
                    min_score = evicted[0]
    return sorted(([score, i, j] for score, i, j in pairs), key=lambda pair: pair[0], reverse=True)


def community_detection(embeddings, threshold=0.75, min_community_size=10, batch_size=1024, show_progress_bar=False):
    """Communities of rows whose cosine similarity to a central row is >= threshold, at least min_community_size
    strong, largest first, none overlapping. Each community is [center, members by decreasing similarity...]."""
    if len(embeddings) == 0:
        return []
    embeddings = normalize_rows(embeddings)  # (n, dim)
    min_community_size = check_count(min_community_size, "min_community_size", 1)
    batch_size = check_count(batch_size, "batch_size", 1)
    if len(embeddings) < min_community_size:
        return []

    starts = range(0, len(embeddings), batch_size)
    if show_progress_bar:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="Finding clusters")
    extracted_communities = []  # (center, members (count,) uint32 by decreasing similarity)
    for start in starts:
        scores = embeddings[start : start + batch_size] @ embeddings.T  # (batch, n)
        close = scores >= threshold  # (batch, n)
        for row in np.flatnonzero(close.sum(axis=1) >= min_community_size):
            members = np.flatnonzero(close[row])
            members = members[np.argsort(-scores[row, members], kind="stable")]
            extracted_communities.append((start + int(row), members.astype(np.uint32)))
    extracted_communities.sort(key=lambda community: len(community[1]), reverse=True)

    # Largest first, drop the rows an earlier community claimed; keep what is still large enough.
    unique_communities = []
    used = np.zeros(len(embeddings), dtype=bool)
    for center, community in extracted_communities:
        if used[center]:
            continue
        free_members = community[~used[community]]
        if len(free_members) >= min_community_size:
            unique_community = [center] + free_members[free_members != center].tolist()
            unique_communities.append(unique_community)
            used[unique_community] = True
    return sorted(unique_communities, key=len, reverse=True)


# ------------------------------------------------------------------------------------------------------------------
# Late interaction (ColBERT): MaxSim between multi-vector embeddings, and search over a multi-vector corpus


def scored_tokens(embeddings, mask, name):
    """One side of a MaxSim call -> a list of (kept tokens, dim) float32 arrays: the tokens ``mask`` keeps.
    embeddings: a list of (tokens_i, dim) arrays, a padded (n, tokens, dim) array (without a mask, all-zero rows
    are padding), or one (tokens, dim) array (a batch of one); mask: (n, tokens), a list of (tokens_i,), or
    (tokens,) beside one (tokens, dim) array."""
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2:
        embeddings = embeddings[None]
        mask = None if mask is None else np.asarray(mask)[None]
    if isinstance(embeddings, np.ndarray):
        if embeddings.ndim != 3:
            raise ValueError(f"{name} must be (n, tokens, dim), (tokens, dim) or a list of (tokens, dim) arrays, "
                             f"got shape {embeddings.shape}")
        if mask is None:
            mask = np.any(embeddings != 0, axis=-1)  # (n, tokens)
    items = [np.asarray(item, dtype=np.float32) for item in embeddings]
    for index, item in enumerate(items):
        if item.ndim != 2:
            raise ValueError(f"{name}[{index}] must be a (tokens, dim) array, got shape {item.shape}")
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


def query_token_counts(queries):
    # the number of scored tokens of each query, at least 1 (MeanMaxSim's divisor, as sentence-transformers)
    return np.maximum([len(query) for query in queries], 1).astype(np.float32)


def maxsim(a, b, a_mask=None, b_mask=None, length_normalize=False):
    """MaxSim of every query in a with every document in b -> (len(a), len(b)) float32: the sum over each
    query's tokens of the largest dot product with a document token. A document with no token scores -1e9;
    length_normalize divides by the query's token count (MeanMaxSim). As sentence_transformers.util.maxsim."""
    from minisbert.kernels.maxsim import maxsim as maxsim_kernel
    from minisbert.kernels.maxsim import pack

    queries, documents = scored_tokens(a, a_mask, "a"), scored_tokens(b, b_mask, "b")
    check_same_token_dimension(queries, documents)
    if not queries or not documents:
        return np.zeros((len(queries), len(documents)), dtype=np.float32)
    scores = maxsim_kernel(*pack(queries), *pack(documents))
    return scores / query_token_counts(queries)[:, None] if length_normalize else scores


def maxsim_pairwise(a, b, a_mask=None, b_mask=None, length_normalize=False):
    """MaxSim of query i with document i -> (n,) float32, as sentence_transformers.util.maxsim_pairwise."""
    from minisbert.kernels.maxsim import maxsim_pairwise as pairwise_kernel
    from minisbert.kernels.maxsim import pack

    queries, documents = scored_tokens(a, a_mask, "a"), scored_tokens(b, b_mask, "b")
    if len(queries) != len(documents):
        raise ValueError(f"maxsim_pairwise scores pairs: got {len(queries)} queries and {len(documents)} documents")
    check_same_token_dimension(queries, documents)
    scores = pairwise_kernel(*pack(queries), *pack(documents))
    return scores / query_token_counts(queries) if length_normalize else scores


def mean_maxsim(a, b, a_mask=None, b_mask=None, length_normalize=True):
    """maxsim divided by each query's token count."""
    return maxsim(a, b, a_mask, b_mask, length_normalize)


def mean_maxsim_pairwise(a, b, a_mask=None, b_mask=None, length_normalize=True):
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
    from minisbert.kernels.maxsim import maxsim as maxsim_kernel
    from minisbert.kernels.maxsim import pack

    top_k = check_count(top_k, "top_k", 1)
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
    values, indices = running.result()
    return search_results(indices, values)
