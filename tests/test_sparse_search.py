"""The sparse encoder's search and similarity API around kernels/sparse.py: top_k and vocabulary checks, a prebuilt
inverted index giving the same hits. The kernels against their scipy references, on odd shapes and ties: in
tests/test_kernels.py."""

import numpy as np
import pytest

from test_kernels import random_csr

scipy_sparse = pytest.importorskip("scipy.sparse")


def test_sparse_search_api_checks_top_k_and_vocabulary():
    from minisbert.families.sparse_encoder import sparse_search as search

    queries, corpus = random_csr(2, 30, 0.2, 7), random_csr(5, 30, 0.2, 8)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        search(queries, corpus, top_k=0)
    with pytest.raises(ValueError, match="30 dimensions but corpus embeddings have 31"):
        search(queries, random_csr(5, 31, 0.2, 8), top_k=2)
    hits = search(queries, corpus, top_k=3)
    assert [len(row) for row in hits] == [3, 3] and set(hits[0][0]) == {"corpus_id", "score"}


def test_a_prebuilt_inverted_index_gives_the_same_hits():
    from minisbert.families.sparse_encoder import inverted_index, sparse_search

    queries, corpus = random_csr(4, 300, 0.05, 9), random_csr(60, 300, 0.05, 10, empty_rows=[0, 7])
    index = inverted_index(corpus)
    assert index.format == "csc" and index.shape == corpus.shape
    assert sparse_search(queries, index, top_k=7) == sparse_search(queries, corpus, top_k=7)
    assert sparse_search(queries, corpus.toarray(), top_k=7) == sparse_search(queries, corpus, top_k=7)
