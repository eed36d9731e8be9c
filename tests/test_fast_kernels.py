"""The numba kernels of the fast encoder path agree with their NumPy references: odd shapes (one row, zero
rows, one-token and empty sequences), float64, and non-contiguous inputs."""

import numpy as np
import pytest
from minisbert.kernels.activations import bias_gelu, bias_gelu_reference
from minisbert.kernels.attention import (
    packed_attention,
    packed_attention_reference,
    softmax_blocks,
    softmax_blocks_reference,
)
from minisbert.kernels.normalization import bias_residual_layer_norm, bias_residual_layer_norm_reference

RNG = np.random.default_rng(0)


def tolerance(dtype):
    # The fast GELU's erf is accurate to float32 (4.5e-7) even in float64; sums are reordered (SIMD lanes).
    return 2e-6 if dtype == np.float32 else 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (0, 5), (5, 0), (7, 3), (1536, 64)])
def test_bias_gelu_matches_reference(shape, dtype):
    x = (RNG.standard_normal(shape) * 3).astype(dtype)  # (features, tokens)
    bias = RNG.standard_normal(shape[0]).astype(dtype)
    expected = bias_gelu_reference(x, bias)
    actual = bias_gelu(x.copy(), bias)
    assert actual.dtype == dtype
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance(dtype))


def test_bias_gelu_on_a_non_contiguous_view_changes_only_the_view():
    storage = (RNG.standard_normal((6, 20)) * 3).astype(np.float32)
    bias = RNG.standard_normal(6).astype(np.float32)
    expected = bias_gelu_reference(storage[:, ::2], bias)
    result = storage.copy()
    bias_gelu(result[:, ::2], bias)
    np.testing.assert_allclose(result[:, ::2], expected, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(result[:, 1::2], storage[:, 1::2])


def test_bias_gelu_names_a_bias_of_the_wrong_size():
    with pytest.raises(ValueError, match="bias_gelu expects"):
        bias_gelu(np.zeros((2, 3), np.float32), np.zeros(3, np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 1), (4, 0), (384, 5), (384, 333)])
def test_bias_residual_layer_norm_matches_reference(shape, dtype):
    projection, residual = (RNG.standard_normal(shape).astype(dtype) for _ in range(2))  # (width, tokens)
    bias, weight, norm_bias = (RNG.standard_normal(shape[0]).astype(dtype) for _ in range(3))
    expected = bias_residual_layer_norm_reference(projection, bias, residual, weight, norm_bias, 1e-12)
    actual = bias_residual_layer_norm(projection, bias, residual.copy(), weight, norm_bias, 1e-12)
    # outputs reach ~10 (random weight and bias): float32 rounding is relative, a few ulps of 1.2e-7
    np.testing.assert_allclose(actual, expected, rtol=5e-7, atol=tolerance(dtype))


def test_bias_residual_layer_norm_reads_non_contiguous_projections():
    projection = RNG.standard_normal((24, 6)).astype(np.float32)[::3, ::2]  # (8, 3) view
    residual = RNG.standard_normal((8, 3)).astype(np.float32)
    bias, weight, norm_bias = (RNG.standard_normal(8).astype(np.float32) for _ in range(3))
    expected = bias_residual_layer_norm_reference(projection, bias, residual, weight, norm_bias, 1e-5)
    actual = bias_residual_layer_norm(projection, bias, residual.copy(), weight, norm_bias, 1e-5)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6)


def test_bias_residual_layer_norm_names_a_mismatched_vector():
    columns = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="norm_weight has shape"):
        bias_residual_layer_norm(columns, np.zeros(4), columns.copy(), np.zeros(3), np.zeros(4), 1e-12)


def packed_inputs(lengths, hidden, dtype=np.float32):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    qkv = (RNG.standard_normal((3 * hidden, offsets[-1])) * 2).astype(dtype)  # one token per column
    positions = np.concatenate([np.arange(length) for length in lengths]).astype(np.int64)
    return qkv, offsets, positions


@pytest.mark.parametrize("lengths", [[1], [0, 3], [5, 1, 0, 17], [40, 2], [300]])
def test_packed_attention_matches_reference(lengths):
    qkv, offsets, _ = packed_inputs(lengths, hidden=12)
    expected = packed_attention_reference(qkv, offsets, num_heads=3)
    actual = packed_attention(qkv, offsets, num_heads=3)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance(np.float32))


def test_packed_attention_refuses_float64():
    qkv, offsets, _ = packed_inputs([3], hidden=12, dtype=np.float64)
    with pytest.raises(ValueError, match="float32"):
        packed_attention(qkv, offsets, num_heads=3)


@pytest.mark.parametrize("shapes", [[(1, 1)], [(3, 7), (1, 1), (2, 33), (0, 5)], [(12, 256)] * 3])
def test_softmax_blocks_matches_reference(shapes):
    block_rows, row_lengths = (np.array(values, np.int64) for values in zip(*shapes))
    sizes = block_rows * row_lengths
    block_starts = np.cumsum(sizes) - sizes + 2  # blocks need not start at 0
    scores = (RNG.standard_normal(2 + sizes.sum() + 3) * 30).astype(np.float32)  # exp underflows too
    expected = softmax_blocks_reference(scores, block_starts, block_rows, row_lengths, 5.5)
    actual = softmax_blocks(scores.copy(), block_starts, block_rows, row_lengths, 5.5)
    # the kernel multiplies by 1 / divisor: an ulp of a score of ~20 (2e-6) becomes a relative error of exp
    np.testing.assert_allclose(actual, expected, rtol=5e-6, atol=1e-12)


def test_softmax_blocks_exp_is_accurate_to_float32_over_its_range():
    # rows [0, x]: the second entry is exp(x) / (1 + exp(x)), so it shows the kernel's exp to a few float32 ulps
    x = -np.linspace(0, 87, 20_001, dtype=np.float32)
    scores = np.stack([np.zeros_like(x), x], axis=1).ravel()
    actual = softmax_blocks(scores.copy(), [0], [len(x)], [2], 1.0)[1::2]
    exact = np.exp(x.astype(np.float64))
    np.testing.assert_allclose(actual, exact / (1 + exact), rtol=5e-7, atol=0)


def test_packed_attention_reads_a_non_contiguous_qkv():
    wide = RNG.standard_normal((3 * 8, 2 * 11)).astype(np.float32)
    offsets = np.array([0, 4, 11])
    qkv = wide[:, ::2]  # (24, 11) view: 11 tokens, hidden 8
    np.testing.assert_allclose(
        packed_attention(qkv, offsets, 2), packed_attention_reference(qkv, offsets, 2), rtol=0, atol=2e-6
    )


@pytest.mark.parametrize("bias_batch", [1, 3])
def test_packed_attention_adds_position_bias_by_each_tokens_position(bias_batch):
    lengths, seq = [3, 6, 1], 8
    qkv, offsets, positions = packed_inputs(lengths, hidden=8)
    position_bias = RNG.standard_normal((bias_batch, 2, seq, seq)).astype(np.float32)
    expected = packed_attention_reference(qkv, offsets, 2, position_bias, positions)
    actual = packed_attention(qkv, offsets, 2, position_bias, positions)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6)
    assert np.abs(actual - packed_attention(qkv, offsets, 2)).max() > 1e-3  # the bias matters


def test_packed_attention_rejects_offsets_that_do_not_cover_the_tokens():
    qkv, _, _ = packed_inputs([3, 4], hidden=8)
    with pytest.raises(ValueError, match="offsets must rise from 0"):
        packed_attention(qkv, np.array([0, 3, 5]), 2)
