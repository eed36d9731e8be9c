"""The fast encoder path's kernels (bias_gelu, bias_residual_layer_norm, packed_attention, softmax_columns,
mean_pool): their promises beyond agreeing with their NumPy references (tests/test_kernels.py checks that, on odd
shapes, float64 and non-contiguous input): in-place writes that touch only their view, errors that name a bad
argument, the softmax's exp accurate to float32 over its whole range, a position bias that matters, an
all-padding row pooled to zeros."""

import numpy as np
import pytest

from minisbert.kernels.activations import bias_gelu, bias_gelu_reference
from minisbert.kernels.attention import packed_attention, softmax_columns
from minisbert.kernels.normalization import bias_residual_layer_norm
from minisbert.kernels.pooling import mean_pool

RNG = np.random.default_rng(0)


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


def test_bias_residual_layer_norm_names_a_mismatched_vector():
    columns = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="norm_weight has shape"):
        bias_residual_layer_norm(columns, np.zeros(4), columns.copy(), np.zeros(3), np.zeros(4), 1e-12)


def packed_inputs(lengths, hidden, dtype=np.float32):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    qkv = (RNG.standard_normal((3 * hidden, offsets[-1])) * 2).astype(dtype)  # one token per column
    positions = np.concatenate([np.arange(length) for length in lengths]).astype(np.int64)
    return qkv, offsets, positions


def test_packed_attention_refuses_float64():
    qkv, offsets, _ = packed_inputs([3], hidden=12, dtype=np.float64)
    with pytest.raises(ValueError, match="float32"):
        packed_attention(qkv, offsets, num_heads=3)


def test_softmax_columns_exp_is_accurate_to_float32_over_its_range():
    # columns [0, x]: the second entry is exp(x) / (1 + exp(x)), so it shows the kernel's exp to a few float32 ulps
    x = -np.linspace(0, 87, 20_001, dtype=np.float32)
    scores = np.stack([np.zeros_like(x), x])[None]  # (1 head, 2 keys, queries)
    actual = softmax_columns(scores.copy(), 1.0)[0, 1]
    exact = np.exp(x.astype(np.float64))
    np.testing.assert_allclose(actual, exact / (1 + exact), rtol=5e-7, atol=0)


def test_softmax_columns_names_scores_it_cannot_take():
    with pytest.raises(ValueError, match="softmax_columns expects"):
        softmax_columns(np.zeros((2, 3, 4), np.float32).transpose(0, 2, 1), 1.0)


@pytest.mark.parametrize("bias_batch", [1, 3])
def test_packed_attention_position_bias_changes_the_context(bias_batch):
    # that the bias is added by each token's position is checked against the reference in test_kernels.py
    qkv, offsets, positions = packed_inputs([3, 6, 1], hidden=8)
    position_bias = RNG.standard_normal((bias_batch, 2, 8, 8)).astype(np.float32)
    with_bias = packed_attention(qkv, offsets, 2, position_bias, positions)
    assert np.abs(with_bias - packed_attention(qkv, offsets, 2)).max() > 1e-3


def test_packed_attention_rejects_offsets_that_do_not_cover_the_tokens():
    qkv, _, _ = packed_inputs([3, 4], hidden=8)
    with pytest.raises(ValueError, match="offsets must rise from 0"):
        packed_attention(qkv, np.array([0, 3, 5]), 2)


def test_mean_pool_of_an_all_padding_row_is_zero():
    assert not mean_pool(np.ones((1, 3, 4), np.float32), np.zeros((1, 3))).any()


def test_mean_pool_rejects_a_mask_of_the_wrong_shape():
    with pytest.raises(ValueError, match="mask"):
        mean_pool(np.ones((2, 3, 4), np.float32), np.ones((2, 4)))
