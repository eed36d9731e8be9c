"""minisbert.util's retrieval functions (util/retrieval.py): semantic_search, paraphrase mining and community
detection against sentence_transformers.util on the same embeddings: same ids in the same order, scores within
1e-5."""

import numpy as np
import pytest
import torch
from sentence_transformers import util as reference

from minisbert import util

rng = np.random.default_rng(1)


def random_embeddings(rows, dim=24, dtype=np.float32):
    return rng.standard_normal((rows, dim)).astype(dtype)


def assert_same_hits(actual, expected):
    assert [[hit["corpus_id"] for hit in hits] for hits in actual] == [
        [hit["corpus_id"] for hit in hits] for hits in expected
    ]
    scores = [hit["score"] for hits in actual for hit in hits]
    expected_scores = [hit["score"] for hits in expected for hit in hits]
    np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "queries, corpus, query_chunk_size, corpus_chunk_size, top_k",
    [(13, 1001, 5, 77, 7), (1, 10, 100, 500000, 10), (20, 300, 7, 1000, 300), (4, 50, 3, 11, 1)],
)
def test_semantic_search_matches_sentence_transformers(queries, corpus, query_chunk_size, corpus_chunk_size, top_k):
    query_embeddings, corpus_embeddings = random_embeddings(queries), random_embeddings(corpus)
    arguments = dict(query_chunk_size=query_chunk_size, corpus_chunk_size=corpus_chunk_size, top_k=top_k)
    expected = reference.semantic_search(
        torch.from_numpy(query_embeddings), torch.from_numpy(corpus_embeddings), **arguments
    )
    assert_same_hits(util.semantic_search(query_embeddings, corpus_embeddings, **arguments), expected)


@pytest.mark.parametrize("name", ["dot_score", "euclidean_sim", "manhattan_sim"])
def test_semantic_search_with_other_score_functions(name):
    query_embeddings, corpus_embeddings = random_embeddings(6), random_embeddings(200)
    expected = reference.semantic_search(
        torch.from_numpy(query_embeddings),
        torch.from_numpy(corpus_embeddings),
        corpus_chunk_size=64,
        top_k=9,
        score_function=getattr(reference, name),
    )
    actual = util.semantic_search(
        query_embeddings, corpus_embeddings, corpus_chunk_size=64, top_k=9, score_function=getattr(util, name)
    )
    assert_same_hits(actual, expected)


def test_semantic_search_float64():
    query_embeddings, corpus_embeddings = (
        random_embeddings(3, dtype=np.float64),
        random_embeddings(90, dtype=np.float64),
    )
    expected = reference.semantic_search(torch.from_numpy(query_embeddings), torch.from_numpy(corpus_embeddings))
    assert_same_hits(util.semantic_search(query_embeddings, corpus_embeddings), expected)


def test_semantic_search_top_k_larger_than_corpus_returns_whole_corpus():
    query_embeddings, corpus_embeddings = random_embeddings(2), random_embeddings(4)
    expected = reference.semantic_search(
        torch.from_numpy(query_embeddings), torch.from_numpy(corpus_embeddings), top_k=10
    )
    actual = util.semantic_search(query_embeddings, corpus_embeddings, top_k=10)
    assert [len(hits) for hits in actual] == [4, 4]
    assert_same_hits(actual, expected)


def test_semantic_search_single_query_vector():
    query_embedding, corpus_embeddings = random_embeddings(1)[0], random_embeddings(30)
    expected = reference.semantic_search(torch.from_numpy(query_embedding), torch.from_numpy(corpus_embeddings))
    assert_same_hits(util.semantic_search(query_embedding, corpus_embeddings), expected)


@pytest.mark.parametrize("corpus", [np.empty((0, 24), dtype=np.float32), []])
def test_semantic_search_empty_corpus_gives_empty_hits(corpus):
    query_embeddings = random_embeddings(3)
    assert util.semantic_search(query_embeddings, corpus) == [[], [], []]
    assert reference.semantic_search(query_embeddings, np.empty((0, 24), dtype=np.float32)) == [[], [], []]


def test_semantic_search_mismatched_dimensions_is_an_error():
    with pytest.raises(ValueError, match="24 dimensions but corpus embeddings have 16"):
        util.semantic_search(random_embeddings(2), random_embeddings(5, dim=16))


def test_semantic_search_nan_embedding_is_an_error():
    # sentence-transformers ranks NaN scores first; minisbert names the rows instead of ranking them.
    corpus_embeddings = random_embeddings(10)
    corpus_embeddings[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"corpus \[7\]"):
        util.semantic_search(random_embeddings(2), corpus_embeddings)


def test_semantic_search_negative_top_k_is_an_error():
    with pytest.raises(ValueError, match="top_k must be at least 0"):
        util.semantic_search(random_embeddings(2), random_embeddings(5), top_k=-1)


@pytest.mark.parametrize(
    "rows, query_chunk_size, corpus_chunk_size, max_pairs, top_k",
    [(300, 50, 70, 200, 5), (40, 5000, 100000, 500000, 100)],
)
def test_paraphrase_mining_embeddings_matches_sentence_transformers(
    rows, query_chunk_size, corpus_chunk_size, max_pairs, top_k
):
    embeddings = random_embeddings(rows, dim=16)
    arguments = dict(
        query_chunk_size=query_chunk_size, corpus_chunk_size=corpus_chunk_size, max_pairs=max_pairs, top_k=top_k
    )
    expected = reference.paraphrase_mining_embeddings(torch.from_numpy(embeddings), **arguments)
    actual = util.paraphrase_mining_embeddings(embeddings, **arguments)
    assert [pair[1:] for pair in actual] == [pair[1:] for pair in expected]
    np.testing.assert_allclose([pair[0] for pair in actual], [pair[0] for pair in expected], rtol=0, atol=1e-5)


def test_paraphrase_mining_with_models(model, reference_model):
    sentences = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
        "A man is riding a horse.",
        "A woman is playing violin.",
        "Two men pushed carts through the woods.",
        "A man is riding a white horse on an enclosed ground.",
        "A monkey is playing drums.",
        "Someone in a gorilla costume is playing a set of drums.",
        "Ein Mann isst Brot. 🍞",
    ]
    expected = reference.paraphrase_mining(reference_model, sentences, top_k=3)
    actual = util.paraphrase_mining(model, sentences, top_k=3)
    assert [pair[1:] for pair in actual] == [pair[1:] for pair in expected]
    np.testing.assert_allclose([pair[0] for pair in actual], [pair[0] for pair in expected], rtol=0, atol=1e-5)


def clustered_embeddings(clusters, per_cluster, dim=16, spread=0.3):
    centers = rng.standard_normal((clusters, dim))
    points = np.concatenate([center + spread * rng.standard_normal((per_cluster, dim)) for center in centers])
    return points[rng.permutation(len(points))].astype(np.float32)


@pytest.mark.parametrize(
    "threshold, min_community_size, batch_size", [(0.8, 5, 33), (0.6, 10, 1024), (0.95, 2, 7), (0.9, 1, 50)]
)
def test_community_detection_matches_sentence_transformers(threshold, min_community_size, batch_size):
    embeddings = clustered_embeddings(clusters=6, per_cluster=30)
    arguments = dict(threshold=threshold, min_community_size=min_community_size, batch_size=batch_size)
    expected = reference.community_detection(embeddings, **arguments)
    assert util.community_detection(embeddings, **arguments) == expected


def test_community_detection_fewer_rows_than_min_size_or_empty():
    assert util.community_detection(random_embeddings(5), min_community_size=10) == []
    assert util.community_detection(np.empty((0, 8), dtype=np.float32)) == []
