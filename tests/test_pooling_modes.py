"""Pooling: each mode, several at once, and include_prompt=False, against sentence-transformers' Pooling
module on the same token embeddings; the max-pool kernel against its NumPy reference."""

import numpy as np
import pytest

from minisbert.kernels.pooling import max_pool, max_pool_reference
from minisbert.modules.pooling import POOLING_MODES, Pooling


def token_batch(seed=0, batch=5, seq=9, hidden=16):
    """Random token embeddings with right padding: lengths from 1 to seq."""
    rng = np.random.default_rng(seed)
    token_embeddings = rng.normal(size=(batch, seq, hidden)).astype(np.float32)
    lengths = np.array([seq, 1, 4, seq - 1, 2][:batch])
    attention_mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    return token_embeddings, attention_mask


def reference_pooling(mode, include_prompt, token_embeddings, attention_mask, prompt_length=None):
    import torch
    from sentence_transformers.sentence_transformer.modules import Pooling as ReferencePooling

    features = {"token_embeddings": torch.tensor(token_embeddings), "attention_mask": torch.tensor(attention_mask)}
    if prompt_length is not None:
        features["prompt_length"] = prompt_length
    pooling = ReferencePooling(token_embeddings.shape[-1], pooling_mode=mode, include_prompt=include_prompt)
    return pooling(features)["sentence_embedding"].numpy()


def minisbert_pooling(mode, include_prompt, token_embeddings, attention_mask, prompt_length=None):
    features = {"token_embeddings": token_embeddings, "attention_mask": attention_mask}
    if prompt_length is not None:
        features["prompt_length"] = prompt_length
    return Pooling(token_embeddings.shape[-1], mode, include_prompt)(features)["sentence_embedding"]


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_each_mode_matches_reference(mode):
    token_embeddings, attention_mask = token_batch()
    expected = reference_pooling(mode, True, token_embeddings, attention_mask)
    actual = minisbert_pooling(mode, True, token_embeddings, attention_mask)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_each_mode_without_the_prompt_matches_reference(mode):
    # prompt_length 3 covers every token of the shorter rows: those pool nothing, as in the reference
    token_embeddings, attention_mask = token_batch(seed=1)
    expected = reference_pooling(mode, False, token_embeddings, attention_mask, prompt_length=3)
    actual = minisbert_pooling(mode, False, token_embeddings, attention_mask, prompt_length=3)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


def test_several_modes_concatenate_in_the_configured_order():
    token_embeddings, attention_mask = token_batch(seed=2)
    modes = ("lasttoken", "mean", "cls", "max")
    expected = reference_pooling(modes, True, token_embeddings, attention_mask)
    actual = minisbert_pooling(modes, True, token_embeddings, attention_mask)
    assert actual.shape == (5, 4 * 16)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


def test_legacy_config_enables_modes_in_sentence_transformers_order(tmp_path):
    import json

    config = {
        "word_embedding_dimension": 16,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_cls_token": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_lasttoken": True,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    pooling = Pooling.from_folder(tmp_path)
    assert pooling.modes == ("cls", "mean", "lasttoken")
    assert pooling.sentence_embedding_dimension == 48


def test_unknown_pooling_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="'median'"):
        Pooling(16, ("mean", "median"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (0, 4, 3), (3, 7, 5), (2, 513, 33)])
def test_max_pool_kernel_matches_reference(shape, dtype):
    rng = np.random.default_rng(3)
    token_embeddings = rng.normal(size=shape).astype(dtype)
    attention_mask = (rng.random(shape[:2]) < 0.7).astype(np.int64)
    if shape[0]:
        attention_mask[0] = 0  # a row with no tokens pools to -inf
    actual = max_pool(token_embeddings, attention_mask)
    assert actual.dtype == dtype
    np.testing.assert_array_equal(actual, max_pool_reference(token_embeddings, attention_mask))


def test_max_pool_kernel_reads_non_contiguous_input():
    rng = np.random.default_rng(4)
    token_embeddings = rng.normal(size=(4, 10, 12)).astype(np.float32)[:, ::2, ::3]
    attention_mask = np.ones((4, 10), dtype=np.int64)[:, ::2]
    np.testing.assert_array_equal(
        max_pool(token_embeddings, attention_mask), max_pool_reference(token_embeddings, attention_mask)
    )
