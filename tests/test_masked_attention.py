"""kernels.masked_attention: the fast packed grouped-query attention agrees with its NumPy reference, and the
reference with models.modern_layers' padded attention (the one checked against transformers), for every mask
(none, causal, sliding window, both), grouped key/value heads, and odd sequences (empty, one token)."""

import numpy as np
import pytest

from minisbert.kernels.masked_attention import (
    packed_masked_attention,
    packed_masked_attention_over_cores,
    packed_masked_attention_reference,
)
from minisbert.architectures.modern_layers import attention_bias, grouped_query_attention

RNG = np.random.default_rng(0)
MASKS = [(False, None), (True, None), (False, 3), (True, 3), (False, 0), (False, 100)]


def packed_case(lengths, heads, kv_heads, head_dim=8):
    tokens = sum(lengths)
    query = RNG.standard_normal((heads, tokens, head_dim)).astype(np.float32)
    key, value = (RNG.standard_normal((kv_heads, tokens, head_dim)).astype(np.float32) for _ in range(2))
    return query, key, value, np.concatenate([[0], np.cumsum(lengths)])


@pytest.mark.parametrize("causal, window", MASKS)
@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (4, 2), (4, 1)])
@pytest.mark.parametrize("lengths", [[5, 1, 0, 12], [1], [0], [30, 7]])
def test_fast_matches_reference(lengths, heads, kv_heads, causal, window):
    query, key, value, offsets = packed_case(lengths, heads, kv_heads)
    expected = packed_masked_attention_reference(query, key, value, offsets, 0.3, causal, window)
    actual = packed_masked_attention(query, key, value, offsets, 0.3, causal, window)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("causal, window", MASKS)
def test_reference_matches_padded_attention_on_real_tokens(causal, window):
    # the same sequences padded on the right into a batch, through the padded path's masks and attention
    lengths, heads, kv_heads, head_dim = [6, 2, 9], 4, 2, 8
    query, key, value, offsets = packed_case(lengths, heads, kv_heads, head_dim)
    seq = max(lengths)
    mask = np.array([[1] * n + [0] * (seq - n) for n in lengths])
    token_index = np.nonzero(mask)

    def padded(x):  # (heads, tokens, head_dim) -> (batch, heads, seq, head_dim)
        out = np.zeros((len(lengths), seq, x.shape[0], head_dim), np.float32)
        out[token_index] = x.transpose(1, 0, 2)
        return out.transpose(0, 2, 1, 3)

    bias = attention_bias(mask, causal, window)
    context, _ = grouped_query_attention(padded(query), padded(key), padded(value), bias, 0.3)
    expected = context.transpose(0, 2, 1, 3)[token_index].transpose(1, 0, 2)  # (heads, tokens, head_dim)
    actual = packed_masked_attention_reference(query, key, value, offsets, 0.3, causal, window)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6)


def test_bad_arguments_are_errors_naming_them():
    query, key, value, offsets = packed_case([3, 4], 4, 2)
    with pytest.raises(ValueError, match="4 query heads are not a multiple of 3"):
        packed_masked_attention(query, key[:1].repeat(3, 0), value[:1].repeat(3, 0), offsets, 1.0)
    with pytest.raises(ValueError, match="offsets must rise from 0 to the number of tokens"):
        packed_masked_attention(query, key, value, [0, 3, 6], 1.0)
    with pytest.raises(ValueError, match="expects float32"):
        packed_masked_attention(query.astype(np.float64), key, value, offsets, 1.0)


@pytest.mark.parametrize("causal, window", [(False, None), (True, None), (False, 2), (True, 2), (False, 0)])
def test_banded_softmax_matches_reference(causal, window):
    from minisbert.kernels.masked_attention import banded_softmax, banded_softmax_reference

    for length in (4, 1, 9):
        scores = (RNG.standard_normal((3, length, length)) * 4).astype(np.float32)  # 3 heads
        expected = banded_softmax_reference(scores, 0.5, causal, window)
        actual = banded_softmax(scores.copy(), 0.5, causal, window)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
        assert np.count_nonzero(actual == 0) == np.count_nonzero(expected == 0)  # masked keys exactly 0


def test_banded_softmax_names_scores_it_cannot_take():
    from minisbert.kernels.masked_attention import banded_softmax

    with pytest.raises(ValueError, match="banded_softmax expects"):
        banded_softmax(np.zeros((2, 3, 4), np.float32), 0.5, False, None)


@pytest.mark.parametrize("causal, window", [(False, None), (True, 3)])
@pytest.mark.parametrize("heads, kv_heads", [(6, 6), (6, 3), (6, 1)])
def test_heads_over_cores_match_reference(heads, kv_heads, causal, window):
    # a 300-token text: enough work for split_rows to give each core a part (whole key/value heads with their
    # query heads, or query heads of the single key/value head); T5's position bias split with the heads
    query, key, value, offsets = packed_case([300, 0, 40], heads, kv_heads)
    bias = RNG.standard_normal((heads, 300, 300)).astype(np.float32)
    for position_bias in (None, bias):
        expected = packed_masked_attention_reference(query, key, value, offsets, 0.3, causal, window, position_bias)
        actual = packed_masked_attention_over_cores(query, key, value, offsets, 0.3, causal, window, position_bias)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("lengths", [[5, 1, 0, 12], [30, 7]])
def test_position_bias_fast_matches_reference(lengths):
    # T5's relative position bias, by position within each sequence, added to the scaled scores
    query, key, value, offsets = packed_case(lengths, 4, 4)
    bias = RNG.standard_normal((4, 40, 40)).astype(np.float32) * 3
    expected = packed_masked_attention_reference(query, key, value, offsets, 1.0, position_bias=bias)
    actual = packed_masked_attention(query, key, value, offsets, 1.0, position_bias=bias)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6)
    without = packed_masked_attention_reference(query, key, value, offsets, 1.0)
    assert np.abs(expected - without).max() > 0.1  # the bias matters
    with pytest.raises(ValueError, match="at least the longest sequence"):
        packed_masked_attention(query, key, value, offsets, 1.0, position_bias=bias[:, :3, :3])
