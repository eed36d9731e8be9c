"""kernels/matmul.py's promises beyond agreeing with its references (every GEMM variant against matmul_reference
and the int8 kernels exactly against theirs, on odd shapes: tests/test_kernels.py): the packed layout, errors
that name a bad operand, int32 sums that cannot overflow, int8 close to float32, the instructions the kernels
compile to, and the thread pool in a forked child."""

import multiprocessing
import os
import platform

import llvmlite.binding
import numpy as np
import pytest
from minisbert.kernels import matmul

RNG = np.random.default_rng(0)


def float_case(rows, inner, tokens):
    weight = RNG.standard_normal((rows, inner)).astype(np.float32)
    return weight, RNG.standard_normal((inner, tokens)).astype(np.float32)


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


def test_int8_matmul_does_not_overflow_at_its_longest_extreme_sum():
    inner = matmul.INT8_MAX_INNER  # 127 * 2047 * 8260 = 2.147e9, just below 2^31
    weight, x_rows = np.full((4, inner), -127, np.int8), np.full((5, inner), -2047, np.int16)
    out = matmul.int8_matmul(weight, x_rows, np.empty((4, 5), np.int32))
    assert (out == 127 * 2047 * inner).all()


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
