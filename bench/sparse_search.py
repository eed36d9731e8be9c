"""Sparse (SPLADE-style) search over a corpus against a dense search of the same corpus: time and peak memory
above the inputs, in one run.

    .venv/bin/python bench/sparse_search.py                                   # 1,000 queries x 100,000 documents
    .venv/bin/python bench/sparse_search.py --documents 10000 --queries 100   # a quick run

Engines, each asked for the top 10 of every query:
  - minisbert.families.sparse_encoder.sparse_search: the numba inverted-index kernel (kernels/sparse.py) over the corpus as
    CSC (posting lists, built once by inverted_index and timed apart), one dense (documents,) accumulator per
    query;
  - scipy: queries @ corpus.T as a CSR product, then argpartition (the kernel's reference, done in bulk);
  - torch.sparse (sentence-transformers' sparse tensors): torch.sparse.mm, then topk, if torch is installed (on
    at most 100 of the queries: it is two orders of magnitude slower);
  - dense: minisbert.util.semantic_search on 384-d float32 embeddings of the same number of documents (what a
    bi-encoder would store for that corpus).

Data: synthetic SPLADE-like vectors over a 30,522-entry vocabulary: documents of ~120 and queries of ~25 non-zero
entries, drawn from a Zipf-like term distribution (a few terms in many documents, most in few), weights
log(1 + relu(N(1.5, 1))). Bytes: the sparse corpus holds nnz x (4 + 4) bytes (float32 weight, int32 index) plus
indptr; the dense corpus documents x 384 x 4. Work: the inverted index reads, per query, the posting lists of its
terms (sum of their lengths multiply-adds) plus one pass over the documents for the top-k; the dense search
documents x 384 multiply-adds per query.
"""

import argparse
import platform

import numpy as np
import scipy.sparse
from common import measure

from minisbert import util
from minisbert.families.sparse_encoder import inverted_index, sparse_search

VOCABULARY = 30522
DENSE_DIMENSION = 384


def splade_like(rows, active, rng):
    """(rows, VOCABULARY) csr_array float32, ~active non-zeros a row, Zipf-like term frequencies."""
    term_probability = 1.0 / np.arange(1, VOCABULARY + 1) ** 0.8
    term_probability /= term_probability.sum()
    permutation = rng.permutation(VOCABULARY)  # frequent terms scattered over the vocabulary
    counts = np.maximum(rng.poisson(active, size=rows), 1)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = permutation[rng.choice(VOCABULARY, size=indptr[-1], p=term_probability)]
    weights = np.log1p(np.maximum(rng.normal(1.5, 1.0, size=indptr[-1]), 0)).astype(np.float32) + 1e-3
    matrix = scipy.sparse.csr_array((weights, indices.astype(np.int32), indptr), shape=(rows, VOCABULARY))
    matrix.sum_duplicates()
    return matrix


def scipy_search(queries, corpus, k):
    scores = (queries @ corpus.T).toarray()  # (queries, documents)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def torch_sparse_search(queries, corpus, k):
    import torch

    def to_torch(matrix):
        coo = matrix.tocoo()
        indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        return torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data), matrix.shape).coalesce()

    query_tensor, corpus_tensor = to_torch(queries), to_torch(corpus)
    scores = torch.sparse.mm(query_tensor, corpus_tensor.t()).to_dense()
    return torch.topk(scores, k, dim=1).indices.numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--top-k", type=int, default=10)
    arguments = parser.parse_args()
    rng = np.random.default_rng(0)
    corpus = splade_like(arguments.documents, 120, rng)
    queries = splade_like(arguments.queries, 25, rng)
    dense_corpus = util.normalize_embeddings(rng.standard_normal((arguments.documents, DENSE_DIMENSION),
                                                                 dtype=np.float32))
    dense_queries = util.normalize_embeddings(rng.standard_normal((arguments.queries, DENSE_DIMENSION),
                                                                  dtype=np.float32))
    k = arguments.top_k
    sparse_search(queries[:2], corpus[:100], k)  # numba compiles (or loads its cache) outside the timing
    sparse_bytes = corpus.data.nbytes + corpus.indices.nbytes + corpus.indptr.nbytes

    print(f"{platform.processor() or platform.machine()}: {arguments.queries} queries x {arguments.documents} "
          f"documents, top {k}")
    print(f"sparse corpus: {corpus.nnz / arguments.documents:.0f} non-zeros a document, {sparse_bytes / 2**20:.1f} "
          f"MiB; dense corpus: {dense_corpus.nbytes / 2**20:.1f} MiB")
    everything = arguments.queries
    index, seconds, peak = measure(lambda: inverted_index(corpus))
    print(f"building the inverted index: {seconds:.3f} s, {peak / 2**20:.1f} MiB")
    engines = [  # (name, queries searched, function)
        ("minisbert sparse_search (inverted index)", everything, lambda: sparse_search(queries, index, k)),
        ("scipy CSR product + argpartition", everything, lambda: scipy_search(queries, corpus, k)),
        ("dense 384-d minisbert.util.semantic_search", everything,
         lambda: util.semantic_search(dense_queries, dense_corpus, top_k=k, score_function=util.dot_score)),
    ]
    try:
        import torch  # noqa: F401

        few = min(100, everything)
        engines.append(("torch.sparse.mm + topk", few, lambda: torch_sparse_search(queries[:few], corpus, k)))
    except ImportError:
        pass
    results = {}
    print(f"{'engine':48} {'queries':>8} {'seconds':>9} {'queries/s':>10} {'peak MiB':>9}")
    for name, count, function in engines:
        result, seconds, peak = measure(function)
        results[name] = result
        print(f"{name:48} {count:8} {seconds:9.3f} {count / seconds:10.1f} {peak / 2**20:9.1f}")
    found = np.array([[hit["corpus_id"] for hit in hits] for hits in results[engines[0][0]]])
    scipy_found = results[engines[1][0]]
    print(f"minisbert and scipy agree on {np.mean(found == scipy_found):.4f} of the top-{k} ids (ties aside)")


if __name__ == "__main__":
    main()
