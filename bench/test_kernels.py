"""Benchmarks of the kernels of encode's path at all-MiniLM-L6-v2's shapes for a batch of 32 sentences of
22 tokens (704 tokens; hidden 384, intermediate 1536, 12 heads), and of long texts (8 x 200 tokens) for
attention. Bytes: every array read or written once; FLOPs: multiplies and adds (an exp or erf counted as
the operations of its polynomial)."""

import numpy as np
from threadpoolctl import threadpool_limits

from minisbert.kernels.activations import bias_gelu
from minisbert.kernels.attention import packed_attention, softmax_columns
from minisbert.kernels.matmul import int8_linear, matmul_3_packed, pack_weight, quantize_weight
from minisbert.kernels.normalization import bias_residual_layer_norm
from minisbert.kernels.pooling import mean_pool
from minisbert.kernels.similarity import normalize_rows

RNG = np.random.default_rng(0)
TOKENS, HIDDEN, INTERMEDIATE, HEADS = 704, 384, 1536, 12
FLOAT = 4  # bytes


def test_sgemm_feed_forward(benchmark, report):
    # the largest matmul of a layer, for scale: weight (intermediate, hidden) @ x (hidden, tokens), OpenBLAS
    weight = RNG.standard_normal((INTERMEDIATE, HIDDEN)).astype(np.float32)
    x = RNG.standard_normal((HIDDEN, TOKENS)).astype(np.float32)
    out = np.empty((INTERMEDIATE, TOKENS), np.float32)
    benchmark(np.matmul, weight, x, out=out)
    report(
        "sgemm 1536x384 @ 384x704 (all threads)", (x.size + weight.size + out.size) * FLOAT, 2 * x.size * INTERMEDIATE
    )


def test_bias_gelu(benchmark, report):
    x = RNG.standard_normal((INTERMEDIATE, TOKENS)).astype(np.float32)
    bias = RNG.standard_normal(INTERMEDIATE).astype(np.float32)
    benchmark(bias_gelu, x, bias)  # in place; GELU of GELU... keeps values in range
    # per element: bias add, scale, x^2, 6 + 4 Horner FMAs (20), x * p, / q, 1 + erf, two products = 28
    report("bias_gelu 1536x704", (2 * x.size + bias.size) * FLOAT, 28 * x.size)


def test_bias_residual_layer_norm(benchmark, report):
    projection, residual = (RNG.standard_normal((HIDDEN, TOKENS)).astype(np.float32) for _ in range(2))
    bias, weight, norm_bias = (RNG.standard_normal(HIDDEN).astype(np.float32) for _ in range(3))
    benchmark(bias_residual_layer_norm, projection, bias, residual, weight, norm_bias, 1e-12)
    # per element: 2 adds, sum; centre, square, sum; centre, scale, weight, bias = 10
    report("bias_residual_layer_norm 384x704", 3 * residual.size * FLOAT, 10 * residual.size)


def attention_case(lengths):
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    qkv = RNG.standard_normal((3 * HIDDEN, offsets[-1])).astype(np.float32)  # one token per column
    square_sum = sum(length * length for length in lengths)
    # q k^T and p v: 2 x 2 x L^2 x head_dim per head = 4 L^2 hidden; softmax: ~20 per score per head
    flops = 4 * square_sum * HIDDEN + 20 * square_sum * HEADS
    return qkv, offsets, (qkv.size + offsets[-1] * HIDDEN) * FLOAT, flops


def test_packed_attention_short(benchmark, report):
    qkv, offsets, bytes_moved, flops = attention_case([22] * 32)
    benchmark(packed_attention, qkv, offsets, HEADS)
    report("packed_attention 32 x 22 tokens", bytes_moved, flops)


def test_packed_attention_long(benchmark, report):
    qkv, offsets, bytes_moved, flops = attention_case([200] * 8)
    benchmark(packed_attention, qkv, offsets, HEADS)
    report("packed_attention 8 x 200 tokens", bytes_moved, flops)


def test_softmax_columns_long(benchmark, report):
    # the softmax inside packed_attention for one 200-token sequence: 12 heads x 200 keys x 200 queries
    scores = RNG.standard_normal((HEADS, 200, 200)).astype(np.float32)
    benchmark(softmax_columns, scores, 5.66)  # in place: softmax of softmax, in range
    # per score: scale, maximum, subtract, range reduction (4), Taylor (7 FMAs), exponent bits (2), 2^n product,
    # sum, normalise = ~20
    report("softmax_columns 12 x 200 x 200", 2 * scores.size * FLOAT, 20 * scores.size)


def test_mean_pool(benchmark, report):
    token_embeddings = RNG.standard_normal((32, 22, HIDDEN)).astype(np.float32)
    attention_mask = np.ones((32, 22), np.int64)
    benchmark(mean_pool, token_embeddings, attention_mask)
    report("mean_pool 32x22x384", (token_embeddings.size + 32 * HIDDEN) * FLOAT, 2 * token_embeddings.size)


def test_normalize_rows(benchmark, report):
    embeddings = RNG.standard_normal((1024, HIDDEN)).astype(np.float32)
    benchmark(normalize_rows, embeddings)
    report("normalize_rows 1024x384", 2 * embeddings.size * FLOAT, 3 * embeddings.size)


# One short sentence (23 tokens) through the feed-forward's first product, one thread each: OpenBLAS repacks the
# weight on every call, the packed numba GEMM reads it as packed at load; the int8 path reads a 4x smaller weight.
SENTENCE_TOKENS = 23


def sentence_case():
    weight = RNG.standard_normal((INTERMEDIATE, HIDDEN)).astype(np.float32)
    x = RNG.standard_normal((HIDDEN, SENTENCE_TOKENS)).astype(np.float32)
    return weight, x, np.empty((INTERMEDIATE, SENTENCE_TOKENS), np.float32)


def gemm_bytes(weight_bytes):
    return weight_bytes + (HIDDEN + INTERMEDIATE) * SENTENCE_TOKENS * FLOAT


GEMM_FLOPS = 2 * INTERMEDIATE * HIDDEN * SENTENCE_TOKENS


def test_sgemm_one_sentence(benchmark, report):
    weight, x, out = sentence_case()
    with threadpool_limits(1, user_api="blas"):
        benchmark(np.matmul, weight, x, out=out)
    report("sgemm 1536x384 @ 384x23 (1 thread)", gemm_bytes(weight.size * FLOAT), GEMM_FLOPS)


def test_packed_gemm_one_sentence(benchmark, report):
    weight, x, out = sentence_case()
    packed = pack_weight(weight)
    benchmark(matmul_3_packed, packed, x, out)
    report("packed numba GEMM 1536x384 @ 384x23", gemm_bytes(weight.size * FLOAT), GEMM_FLOPS)


def test_int8_gemm_one_sentence(benchmark, report):
    weight, x, out = sentence_case()
    quantized = quantize_weight(weight)
    benchmark(int8_linear, quantized, x, out)
    report("int8 GEMM 1536x384 @ 384x23", gemm_bytes(weight.size), GEMM_FLOPS)
