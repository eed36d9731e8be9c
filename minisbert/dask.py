"""Corpora bigger than one machine, with Dask (dask.distributed): ``encode`` turns a dask Bag, a dask DataFrame
column or a list of texts into a lazy dask array of embeddings, one chunk per partition, in input order,
computed wherever the current distributed Client sends it (the local scheduler when there is none);
``semantic_search`` ranks a dask-array corpus chunk by chunk on the workers and merges the per-chunk top-k on
the client, giving minisbert.util.semantic_search's results.

Each worker process loads the model once and keeps it (minisbert.distributed.embedder): the task graph carries only the
model's name and the encode options, never its weights. Needs the ``dask`` extra: pip install 'minisbert[dask]'.
"""

import numpy as np

try:
    import dask
    import dask.array as da
    import dask.bag
except ImportError as error:
    raise ImportError(f"minisbert.dask needs dask: pip install 'minisbert[dask]' ({error})") from None

from minisbert.distributed.embedder import Embedder
from minisbert.kernels.similarity import as_embedding_matrix
from minisbert.kernels.topk import merge_top_k
from minisbert.util._search import check_count, search_results, top_k_scores
from minisbert.util.similarity import cos_sim

__all__ = ["encode", "semantic_search"]

LIST_PARTITION_SIZE = 10_000  # texts per chunk when the input is a list (a Bag or DataFrame has its own partitions)


def text_partitions(texts):
    """The input's partitions as delayed lists / Series of texts, and their lengths (NaN when unknown)."""
    if isinstance(texts, dask.bag.Bag):
        partitions = texts.to_delayed()
        return partitions, [np.nan] * len(partitions)
    if hasattr(texts, "to_delayed") and hasattr(texts, "npartitions"):  # a dask DataFrame or Series
        if texts.ndim != 1:
            raise TypeError(f"encode() takes one column of texts, e.g. frame['text'], not a DataFrame of columns "
                            f"{list(texts.columns)}")
        if texts.dtype.kind not in "OUT" and str(texts.dtype) not in ("string", "str"):
            raise TypeError(f"encode() takes a column of strings, got a column of dtype {texts.dtype}")
        partitions = texts.to_delayed()
        return partitions, [np.nan] * len(partitions)
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"encode() takes a dask Bag, a dask DataFrame column or a list of strings, got {texts!r:.60}")
    texts = list(texts)
    starts = range(0, len(texts), LIST_PARTITION_SIZE)
    partitions = [texts[start : start + LIST_PARTITION_SIZE] for start in starts]
    return partitions, [len(partition) for partition in partitions]


def encode(texts, model=None, batch_size=32, normalize_embeddings=False, **encode_options):
    """A lazy dask array (n, dim) of the texts' embeddings, one chunk per partition (a list: 10,000 texts a
    chunk), in input order; float32 (int8 / uint8 packed bits for precision "binary" / "ubinary").

    texts: a dask.bag.Bag of strings, a dask DataFrame column of strings, or a list / iterable of strings.
    model: a model name or folder (default all-MiniLM-L6-v2), loaded once in each worker process.
    encode_options: prompt, prompt_name, truncate_dim, precision, as SentenceTransformer.encode takes them.
    Chunk lengths of a Bag or DataFrame column are unknown until computed (NaN, as dask gives them); call
    .compute_chunk_sizes() on the result to learn them."""
    embedder = Embedder(model, batch_size=batch_size, normalize_embeddings=normalize_embeddings, **encode_options)
    empty = embedder.encode([])  # (0, dim): loads the model here once and checks the options before any task runs
    partitions, lengths = text_partitions(texts)
    encode_partition = dask.delayed(embedder, pure=True)
    blocks = [
        da.from_delayed(encode_partition(partition), shape=(length, empty.shape[1]), dtype=empty.dtype)
        for partition, length in zip(partitions, lengths)
    ]
    return da.concatenate(blocks) if blocks else da.from_array(empty)


def chunk_top_k(queries, corpus_chunk, top_k, score_function):
    """One corpus chunk's top_k for every query: values, chunk-local indices (queries, min(top_k, rows)), rows."""
    values, indices = top_k_scores(
        queries, corpus_chunk, corpus_chunk_size=max(len(corpus_chunk), 1), top_k=top_k, score_function=score_function
    )
    return values, indices, len(corpus_chunk)


def semantic_search(query_embeddings, corpus_embeddings, top_k=10, score_function=cos_sim):
    """minisbert.util.semantic_search over a dask-array corpus (n, dim), chunked along rows: every chunk's top_k
    is found on the workers, the client merges them. The same hits in the same order (equal scores by smaller
    corpus_id): for every query, a list of {"corpus_id": int, "score": float}, best first."""
    if isinstance(query_embeddings, da.Array):
        query_embeddings = query_embeddings.compute()
    queries = as_embedding_matrix(query_embeddings, "query_embeddings")  # (queries, dim)
    top_k = check_count(top_k, "top_k", 0)
    corpus = corpus_embeddings if isinstance(corpus_embeddings, da.Array) else da.asarray(corpus_embeddings)
    if corpus.ndim != 2 or corpus.shape[1] != queries.shape[1]:
        raise ValueError(
            f"corpus_embeddings must be (rows, {queries.shape[1]}) like the queries, got shape {corpus.shape}"
        )
    chunks = corpus.rechunk({1: -1}).to_delayed()[:, 0]  # one delayed (rows, dim) block per row chunk
    queries_node = dask.delayed(queries, pure=True)  # sent once, shared by every chunk's task
    top_of_chunk = dask.delayed(chunk_top_k, pure=True)
    results = dask.compute(*[top_of_chunk(queries_node, chunk, top_k, score_function) for chunk in chunks])
    offsets = np.cumsum([0] + [rows for _, _, rows in results])  # each chunk's first corpus row
    values = np.concatenate([values for values, _, _ in results], axis=1)  # (queries, candidates)
    indices = np.concatenate([indices + offset for (_, indices, _), offset in zip(results, offsets)], axis=1)
    values, indices = merge_top_k(values, indices, top_k)
    return search_results(indices, values)
