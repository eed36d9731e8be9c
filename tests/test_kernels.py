"""Every numba kernel in minisbert.kernels against the plain reference beside it (llm.c's "validate"): one
parametrized test runs each (kernel, reference) pair of the table below on that pair's odd cases (one row, zero
rows, one-token and empty sequences, k above the number of columns, ties, float64, non-contiguous views, sizes
that are not multiples of a kernel's blocks, more threads than row blocks) and compares the two results as the
pair states: exactly where the arithmetic is exact (integers, selection), else within a tolerance whose reason is
given beside it. The kernels' other promises (errors that name a bad argument, in-place writes, accuracy bounds,
thread pools) are tested in test_fast_kernels.py, test_matmul.py, test_search_kernels.py and test_maxsim.py;
test_retrieval_kernel_properties.py draws further shapes with hypothesis for the sparse and MaxSim kernels."""

import functools
import math
from dataclasses import dataclass

import numpy as np
import pytest

from minisbert.kernels import activations, adamw, attention, embedding, gated_activation, hamming, matmul, maxsim
from minisbert.kernels import normalization, pooling, rescore, rms_norm, rotary, similarity, sparse, topk


@dataclass
class Pair:
    """A kernel and its reference, called alike on each case's inputs, and how their results must compare."""

    name: str
    kernel: object  # (*inputs) -> result
    reference: object  # (*inputs) -> result
    cases: dict  # case name -> make(rng) -> inputs (a tuple), or (make, check) for a case with its own check
    check: object = None  # check(actual, expected, inputs): raises if they do not agree


def same(actual, expected, inputs=None):
    """Equal shapes and values, element for element (a tuple of arrays: each)."""
    if isinstance(expected, tuple):
        assert len(actual) == len(expected)
        for actual_part, expected_part in zip(actual, expected):
            same(actual_part, expected_part)
        return
    assert np.shape(actual) == np.shape(expected)
    np.testing.assert_array_equal(actual, expected)


def close(rtol, atol, same_dtype=False):
    def check(actual, expected, inputs=None):
        assert np.shape(actual) == np.shape(expected)
        if same_dtype:
            assert actual.dtype == expected.dtype
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)

    return check


def float32_tolerance(dtype):
    # The fast GELU's erf is accurate to float32 (4.5e-7) even in float64; sums are reordered (SIMD lanes).
    return 2e-6 if dtype == np.float32 else 1e-6


# --- similarity: row normalisation and distances -----------------------------------------------------------------


def random_matrix(rng, rows, dim=16, dtype=np.float32):
    return rng.standard_normal((rows, dim)).astype(dtype)


ODD_EMBEDDINGS = {  # name -> make(rng) -> (a, b)
    "ordinary": lambda rng: (random_matrix(rng, 5), random_matrix(rng, 7)),
    "one row": lambda rng: (random_matrix(rng, 1), random_matrix(rng, 1)),
    "zero rows": lambda rng: (random_matrix(rng, 0), random_matrix(rng, 3)),
    "non-contiguous": lambda rng: (random_matrix(rng, 6, 32)[:, ::2], random_matrix(rng, 4, 32)[::-1, 1::2]),
    "float64": lambda rng: (random_matrix(rng, 3, dtype=np.float64), random_matrix(rng, 2, dtype=np.float64)),
    "zero vector": lambda rng: (np.zeros((2, 16), np.float32), random_matrix(rng, 2)),
}


def keeps_dtype(check):
    """check, after asserting that the kernel's result has its first input's dtype."""

    def checked(actual, expected, inputs):
        assert actual.dtype == inputs[0].dtype
        check(actual, expected, inputs)

    return checked


SIMILARITY_PAIRS = [
    Pair(
        "normalize_rows",
        similarity.normalize_rows,
        similarity.normalize_rows_reference,
        {
            **{name: (lambda make: lambda rng: make(rng)[:1])(make) for name, make in ODD_EMBEDDINGS.items()},
            "reversed view": lambda rng: (random_matrix(rng, 4, 32)[::-1, 1::2],),
        },
        keeps_dtype(close(1e-6, 1e-6)),  # one float32 sum of squares per row, then one multiply
    ),
    Pair(
        "negative_euclidean_distance",
        similarity.negative_euclidean_distance,
        similarity.negative_euclidean_distance_reference,
        ODD_EMBEDDINGS,
        keeps_dtype(close(1e-5, 1e-5)),  # float32 sums in another order
    ),
    Pair(
        "negative_manhattan_distance",
        similarity.negative_manhattan_distance,
        similarity.negative_manhattan_distance_reference,
        ODD_EMBEDDINGS,
        keeps_dtype(close(1e-5, 1e-5)),
    ),
]


# --- pooling -------------------------------------------------------------------------------------------------


def token_batch(rng):
    """(4, 9, 16) token embeddings and a mask of lengths 9, 1, 5 and 0 (a row of padding only)."""
    token_embeddings = rng.standard_normal((4, 9, 16)).astype(np.float32)
    mask = (np.arange(9)[None, :] < np.array([9, 1, 5, 0])[:, None]).astype(np.int64)
    return token_embeddings, mask


def sliced(rows=slice(None), features=slice(None), dtype=None):
    def make(rng):
        token_embeddings, mask = token_batch(rng)
        token_embeddings = token_embeddings[rows, :, features]  # a view: non-contiguous when features is strided
        return (token_embeddings if dtype is None else token_embeddings.astype(dtype)), mask[rows]

    return make


POOLING_PAIRS = [
    Pair(
        "mean_pool",
        pooling.mean_pool,
        pooling.mean_pool_reference,
        {
            "mixed lengths and an empty row": sliced(),
            "one row": sliced(rows=slice(1)),
            "zero rows": sliced(rows=slice(0)),
            "non-contiguous": sliced(features=slice(None, None, 2)),
            "float64": sliced(dtype=np.float64),
        },
        keeps_dtype(close(1e-6, 1e-6)),
    ),
]


# --- top-k, Hamming top-k, rescoring -----------------------------------------------------------------------------


def normal_scores(shape, k):
    return lambda rng: (rng.standard_normal(shape).astype(np.float32), k)


def top_k_in_chunks(scores, k, rows=6, columns=17):
    """RunningTopK fed blocks of `rows` rows and `columns` columns, the columns in increasing order."""
    running = topk.RunningTopK(len(scores), k, scores.dtype)
    for start in range(0, scores.shape[1], columns):
        for first_row in range(0, len(scores), rows):
            running.update(scores[first_row : first_row + rows, start : start + columns], start, first_row=first_row)
    return running.result()


def hamming_top_k(queries, corpus, k, corpus_chunk=None, query_chunk=None):
    """hamming_top_k_update over chunks of the corpus and of the queries (default: one chunk of each)."""
    running = topk.RunningTopK(len(queries), k, np.int64)
    query_words, corpus_words = hamming.as_words(queries), hamming.as_words(corpus)
    corpus_chunk, query_chunk = corpus_chunk or max(len(corpus), 1), query_chunk or max(len(queries), 1)
    for column in range(0, len(corpus), corpus_chunk):
        for row in range(0, max(len(queries), 1), query_chunk):  # one (empty) update for zero queries
            hamming.hamming_top_k_update(
                running,
                query_words[row : row + query_chunk],
                corpus_words[column : column + corpus_chunk],
                column,
                first_row=row,
            )
    return running.result()


def packed_bits(queries, corpus, width, k):
    def make(rng):
        packed_queries = rng.integers(0, 256, size=(queries, width), dtype=np.uint8)
        return packed_queries, rng.integers(0, 256, size=(corpus, width), dtype=np.uint8), k

    return make


def candidates(queries, count, dim, dtype):
    def make(rng):
        query_embeddings = rng.standard_normal((queries, dim)).astype(np.float32)
        if dtype == np.float32:
            return query_embeddings, rng.standard_normal((queries, count, dim)).astype(dtype)
        return query_embeddings, rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, (queries, count, dim), dtype)

    return make


SEARCH_PAIRS = [
    Pair(
        "top_k",
        topk.top_k,
        topk.top_k_reference,
        {
            **{f"{shape} k={k}": normal_scores(shape, k) for shape, k in [
                ((1, 1), 1), ((7, 33), 5), ((3, 4), 10), ((0, 9), 3), ((5, 0), 3), ((6, 50), 0), ((2, 1000), 50),
            ]},
            "ties ordered by index": lambda rng: (rng.integers(0, 3, size=(9, 40)).astype(np.float32), 7),
            "float64 non-contiguous": lambda rng: (rng.standard_normal((40, 31))[::3, ::2], 4),
        },
        same,
    ),
    Pair(
        "RunningTopK over chunks",
        top_k_in_chunks,
        topk.top_k_reference,
        {"ties, 11 x 203 in 6 x 17 blocks": lambda rng: (rng.integers(0, 20, size=(11, 203)).astype(np.float32), 9)},
        same,
    ),
    Pair(
        "hamming_top_k_update",
        hamming_top_k,
        hamming.hamming_top_k_reference,
        # few bits (width 1) give many equal distances: the tie order (smaller index first) is checked too
        {f"{q} queries, {c} rows, {w} bytes, k={k}": packed_bits(q, c, w, k) for q, c, w, k in [
            (1, 1, 1, 1), (5, 9, 7, 3), (4, 5000, 48, 10), (3, 6, 16, 20), (0, 8, 8, 2), (3, 0, 8, 2), (4, 30, 9, 0),
        ]},
        same,
    ),
    Pair(
        "hamming_top_k_update over chunks",
        lambda queries, corpus, k: hamming_top_k(queries, corpus, k, corpus_chunk=777, query_chunk=3),
        hamming.hamming_top_k_reference,
        {"7 queries, 5000 rows, 3 bytes, k=12": packed_bits(7, 5000, 3, 12)},
        same,
    ),
    Pair(
        "candidate_scores",
        rescore.candidate_scores,
        rescore.candidate_scores_reference,
        {
            **{f"{q}x{c}x{d} {np.dtype(dtype)}": candidates(q, c, d, dtype) for q, c, d, dtype in [
                (1, 1, 1, np.uint8), (5, 40, 384, np.uint8), (3, 7, 37, np.int8), (2, 0, 8, np.int8),
                (4, 5, 16, np.float32),
            ]},
            "non-contiguous float64 queries, 0/1 candidates": (
                lambda rng: (rng.standard_normal((6, 20))[::2], rng.integers(0, 2, (3, 9, 20), dtype=np.uint8)[:, ::3]),
                close(1e-12, 0),
            ),
        },
        close(1e-12, 1e-9),  # float64 sums in the same order: rounding only
    ),
]


# --- sparse: inverted-index scoring and search (scipy references) -----------------------------------------------


def random_csr(rows, vocab, density, seed, dtype=np.float32, integer=False, empty_rows=(), single_rows=()):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(seed)
    dense = rng.random((rows, vocab)) * (rng.random((rows, vocab)) < density)
    if integer:
        dense = np.ceil(dense * 3)
    for row in empty_rows:
        dense[row] = 0
    for row in single_rows:
        dense[row] = 0
        dense[row, rng.integers(vocab)] = 1 + rng.integers(3)
    return scipy_sparse.csr_array(dense.astype(dtype))


def kernel_arguments(queries, corpus):
    """CSR queries and a CSR corpus -> the kernels' arguments: query arrays, posting lists (CSC), corpus size."""
    postings = corpus.tocsc()
    return (queries.indptr, queries.indices, queries.data, postings.indptr, postings.indices, postings.data,
            corpus.shape[0])


SPARSE_SHAPES = [  # (queries, corpus, vocab, density)
    (5, 40, 300, 0.05),
    (1, 1, 7, 0.5),
    (0, 10, 50, 0.1),
    (4, 0, 50, 0.1),
    (3, 2, 50, 0.3),
    (17, 200, 1000, 0.01),
]


def sparse_dot_case(shape, dtype):
    def make(rng):
        n, m, vocab, density = shape
        queries = random_csr(n, vocab, density, 1, dtype, empty_rows=range(0, n, 3), single_rows=range(1, n, 4))
        corpus = random_csr(m, vocab, density, 2, dtype, empty_rows=range(0, m, 5), single_rows=range(2, m, 7))
        return queries, corpus

    return make, close(1e-6 if dtype == np.float32 else 1e-12, 1e-6, same_dtype=True)


def sparse_ties_case(shape, k):
    # small integer weights: every sum exact, many scores equal; the order must still be score, then index
    def make(rng):
        n, m, vocab, density = shape
        queries = random_csr(n, vocab, density, 3, integer=True, empty_rows=range(0, n, 3))
        corpus = random_csr(m, vocab, density, 4, integer=True, empty_rows=range(0, m, 5), single_rows=range(2, m, 7))
        return queries, corpus, k

    return make


def same_hits_where_not_tied_by_rounding(actual, expected, inputs):
    """Scores within float rounding; ids equal wherever the reference's neighbouring scores differ by more than
    rounding (elsewhere two documents may swap)."""
    (scores, indices), (expected_scores, expected_indices) = actual, expected
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    distinct = np.abs(np.diff(expected_scores, axis=1)) > 1e-5
    clear = np.concatenate([distinct[:, :1], distinct[:, :-1] & distinct[:, 1:], distinct[:, -1:]], axis=1)
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(indices[clear], expected_indices[clear])


def random_weights(dtype):
    return lambda rng: (
        random_csr(20, 2000, 0.01, 5, dtype), random_csr(500, 2000, 0.02, 6, dtype, empty_rows=range(0, 500, 9)), 10
    )


SPARSE_PAIRS = [
    Pair(
        "sparse_dot",
        lambda queries, corpus: sparse.sparse_dot(*kernel_arguments(queries, corpus)),
        sparse.sparse_dot_reference,
        {f"{shape} {np.dtype(dtype)}": sparse_dot_case(shape, dtype)
         for shape in SPARSE_SHAPES for dtype in (np.float32, np.float64)},
    ),
    Pair(
        "sparse_search, integer weights",
        lambda queries, corpus, k: sparse.sparse_search(*kernel_arguments(queries, corpus), k),
        sparse.sparse_search_reference,
        {f"{shape} k={k}": sparse_ties_case(shape, k) for shape in SPARSE_SHAPES for k in (1, 3, 10, 500)},
        same,
    ),
    Pair(
        "sparse_search, random weights",
        lambda queries, corpus, k: sparse.sparse_search(*kernel_arguments(queries, corpus), k),
        sparse.sparse_search_reference,
        {f"20 x 500 {np.dtype(dtype)}": random_weights(dtype) for dtype in (np.float32, np.float64)},
        same_hits_where_not_tied_by_rounding,
    ),
]


# --- MaxSim ----------------------------------------------------------------------------------------------------


def ragged_sides(query_lengths, document_lengths, pairwise=False):
    def make(rng):
        queries = [rng.standard_normal((length, 8)).astype(np.float32) for length in query_lengths]
        documents = [rng.standard_normal((length, 8)).astype(np.float32) for length in document_lengths]
        pairs = min(len(queries), len(documents))
        return (queries[:pairs], documents[:pairs]) if pairwise else (queries, documents)

    return make


MAXSIM_SIDES = [  # (query lengths, document lengths): empty documents and queries, one token, many queries
    ([3, 0, 5, 1], [4, 0, 1, 7, 2]),
    ([1], [1]),
    ([2, 2], [0, 0]),
    ([0], [3]),
    ([6] * 30, [1, 50, 0, 3] * 10),
]

MAXSIM_PAIRS = [
    Pair(
        "maxsim",
        lambda queries, documents: maxsim.maxsim(*maxsim.pack(queries), *maxsim.pack(documents)),
        maxsim.maxsim_reference,
        {f"{q} x {d}": ragged_sides(q, d) for q, d in MAXSIM_SIDES},
        close(1e-5, 1e-5),  # float32 sums in another order (1e-5 absolute where a sum cancels near 0)
    ),
    Pair(
        "maxsim_pairwise",
        lambda queries, documents: maxsim.maxsim_pairwise(*maxsim.pack(queries), *maxsim.pack(documents)),
        maxsim.maxsim_pairwise_reference,
        {f"{q} x {d}": ragged_sides(q, d, pairwise=True) for q, d in MAXSIM_SIDES},
        close(1e-5, 1e-5),
    ),
]


# --- matrix products: the numbered GEMM variants and the int8 path -------------------------------------------------

# (out, in, tokens): layer shapes of all-MiniLM-L6-v2 / a base model, and odd ones (no tokens, sizes that are not
# multiples of the 4 x 4 register block or of the 16-float padding)
GEMM_SHAPES = [(1, 1, 1), (5, 7, 3), (13, 33, 9), (4, 16, 0), (1152, 384, 1), (384, 1536, 23), (2304, 768, 5),
               (7, 100, 17)]


def float_product(rows, inner, tokens):
    return lambda rng: (
        rng.standard_normal((rows, inner)).astype(np.float32), rng.standard_normal((inner, tokens)).astype(np.float32)
    )


def into_new_out(variant):
    """variant(weight, x, out) called with a fresh (out, tokens) float32 buffer, which it must return."""

    def run(weight, x):
        out = np.full((len(weight), x.shape[1]), np.nan, np.float32)
        result = variant(weight, x, out)
        assert result is out
        return result

    return run


GEMM_VARIANTS = {
    "matmul_1_naive": matmul.matmul_1_naive,
    "matmul_2_register_blocked": matmul.matmul_2_register_blocked,
    "matmul_3_packed": lambda weight, x, out: matmul.matmul_3_packed(matmul.pack_weight(weight), x, out),
    "matmul_4_threaded, 2 threads": lambda weight, x, out: matmul.matmul_4_threaded(
        matmul.pack_weight(weight), x, out, threads=2
    ),
    "matmul_4_threaded, 3 threads": lambda weight, x, out: matmul.matmul_4_threaded(
        matmul.pack_weight(weight), x, out, threads=3
    ),
}


def within_float32_summation_error(actual, expected, inputs):
    # float32 sums in another order (SIMD lanes) than the float64 reference: the error of a sum of n products
    # is bounded by n * 6e-8 * sum |products| and is ~sqrt(n) * 6e-8 of it in practice; 1e-6 of sum |products|
    # holds for in <= 1536 with a margin, and fails on any wrong element or missing term (relative error ~1)
    weight, x = inputs
    scale = np.abs(weight).astype(np.float64) @ np.abs(x).astype(np.float64)
    assert actual.shape == expected.shape
    assert np.all(np.abs(actual - expected) <= 1e-6 * scale + 1e-30)


def float64_strided(rng):
    return rng.standard_normal((9, 40)), rng.standard_normal((80, 14))[::2, ::2]  # x (40, 7), strided, float64


GEMM_PAIRS = [
    Pair(
        name,
        into_new_out(variant),
        matmul.matmul_reference,
        {
            **{str(shape): float_product(*shape) for shape in GEMM_SHAPES},
            **({} if name == "matmul_1_naive" or name.endswith("3 threads") else {
                "float64, non-contiguous x": (float64_strided, close(1e-5, 1e-5)),
            }),
        },
        within_float32_summation_error,
    )
    for name, variant in GEMM_VARIANTS.items()
]


def int8_operands(rows, inner, tokens):
    def make(rng):
        weight = rng.integers(-127, 128, (rows, inner)).astype(np.int8)
        x_rows = rng.integers(-2047, 2048, (tokens, inner)).astype(np.int16)
        weight[:, :1], x_rows[:, :1] = -127, 2047  # the extremes, whose products are largest
        return weight, x_rows

    return make


def int8_matmul_on(threads):
    return lambda weight, x_rows: matmul.int8_matmul(
        weight, x_rows, np.empty((len(weight), len(x_rows)), np.int32), threads=threads
    )


def quantize_tokens(x):
    """matmul._quantize_tokens, the kernel int8_linear runs on its input, into fresh buffers."""
    x_rows, scales = np.zeros((x.shape[1], x.shape[0]), np.int16), np.empty(x.shape[1], np.float32)
    matmul._quantize_tokens(x, x_rows, scales)
    return x_rows, scales


def token_columns(shape):
    def make(rng):
        x = (rng.standard_normal(shape) * rng.uniform(0.01, 10, shape[1])).astype(np.float32)
        if shape[1]:
            x[:, 0] = 0  # a column of zeros: scale 1, all zeros
        return (x,)

    return make


def same_within_activation_levels(actual, expected, inputs):
    same(actual, expected)
    assert np.abs(actual[0]).max(initial=0) <= matmul.ACTIVATION_LEVELS


def int8_linear_on(threads):
    return lambda weight, x: matmul.int8_linear(
        matmul.quantize_weight(weight), x, np.empty((len(weight), x.shape[1]), np.float32), threads
    )


INT8_PAIRS = [
    *[
        Pair(f"int8_matmul, {threads} threads", int8_matmul_on(threads), matmul.int8_matmul_reference,
             {str(shape): int8_operands(*shape) for shape in GEMM_SHAPES}, same)
        for threads in (1, 2, 3)
    ],
    Pair(
        "quantize tokens",
        quantize_tokens,
        matmul.quantize_tokens_reference,
        {str(shape): token_columns(shape) for shape in [(5, 1), (384, 23), (1536, 3), (7, 0)]},
        same_within_activation_levels,
    ),
    *[
        Pair(f"int8_linear, {threads} threads", int8_linear_on(threads), matmul.int8_linear_reference,
             {str(shape): float_product(*shape) for shape in GEMM_SHAPES}, same)
        for threads in (1, 2)
    ],
]


# --- the encoder's fused kernels: GELU, residual + LayerNorm, packed attention, softmax ----------------------------


def gelu_inputs(shape, dtype):
    def make(rng):
        x = (rng.standard_normal(shape) * 3).astype(dtype)  # (features, tokens)
        return x, rng.standard_normal(shape[0]).astype(dtype)

    return make, keeps_dtype(close(0, float32_tolerance(dtype)))


def gated_inputs(shape, name, halves_of_one_matrix=False):
    def make(rng):
        if halves_of_one_matrix:  # ModernBERT: gate and up are the two halves of one (tokens, 2 features) matrix
            both = (rng.standard_normal(shape[:-1] + (2 * shape[-1],)) * 3).astype(np.float32)
            return both[..., : shape[-1]], both[..., shape[-1] :], name
        return (rng.standard_normal(shape) * 3).astype(np.float32), rng.standard_normal(shape).astype(np.float32), name

    return make


def row_norm_inputs(shape, subtract_mean, transposed=False, shifted=False):
    def make(rng):
        x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
        if transposed:  # a (..., width) view whose rows are not contiguous
            x = np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
        shift = rng.standard_normal(shape[-1]).astype(np.float32) if shifted else None
        return x, rng.standard_normal(shape[-1]).astype(np.float32), 1e-6, subtract_mean, shift

    return make


def rotary_inputs(shape, strided=False):
    def make(rng):
        batch, seq, heads, head_dim = shape
        x = rng.standard_normal((batch, seq, 2 * heads if strided else heads, head_dim)).astype(np.float32)
        angles = rng.uniform(0, 100, (seq, head_dim // 2)).astype(np.float32)
        angles = np.concatenate([angles, angles], axis=-1)
        return (x[:, :, ::2] if strided else x), np.cos(angles), np.sin(angles)

    return make


def layer_norm_inputs(shape, dtype):
    def make(rng):
        projection, residual = (rng.standard_normal(shape).astype(dtype) for _ in range(2))  # (width, tokens)
        bias, weight, norm_bias = (rng.standard_normal(shape[0]).astype(dtype) for _ in range(3))
        return projection, bias, residual, weight, norm_bias, 1e-12

    # outputs reach ~10 (random weight and bias): float32 rounding is relative, a few ulps of 1.2e-7
    return make, close(5e-7, float32_tolerance(dtype))


def strided_projection(rng):
    projection = rng.standard_normal((24, 6)).astype(np.float32)[::3, ::2]  # (8, 3) view
    residual = rng.standard_normal((8, 3)).astype(np.float32)
    bias, weight, norm_bias = (rng.standard_normal(8).astype(np.float32) for _ in range(3))
    return projection, bias, residual, weight, norm_bias, 1e-5


def packed_inputs(rng, lengths, hidden, num_heads):
    """qkv (3 * hidden, tokens), one token per column, offsets (sequences + 1,), and each token's position."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    qkv = (rng.standard_normal((3 * hidden, offsets[-1])) * 2).astype(np.float32)
    return qkv, offsets, num_heads


def with_position_bias(bias_batch):
    def make(rng):
        lengths, seq = [3, 6, 1], 8
        qkv, offsets, num_heads = packed_inputs(rng, lengths, hidden=8, num_heads=2)
        positions = np.concatenate([np.arange(length) for length in lengths]).astype(np.int64)
        position_bias = rng.standard_normal((bias_batch, 2, seq, seq)).astype(np.float32)
        return qkv, offsets, num_heads, position_bias, positions

    return make


def strided_qkv(rng):
    wide = rng.standard_normal((3 * 8, 2 * 11)).astype(np.float32)
    return wide[:, ::2], np.array([0, 4, 11]), 2  # (24, 11) view: 11 tokens, hidden 8


def softmax_columns_inputs(shape):
    def make(rng):
        return (rng.standard_normal(shape) * 30).astype(np.float32), 5.5  # exp underflows too

    return make


def in_place(kernel, argument):
    """kernel, which writes its result into inputs[argument], called on a copy of that input."""

    def run(*inputs):
        inputs = list(inputs)
        inputs[argument] = inputs[argument].copy()
        return kernel(*inputs)

    return run


ENCODER_PAIRS = [
    Pair(
        "row_norm",
        rms_norm.row_norm,
        rms_norm.row_norm_reference,
        {
            **{f"{shape}, subtract mean {subtract}": row_norm_inputs(shape, subtract)
               for shape in [(1, 1), (0, 5), (7, 3), (1, 9, 1024), (2, 3, 5, 128)] for subtract in (False, True)},
            "rows not contiguous": row_norm_inputs((4, 37), True, transposed=True),
            **{f"{shape}, with a shift (LayerNorm's bias)": row_norm_inputs(shape, True, shifted=True)
               for shape in [(1, 1), (0, 5), (2, 76, 384)]},
        },
        # float64 sums against NumPy's float32 pairwise ones: a few float32 ulp of values up to ~15 / 0.3
        close(2e-6, 2e-6),
    ),
    Pair(
        "rotary_heads",
        rotary.rotary_heads,
        rotary.rotary_heads_reference,
        {
            **{str(shape): rotary_inputs(shape) for shape in [(1, 1, 1, 2), (1, 0, 3, 4), (2, 5, 3, 8), (1, 40, 8, 128)]},
            "heads a strided view": rotary_inputs((1, 6, 3, 16), strided=True),
        },
        same,  # each element: the reference's two products and one sum, in its order (no fused multiply-add)
    ),
    Pair(
        "gated_activation",
        in_place(gated_activation.gated_activation, 0),
        gated_activation.gated_activation_reference,
        {
            **{f"{name} {shape}": gated_inputs(shape, name)
               for name in gated_activation.ACTIVATION_CODES for shape in [(1, 1), (0, 5), (7, 3), (2, 45, 1152)]},
            **{f"{name}, halves of one matrix": gated_inputs((1, 33, 67), name, halves_of_one_matrix=True)
               for name in ("gelu", "silu")},
        },
        # the rational erf and tanh are accurate to a few float32 ulp (4.5e-7, 3.9e-7): the activation to
        # 0.5 |gate| times that, here |gate| up to ~15 and |up| up to ~4
        close(1e-6, 1.5e-5),
    ),
    Pair(
        "bias_gelu",
        in_place(activations.bias_gelu, 0),
        activations.bias_gelu_reference,
        {f"{shape} {np.dtype(dtype)}": gelu_inputs(shape, dtype)
         for shape in [(1, 1), (0, 5), (5, 0), (7, 3), (1536, 64)] for dtype in (np.float32, np.float64)},
    ),
    Pair(
        "bias_residual_layer_norm",
        in_place(normalization.bias_residual_layer_norm, 2),
        normalization.bias_residual_layer_norm_reference,
        {
            **{f"{shape} {np.dtype(dtype)}": layer_norm_inputs(shape, dtype)
               for shape in [(7, 1), (4, 0), (384, 5), (384, 333)] for dtype in (np.float32, np.float64)},
            "non-contiguous projection": (strided_projection, close(0, 2e-6)),
        },
    ),
    Pair(
        "packed_attention",
        attention.packed_attention,
        attention.packed_attention_reference,
        {
            **{f"lengths {lengths}": (lambda lengths: lambda rng: packed_inputs(rng, lengths, 12, 3))(lengths)
               for lengths in [[1], [0, 3], [5, 1, 0, 17], [40, 2], [300]]},
            "non-contiguous qkv": strided_qkv,
            "position bias, one for all sequences": with_position_bias(1),
            "position bias, one per sequence": with_position_bias(3),
        },
        # both sides in float32, summing a column's 300 keys in other orders: 1e-6 relative apart on values up to
        # ~3.5 (against a float64 reference both are off by up to 8e-6, the kernel no more than NumPy's version)
        close(1e-6, float32_tolerance(np.float32)),
    ),
    Pair(
        "softmax_columns",
        in_place(attention.softmax_columns, 0),
        attention.softmax_columns_reference,
        {str(shape): softmax_columns_inputs(shape)
         for shape in [(1, 1, 1), (3, 7, 2), (2, 1, 5), (1, 33, 0), (12, 76, 76)]},
        # the kernel multiplies by 1 / divisor: an ulp of a score of ~20 (2e-6) becomes a relative error of exp
        close(5e-6, 1e-12),
    ),
]


# --- training: the AdamW update ----------------------------------------------------------------------------------


def layer_norm_backward_inputs(shape, dtype):
    def make(rng):
        d_out, x = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
        return d_out, x * 3 + 1, rng.standard_normal(shape[1]).astype(dtype), 1e-12

    def check(actual, expected, inputs):
        # the kernel sums in float64, the reference in the inputs' dtype: float32's parameter gradients are
        # sums over up to 700 tokens of terms up to ~10 (each rounded at 6e-8 relative)
        for part, (mine, theirs) in enumerate(zip(actual, expected)):
            assert mine.dtype == dtype and mine.shape == theirs.shape, part
            np.testing.assert_allclose(mine, theirs, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=2e-4 if dtype == np.float32 else 1e-12)

    return make, check


def updated_copies(update):
    """update(param, grad, m, v, *scalars), which writes param, m and v in place, called on copies of them ->
    (param, m, v). Keeps update's name and module (the table's check reads the module)."""

    @functools.wraps(update)
    def run(param, grad, m, v, *scalars):
        param, m, v = param.copy(), m.copy(), v.copy()
        update(param, grad, m, v, *scalars)
        return param, m, v

    return run


def adamw_inputs(shape, dtype, decay_factor, rows=None, grad_scale=1.0):
    def make(rng):
        param, grad, m = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
        v = rng.random(shape).astype(dtype)
        scalars = (decay_factor, 0.9, 0.999, 1e-2 / (1 - 0.9**3), math.sqrt(1 - 0.999**3), 1e-8)
        return param, grad, m, v, *scalars, None if rows is None else np.array(rows, dtype=np.int64), grad_scale

    return make


def seen_updated(mark):
    """mark(grad, seen), which sets entries of seen in place, called on a copy of seen -> seen."""

    @functools.wraps(mark)
    def run(grad, seen):
        seen = seen.copy()
        mark(grad, seen)
        return seen

    return run


def gradient_with_zero_rows(shape, zero_rows, seen_rows):
    def make(rng):
        grad = rng.standard_normal(shape).astype(np.float32)
        grad[zero_rows] = 0
        grad.reshape(len(grad), math.prod(shape[1:]))[-1:, :-1] = 0  # the last row's last value only is non-zero
        seen = np.zeros(len(grad), dtype=bool)
        seen[seen_rows] = True
        return grad, seen

    return make


TRAINING_PAIRS = [
    Pair(
        "adamw_update",
        updated_copies(adamw.adamw_update),
        updated_copies(adamw.adamw_update_reference),
        {
            "empty": adamw_inputs((0,), np.float32, 1.0),
            "one element": adamw_inputs((1,), np.float32, 1.0),
            "7 x 3, weight decay": adamw_inputs((7, 3), np.float32, 1 - 1e-3),
            "float64, weight decay": adamw_inputs((5, 4), np.float64, 1 - 1e-3),
            "300,001 elements: split over the cores": adamw_inputs((300_001,), np.float32, 1 - 1e-3),
            "rows 0, 4, 6 of 7 x 3": adamw_inputs((7, 3), np.float32, 1.0, rows=[0, 4, 6]),
            "no rows": adamw_inputs((7, 3), np.float32, 1.0, rows=[]),
            "gradient scaled (clipping)": adamw_inputs((7, 3), np.float32, 1 - 1e-3, grad_scale=0.37),
            "rows of a scaled gradient": adamw_inputs((7, 3), np.float32, 1.0, rows=[2, 3], grad_scale=0.37),
            "rows of a 3-d float64 array": adamw_inputs((5, 2, 3), np.float64, 1 - 1e-3, rows=[1, 3]),
            "every other of 30,001 rows: split over the cores": adamw_inputs(
                (30_001, 24), np.float32, 1.0, rows=np.arange(0, 30_001, 2)),
        },
        same,  # each element sees the reference's operations in the reference's order
    ),
    Pair(
        "rows_with_gradient",
        seen_updated(adamw.rows_with_gradient),
        seen_updated(adamw.rows_with_gradient_reference),
        {
            "zero rows, one seen before": gradient_with_zero_rows((9, 5), [2, 5], [5, 6]),
            "3-d": gradient_with_zero_rows((4, 2, 3), [0], []),
            "no rows": gradient_with_zero_rows((0, 4), [], []),
        },
        same,
    ),
    Pair(
        "bias_gelu_with_derivative",
        in_place(activations.bias_gelu_with_derivative, 0),
        activations.bias_gelu_with_derivative_reference,
        {
            **{f"{shape}": (lambda shape: lambda rng: (
                (rng.standard_normal(shape) * 3).astype(np.float32), rng.standard_normal(shape[1]).astype(np.float32)
            ))(shape) for shape in [(1, 1), (0, 5), (5, 0), (3, 7), (600, 1536)]},
            # the tails: GELU' is 1 or 0 to float32 beyond |x| = 6 (where the density is clamped), 0 at x = 0
            "tails and zero": lambda rng: (np.array([[-30, -8, -6.5, -6, 0, 6, 6.5, 8, 30]], np.float32),
                                           np.zeros(9, np.float32)),
        },
        # erf (4.5e-7) and exp (2.5e-7) accurate to float32: GELU within 2e-6 for inputs up to ~15, GELU' 1e-6
        close(0, 2e-6),
    ),
    Pair(
        "layer_norm_backward",
        normalization.layer_norm_backward,
        normalization.layer_norm_backward_reference,
        {f"{shape} {np.dtype(dtype)}": layer_norm_backward_inputs(shape, dtype)
         for shape in [(1, 1), (0, 4), (5, 8), (700, 384)] for dtype in (np.float32, np.float64)},
    ),
    Pair(
        "embedding_gradient",
        embedding.embedding_gradient,
        embedding.embedding_gradient_reference,
        {
            "no tokens": lambda rng: (np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 3),
            "repeated ids": lambda rng: (rng.standard_normal((6, 5)).astype(np.float32), np.array([2, 0, 2, 2, 9, 0]), 10),
            "float64": lambda rng: (rng.standard_normal((4, 3)), np.array([1, 1, 0, 1]), 2),
            "non-contiguous, int32 ids": lambda rng: (rng.standard_normal((5, 8)).astype(np.float32)[:, ::2],
                                                      np.array([3, 1, 3, 0, 3], np.int32), 4),
            "word table": lambda rng: (rng.standard_normal((700, 384)).astype(np.float32),
                                       rng.integers(0, 30522, 700), 30522),
        },
        same,  # each row's sum in the reference's order
    ),
]


PAIRS = SIMILARITY_PAIRS + POOLING_PAIRS + SEARCH_PAIRS + SPARSE_PAIRS + MAXSIM_PAIRS + GEMM_PAIRS + INT8_PAIRS + (
    ENCODER_PAIRS + TRAINING_PAIRS
)


def cases():
    for pair in PAIRS:
        for case_name, case in pair.cases.items():
            make, check = case if isinstance(case, tuple) else (case, pair.check)
            yield pytest.param(pair, make, check, id=f"{pair.name}: {case_name}")


@pytest.mark.parametrize("pair, make, check", list(cases()))
def test_kernel_matches_its_reference(pair, make, check):
    inputs = make(np.random.default_rng(0))
    expected = pair.reference(*inputs)
    check(pair.kernel(*inputs), expected, inputs)


def test_every_kernel_module_has_a_pair_here():
    """A new kernel module joins the table above. Tested elsewhere: masked_attention (test_masked_attention.py,
    beside the padded attention of architectures/modern_layers.py that it replaces)."""
    from pathlib import Path

    import minisbert.kernels

    modules = {path.stem for path in Path(minisbert.kernels.__file__).parent.glob("*.py")} - {"__init__"}
    with_pairs = {pair.reference.__module__.rsplit(".", 1)[1] for pair in PAIRS}
    assert modules - with_pairs == {"masked_attention"}
