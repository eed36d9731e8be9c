"""Search over dense embeddings, as sentence_transformers.util.retrieval offers it, without torch:
semantic_search (the top_k corpus rows of each query, chunk by chunk, in bounded memory), paraphrase mining (the
most similar pairs among the rows) and community detection (clusters around central rows), with
sentence-transformers' arguments and return structures. Imports the kernels, minisbert.util.similarity and the
private minisbert.util._search.
"""

import heapq

import numpy as np

from minisbert.kernels.similarity import as_embedding_matrix, normalize_rows
from minisbert.util._search import check_count, search_results, top_k_scores
from minisbert.util.similarity import cos_sim

__all__ = ["semantic_search", "paraphrase_mining", "paraphrase_mining_embeddings", "community_detection"]


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
    if not isinstance(threshold, (int, float, np.number)) or np.isnan(threshold):
        raise ValueError(f"threshold must be a number, got {threshold!r:.40}")
    if len(embeddings) == 0:
        return []
    embeddings = normalize_rows(embeddings)  # (n, dim)
    if not np.isfinite(embeddings).all():  # NaN is close to nothing: its rows would vanish from every community
        raise ValueError(f"community_detection needs finite embeddings; row "
                         f"{np.argwhere(~np.isfinite(embeddings))[0][0]} holds NaN or inf")
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
