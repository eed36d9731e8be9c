"""Quantized embeddings, as sentence_transformers.quantization makes them: int8 / uint8 (255 buckets per dimension
between calibrated ranges) and binary / ubinary (the sign bit of each dimension, packed 8 to a byte); and binary
search: Hamming-distance top-k over packed bits, then rescoring of the candidates with the float queries.
Imports the kernels and the private minisbert.util._search.
"""

import logging

import numpy as np

from minisbert.kernels.hamming import as_words, hamming_top_k_update
from minisbert.kernels.rescore import candidate_scores
from minisbert.kernels.topk import RunningTopK
from minisbert.util._search import check_count, search_results

logger = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "check_precision", "quantize_embeddings", "unpack_bits", "semantic_search_binary"]

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def check_precision(precision):
    """precision, if quantize_embeddings supports it, else a ValueError listing the supported ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not supported; choose one of {PRECISIONS}")
    return precision


def quantization_ranges(embeddings, precision, calibration_embeddings=None):
    """(2, dim): the per-dimension minimum and maximum of calibration_embeddings, else of embeddings themselves."""
    if calibration_embeddings is None:
        if embeddings.ndim == 1 or embeddings.shape[0] == 1:
            raise ValueError(
                f"cannot compute {precision} quantization ranges from a single embedding; pass `ranges` or "
                "`calibration_embeddings` from a representative set of embeddings"
            )
        if embeddings.shape[0] < 100:
            logger.warning(
                f"Computing {precision} quantization buckets based on {len(embeddings)} embeddings. {precision} "
                "quantization is more stable with `ranges` calculated from more embeddings or a "
                "`calibration_embeddings` that can be used to calculate the buckets."
            )
        calibration_embeddings = embeddings
    calibration_embeddings = np.asarray(calibration_embeddings)
    return np.vstack((np.min(calibration_embeddings, axis=0), np.max(calibration_embeddings, axis=0)))


def quantize_embeddings(embeddings, precision, ranges=None, calibration_embeddings=None):
    """Float embeddings (n, dim) in the given precision, bit-identical to sentence-transformers:
    float32 -> float32; int8 / uint8 -> (n, dim) buckets floor((x - min) / ((max - min) / 255)), clipped to
    [0, 255] (int8 shifts them by -128); ubinary -> (n, ceil(dim / 8)) uint8 packed bits of x > 0; binary -> the
    same bytes minus 128 as int8. A list of (tokens, dim) matrices is quantized matrix by matrix with shared ranges.
    """
    check_precision(precision)
    if isinstance(embeddings, list):
        if not embeddings:
            return []
        if isinstance(embeddings[0], np.ndarray) and embeddings[0].ndim == 2:
            if precision.endswith("int8") and ranges is None:
                calibration = np.concatenate(embeddings) if calibration_embeddings is None else calibration_embeddings
                if len(calibration):
                    ranges = quantization_ranges(calibration, precision, calibration_embeddings)
            return [quantize_embeddings(matrix, precision, ranges, calibration_embeddings) for matrix in embeddings]
    embeddings = np.asarray(embeddings)
    if embeddings.dtype.kind != "f":
        raise TypeError(f"embeddings to quantize must be floats, got dtype {embeddings.dtype}")

    if embeddings.ndim == 2 and embeddings.shape[0] == 0:  # nothing to calibrate or pack
        dim = embeddings.shape[1]
        if precision.endswith("int8"):
            return np.zeros((0, dim), dtype=np.int8 if precision == "int8" else np.uint8)
        if precision.endswith("binary"):
            return np.zeros((0, (dim + 7) // 8), dtype=np.int8 if precision == "binary" else np.uint8)

    if precision == "float32":
        return embeddings.astype(np.float32)
    if precision.endswith("int8"):
        if ranges is None:
            ranges = quantization_ranges(embeddings, precision, calibration_embeddings)
        ranges = np.asarray(ranges).astype(np.float32, copy=False)
        if ranges.shape != (2, embeddings.shape[-1]):
            raise ValueError(
                f"ranges must have shape (2, {embeddings.shape[-1]}) (minimum, maximum), got {ranges.shape}"
            )
        for name, values in (("embeddings", embeddings), ("ranges", ranges)):
            if not np.isfinite(values).all():  # NaN would fall into an arbitrary bucket
                raise ValueError(f"{precision} quantization needs finite {name}; row {np.argwhere(~np.isfinite(values))[0][0]} "
                                 "holds NaN or inf")
        starts = ranges[0, :]
        steps = (ranges[1, :] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        buckets = np.clip(np.floor((embeddings - starts) / steps), 0, 255)
        return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)
    if np.isnan(embeddings).any():  # NaN > 0 is False: it would pack as a 0 bit, silently
        raise ValueError(f"{precision} quantization needs embeddings without NaN; row "
                         f"{np.argwhere(np.isnan(embeddings))[0][0]} holds NaN")
    if precision == "binary":
        return (np.packbits(embeddings > 0, axis=-1) - 128).astype(np.int8)
    return np.packbits(embeddings > 0, axis=-1)  # ubinary


def unpack_bits(packed, dim):
    """Packed binary (int8) or ubinary (uint8) embeddings (..., bytes) -> their 0/1 bits (..., dim) uint8."""
    if packed.dtype == np.int8:  # binary = ubinary - 128, which flips each byte's top bit
        packed = packed.view(np.uint8) ^ np.uint8(0x80)
    return np.unpackbits(packed, axis=-1)[..., :dim]


def semantic_search_binary(
    query_embeddings, corpus_embeddings, top_k=10, rescore=True, rescore_multiplier=2, rescore_embeddings=None
):
    """Exact binary search, as sentence-transformers' semantic_search_faiss / _usearch do with a ubinary or binary
    corpus: queries are quantized like the corpus, the top_k * rescore_multiplier nearest rows by Hamming distance
    are found by a numba popcount kernel, then (if rescore and the queries are floats) rescored by the dot product
    of the float query with each candidate's 0/1 bits, or with its row of rescore_embeddings (e.g. the int8
    corpus, as sentence-transformers' "binary search + int8 rescoring" example does), and cut to top_k.

    corpus_embeddings: (n, bytes) from quantize_embeddings(..., "ubinary") (uint8) or "binary" (int8).
    Returns per query a list of {"corpus_id", "score"}: the rescored dot product (higher is closer), or without
    rescoring the Hamming distance (lower is closer), as sentence-transformers reports them. Equal scores are
    ordered by corpus_id. Memory beyond the inputs: the top-k heaps and a few 2048-row blocks per thread."""
    corpus = np.asarray(corpus_embeddings)
    if corpus.dtype not in (np.uint8, np.int8) or corpus.ndim != 2:
        raise TypeError(
            "corpus_embeddings must be packed bits (n, bytes) from quantize_embeddings(..., 'ubinary') or "
            f"(..., 'binary'); got dtype {corpus.dtype} and shape {corpus.shape}"
        )
    precision = "ubinary" if corpus.dtype == np.uint8 else "binary"
    queries = np.asarray(query_embeddings)
    queries = queries[None, :] if queries.ndim == 1 else queries
    float_queries = queries.dtype.kind == "f"
    packed_queries = quantize_embeddings(queries, precision) if float_queries else queries
    if packed_queries.dtype != corpus.dtype or packed_queries.shape[1:] != corpus.shape[1:]:
        raise ValueError(
            f"queries ({packed_queries.dtype} {packed_queries.shape[1:]} once packed) and corpus "
            f"({corpus.dtype} {corpus.shape[1:]}) must have the same packed width and precision"
        )
    if rescore_embeddings is not None and np.shape(rescore_embeddings) != (len(corpus), queries.shape[1]):
        raise ValueError(
            f"rescore_embeddings must have one row per corpus row and the queries' {queries.shape[1]} dimensions: "
            f"expected shape {(len(corpus), queries.shape[1])}, got {np.shape(rescore_embeddings)}"
        )
    top_k = check_count(top_k, "top_k", 0)
    rescore_multiplier = check_count(rescore_multiplier, "rescore_multiplier", 1)
    rescoring = rescore and float_queries

    candidates = min(top_k * rescore_multiplier if rescoring else top_k, len(corpus))  # no more than the corpus
    running = RunningTopK(len(queries), candidates, np.int64)
    hamming_top_k_update(running, as_words(packed_queries), as_words(corpus), 0)  # (q, words), (n, words) uint64
    negative_distances, indices = running.result()  # (q, candidates), best first
    if not rescoring:
        scores = -negative_distances
    else:
        if rescore_embeddings is None:
            candidates = unpack_bits(corpus[indices], queries.shape[1])  # (q, candidates, dim) 0/1
        else:
            candidates = np.asarray(rescore_embeddings)[indices]  # (q, candidates, dim)
        rescored = candidate_scores(queries, candidates)  # (q, candidates) float64
        order = np.argsort(-rescored, axis=1, kind="stable")[:, :top_k]  # (q, top_k)
        indices, scores = np.take_along_axis(indices, order, axis=1), np.take_along_axis(rescored, order, axis=1)
    return search_results(indices, scores)
