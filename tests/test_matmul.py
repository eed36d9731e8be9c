"""kernels/matmul.py: every GEMM variant against matmul_reference, and the int8 kernels against their NumPy
references exactly (integer math), on odd shapes: one token, no tokens, sizes that are not multiples of the
4 x 4 register block or of the 16-float padding, more threads than row blocks."""

import multiprocessing
import os
import platform

import llvmlite.binding
import numpy as np
import pytest
from minisbert.kernels import matmul

RNG = np.random.default_rng(0)
# (out, in, tokens): layer shapes of all-MiniLM-L6-v2 / a base model, and odd ones
SHAPES = [(1, 1, 1), (5, 7, 3), (13, 33, 9), (4, 16, 0), (1152, 384, 1), (384, 1536, 23), (2304, 768, 5), (7, 100, 17)]


def float_case(rows, inner, tokens):
    weight = RNG.standard_normal((rows, inner)).astype(np.float32)
    return weight, RNG.standard_normal((inner, tokens)).astype(np.float32)


VARIANTS = {
    "1_naive": lambda weight, x, out: matmul.matmul_1_naive(weight, x, out),
    "2_register_blocked": lambda weight, x, out: matmul.matmul_2_register_blocked(weight, x, out),
    "3_packed": lambda weight, x, out: matmul.matmul_3_packed(matmul.pack_weight(weight), x, out),
    "4_threaded_2": lambda weight, x, out: matmul.matmul_4_threaded(matmul.pack_weight(weight), x, out, threads=2),
    "4_threaded_3": lambda weight, x, out: matmul.matmul_4_threaded(matmul.pack_weight(weight), x, out, threads=3),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gemm_variant_matches_reference(variant, shape):
    weight, x = float_case(*shape)
    out = np.full((shape[0], shape[2]), np.nan, np.float32)
    result = VARIANTS[variant](weight, x, out)
    assert result is out
    # float32 sums in another order (SIMD lanes) than the float64 reference: the error of a sum of n products
    # is bounded by n * 6e-8 * sum |products| and is ~sqrt(n) * 6e-8 of it in practice; 1e-6 of sum |products|
    # holds for in <= 1536 with a margin, and fails on any wrong element or missing term (relative error ~1)
    scale = np.abs(weight).astype(np.float64) @ np.abs(x).astype(np.float64)
    assert np.all(np.abs(result - matmul.matmul_reference(weight, x)) <= 1e-6 * scale + 1e-30)


@pytest.mark.parametrize("variant", ["2_register_blocked", "3_packed", "4_threaded_2"])
def test_gemm_variant_reads_float64_and_non_contiguous_inputs(variant):
    weight = RNG.standard_normal((9, 40))
    x = RNG.standard_normal((80, 14))[::2, ::2]  # (40, 7), strided, float64
    out = VARIANTS[variant](weight, x, np.empty((9, 7), np.float32))
    np.testing.assert_allclose(out, matmul.matmul_reference(weight, x), rtol=1e-5, atol=1e-5)


def test_packed_weight_is_aligned_zero_padded_and_keeps_the_shape():
    weight = RNG.standard_normal((6, 20)).astype(np.float32)
    packed = matmul.pack_weight(weight)
    assert packed["shape"] == (6, 20)
    assert packed["weight"].shape == (8, 32) and packed["weight"].ctypes.data % 64 == 0
    np.testing.assert_array_equal(packed["weight"][:6, :20], weight)
    assert not packed["weight"][6:].any() and not packed["weight"][:, 20:].any()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: matmul.matmul_3_packed(matmul.pack_weight(np.zeros((4, 8))), np.zeros((7, 2)), None), "x must"),
        (lambda: matmul.matmul_2_register_blocked(np.zeros((4, 8)), np.zeros((8, 2)), np.zeros((4, 3))), "out must"),
        (lambda: matmul.matmul_1_naive(np.zeros((4, 8)), np.zeros((8, 2)), np.zeros((4, 2))), "float64"),
        (lambda: matmul.pack_weight(np.zeros(8)), "expects a \\(out, in\\)"),
        (lambda: matmul.quantize_weight(np.zeros((1, matmul.INT8_MAX_INNER + 1))), "overflow"),
    ],
)
def test_bad_operands_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_int8_matmul_is_exact(shape, threads):
    rows, inner, tokens = shape
    weight = RNG.integers(-127, 128, (rows, inner)).astype(np.int8)
    x_rows = RNG.integers(-2047, 2048, (tokens, inner)).astype(np.int16)
    weight[:, :1], x_rows[:, :1] = -127, 2047  # the extremes, whose products are largest
    out = np.empty((rows, tokens), np.int32)
    matmul.int8_matmul(weight, x_rows, out, threads=threads)
    np.testing.assert_array_equal(out, matmul.int8_matmul_reference(weight, x_rows))


def test_int8_matmul_does_not_overflow_at_its_longest_extreme_sum():
    inner = matmul.INT8_MAX_INNER  # 127 * 2047 * 8260 = 2.147e9, just below 2^31
    weight, x_rows = np.full((4, inner), -127, np.int8), np.full((5, inner), -2047, np.int16)
    out = matmul.int8_matmul(weight, x_rows, np.empty((4, 5), np.int32))
    assert (out == 127 * 2047 * inner).all()


@pytest.mark.parametrize("shape", [(5, 1), (384, 23), (1536, 3), (7, 0)], ids=str)
def test_token_quantization_matches_reference_exactly(shape):
    x = (RNG.standard_normal(shape) * RNG.uniform(0.01, 10, shape[1])).astype(np.float32)
    if shape[1]:
        x[:, 0] = 0  # a column of zeros: scale 1, all zeros
    expected_rows, expected_scales = matmul.quantize_tokens_reference(x)
    x_rows, scales = np.zeros((shape[1], shape[0]), np.int16), np.empty(shape[1], np.float32)
    matmul._quantize_tokens(x, x_rows, scales)
    np.testing.assert_array_equal(x_rows, expected_rows)
    np.testing.assert_array_equal(scales, expected_scales)
    assert np.abs(x_rows).max(initial=0) <= matmul.ACTIVATION_LEVELS


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_int8_linear_matches_reference_exactly(shape, threads):
    weight, x = float_case(*shape)
    out = matmul.int8_linear(matmul.quantize_weight(weight), x, np.empty((shape[0], shape[2]), np.float32), threads)
    np.testing.assert_array_equal(out, matmul.int8_linear_reference(weight, x))


def test_int8_linear_is_close_to_float():
    # int8 weight rows (steps of max|row| / 127) and 12-bit tokens: each output within 1% of the largest
    weight, x = float_case(1536, 384, 23)
    out = matmul.int8_linear(matmul.quantize_weight(weight), x, np.empty((1536, 23), np.float32))
    exact = matmul.matmul_reference(weight, x)
    assert np.abs(out - exact).max() <= 0.01 * np.abs(exact).max()


def test_quantized_weight_rows_round_trip_within_half_a_step():
    weight = RNG.standard_normal((10, 50)).astype(np.float32)
    weight[3] = 0  # a row of zeros: scale 1
    quantized = matmul.quantize_weight(weight)
    restored = quantized["weight"][:10, :50] * quantized["scales"][:, None]
    assert np.all(np.abs(restored - weight) <= quantized["scales"][:, None] / 2 * (1 + 1e-6))
    assert quantized["scales"][3] == 1 and not quantized["weight"][3].any()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction names")
def test_compiled_instructions_finds_the_vector_instructions():
    features = llvmlite.binding.get_host_cpu_features()
    report = matmul.compiled_instructions()
    assert set(report) == {"fp32 micro-kernel", "int8 micro-kernel"}
    assert report["fp32 micro-kernel"]["registers"] in ("512-bit", "256-bit")
    if features.get("fma"):
        assert report["fp32 micro-kernel"]["vfmadd"] > 0
    if features.get("avx2"):  # int16 products summed in int32 lanes: vpmaddwd, or VNNI's vpdpwssd
        assert report["int8 micro-kernel"]["vpmaddwd"] + report["int8 micro-kernel"]["vpdpwssd"] > 0


def threaded_product_in_child(weight, x):
    return matmul.matmul_4_threaded(matmul.pack_weight(weight), x, np.empty((len(weight), x.shape[1]), np.float32), 2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_threaded_gemm_works_in_a_forked_child_of_a_process_that_used_it():
    # a forked child inherits the parent's pool object but none of its worker threads: without the pool being
    # forgotten at fork, the child's first threaded product would wait forever for a worker
    weight, x = float_case(37, 50, 6)
    expected = threaded_product_in_child(weight, x)  # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(1) as children:
        result = children.apply_async(threaded_product_in_child, (weight, x)).get(timeout=120)
    np.testing.assert_array_equal(result, expected)
