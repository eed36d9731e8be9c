"""architectures/fast_encoder.py (packed tokens, fused kernels, a group of sequences per core: the default path)
computes what the readable architectures/layers.py encoder computes, on a tiny random encoder and on the real
model; reference_or_fast.run_encoder runs the reference only when recording; encode's output still matches
sentence-transformers on mixed-length batches."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from inputs import FEW_HARD_TEXTS
from threadpoolctl import threadpool_info

from minisbert.architectures import fast_encoder as fast_encoder_module
from minisbert.architectures.fast_encoder import fast_encoder, packed_encoder, sequence_groups
from minisbert.architectures.layers import encoder
from minisbert.architectures.reference_or_fast import run_encoder

HIDDEN, HEADS, INTERMEDIATE, LAYERS = 12, 3, 20, 2


def tiny_config(hidden_act="gelu"):
    return {
        "hidden_size": HIDDEN,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "layer_norm_eps": 1e-12,
        "hidden_act": hidden_act,
    }


def random_layers(rng):
    def linear(inputs, outputs):
        return {
            "weight": (rng.standard_normal((outputs, inputs)) / np.sqrt(inputs)).astype(np.float32),
            "bias": (rng.standard_normal(outputs) * 0.1).astype(np.float32),
        }

    def norm():
        return {"weight": (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32), "bias": linear(1, HIDDEN)["bias"]}

    return [
        {
            "qkv": linear(HIDDEN, 3 * HIDDEN),
            "attention_output": linear(HIDDEN, HIDDEN),
            "attention_norm": norm(),
            "intermediate": linear(HIDDEN, INTERMEDIATE),
            "output": linear(INTERMEDIATE, HIDDEN),
            "output_norm": norm(),
        }
        for _ in range(LAYERS)
    ]


def padded_batch(rng, lengths):
    seq = max(lengths)
    x = rng.standard_normal((len(lengths), seq, HIDDEN)).astype(np.float32)
    attention_mask = (np.arange(seq)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    return x, attention_mask


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new", "relu"])
def test_fast_encoder_matches_reference_on_real_tokens(hidden_act):
    rng = np.random.default_rng(1)
    layers, config = random_layers(rng), tiny_config(hidden_act)
    x, attention_mask = padded_batch(rng, [5, 1, 9, 3])
    expected = encoder(x, layers, attention_mask, config)
    actual = fast_encoder(x, layers, attention_mask, config)
    real = attention_mask.astype(bool)
    np.testing.assert_allclose(actual[real], expected[real], rtol=0, atol=2e-6)
    assert not actual[~real].any()  # padding positions are left at zero


@pytest.mark.parametrize("hidden_act, fused", [("gelu", True), ("gelu_new", False), ("relu", False)])
def test_the_fused_bias_gelu_runs_for_the_exact_gelu_the_config_names(hidden_act, fused, monkeypatch):
    calls = []
    original = fast_encoder_module.bias_gelu
    monkeypatch.setattr(fast_encoder_module, "bias_gelu", lambda x, bias: calls.append(x.shape) or original(x, bias))
    rng = np.random.default_rng(8)
    layers, config = random_layers(rng), tiny_config(hidden_act)
    x, attention_mask = padded_batch(rng, [5, 3])
    fast_encoder(x, layers, attention_mask, config)
    assert calls == ([(INTERMEDIATE, 8)] * LAYERS if fused else [])


@pytest.mark.parametrize("bias_batch", [1, 4])
def test_fast_encoder_matches_reference_with_position_bias(bias_batch):
    rng = np.random.default_rng(2)
    layers, config = random_layers(rng), tiny_config()
    x, attention_mask = padded_batch(rng, [5, 1, 9, 3])
    position_bias = rng.standard_normal((bias_batch, HEADS, 9, 9)).astype(np.float32)
    expected = encoder(x, layers, attention_mask, config, position_bias)
    actual = fast_encoder(x, layers, attention_mask, config, position_bias)
    real = attention_mask.astype(bool)
    np.testing.assert_allclose(actual[real], expected[real], rtol=0, atol=2e-6)


@pytest.mark.parametrize("lengths", [[5, 1, 9, 3], [150, 1, 90, 3, 70, 2]])  # one group; a group per core
@pytest.mark.parametrize("with_position_bias", [False, True])
def test_first_token_only_gives_the_reference_first_tokens(lengths, with_position_bias, two_blas_threads):
    # the last layer computed for each sequence's first token alone (a classification head's input)
    rng = np.random.default_rng(9)
    layers, config = random_layers(rng), tiny_config()
    x, attention_mask = padded_batch(rng, lengths)
    seq = attention_mask.shape[1]
    position_bias = rng.standard_normal((1, HEADS, seq, seq)).astype(np.float32) if with_position_bias else None
    expected = encoder(x, layers, attention_mask, config, position_bias)[:, :1]
    actual = fast_encoder(x, layers, attention_mask, config, position_bias, first_token_only=True)
    assert actual.shape == (len(lengths), 1, HIDDEN)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6)


def test_first_token_only_of_a_left_padded_batch_runs_the_reference(monkeypatch):
    # the first column of a left-padded row is padding, which the fast path skips: transformers' heads read it
    rng = np.random.default_rng(10)
    layers, config = random_layers(rng), tiny_config()
    x, attention_mask = padded_batch(rng, [5, 2])
    attention_mask = attention_mask[:, ::-1].copy()  # left padding
    monkeypatch.setattr("minisbert.architectures.reference_or_fast.fast_encoder", None)  # any call fails
    actual = run_encoder(x, layers, attention_mask, config, first_token_only=True)
    np.testing.assert_array_equal(actual, encoder(x, layers, attention_mask, config)[:, :1])
    assert actual[1].any()  # the padding token's vector, as the reference computes it


def test_fast_encoder_ignores_what_padding_holds():
    rng = np.random.default_rng(3)
    layers, config = random_layers(rng), tiny_config()
    x, attention_mask = padded_batch(rng, [2, 6])
    changed = x.copy()
    changed[0, 2:] = 1e3
    np.testing.assert_array_equal(
        fast_encoder(x, layers, attention_mask, config), fast_encoder(changed, layers, attention_mask, config)
    )


def test_run_encoder_runs_the_reference_when_recording_and_the_fast_path_otherwise():
    rng = np.random.default_rng(4)
    layers, config = random_layers(rng), tiny_config()
    x, attention_mask = padded_batch(rng, [2, 6])
    record = {}
    recorded = run_encoder(x, layers, attention_mask, config, record=record)
    np.testing.assert_array_equal(recorded, encoder(x, layers, attention_mask, config))
    assert len(record["attentions"]) == LAYERS
    assert recorded[0, 2:].any()  # the reference computes padding positions too
    np.testing.assert_array_equal(
        run_encoder(x, layers, attention_mask, config), fast_encoder(x, layers, attention_mask, config)
    )


def test_real_model_fast_path_matches_reference_path(model):
    features = model.forward(FEW_HARD_TEXTS)
    reference_features = model.forward(FEW_HARD_TEXTS, record={})
    real = features["attention_mask"].astype(bool)
    difference = np.abs(features["token_embeddings"][real] - reference_features["token_embeddings"][real])
    assert difference.max() <= 5e-6


@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_encode_matches_sentence_transformers_on_mixed_lengths(model, reference_model, batch_size):
    expected = reference_model.encode(FEW_HARD_TEXTS, batch_size=batch_size)
    actual = model.encode(FEW_HARD_TEXTS, batch_size=batch_size)
    assert np.abs(actual - expected).max() <= 1e-6  # normalised embeddings


def test_encode_matches_sentence_transformers_when_the_groups_interleave(
    model, reference_model, two_blas_threads, monkeypatch
):
    # two long texts and three short ones: the short ones, dealt to the group with fewer tokens each time, do not
    # all go to one group, so a group's sequences are not consecutive; the embeddings must still come back in the
    # texts' order
    texts = ["alpha " * 118, "beta " * 108, "gamma " * 28, "delta " * 27, "epsilon " * 26]
    dealt = []

    def recording_groups(attention_mask, groups):
        dealt.append([group.tolist() for group in sequence_groups(attention_mask, groups)])
        return sequence_groups(attention_mask, groups)

    monkeypatch.setattr(fast_encoder_module, "sequence_groups", recording_groups)
    actual = model.encode(texts, batch_size=32)
    (groups,) = dealt
    assert len(groups) == 2 and any(np.any(np.diff(group) > 1) for group in groups)
    assert np.abs(actual - reference_model.encode(texts, batch_size=32)).max() <= 1e-6  # normalised embeddings


def test_token_embeddings_match_sentence_transformers_on_mixed_lengths(model, reference_model):
    expected = reference_model.encode(FEW_HARD_TEXTS, output_value="token_embeddings")
    actual = model.encode(FEW_HARD_TEXTS, output_value="token_embeddings")
    for text_tokens, reference_tokens in zip(actual, expected):
        assert text_tokens.shape == tuple(reference_tokens.shape)
        assert np.abs(text_tokens - reference_tokens.numpy()).max() <= 1e-5


@pytest.mark.parametrize("lengths", [[5, 5], [10, 1, 1, 1], [3, 3, 3, 3, 3], [1, 100], [7] * 32, [9, 9, 8, 2, 2, 1, 1]])
@pytest.mark.parametrize("groups", [2, 3])
def test_sequence_groups_hold_each_sequence_once_with_tokens_within_one_sequence_of_even(lengths, groups):
    _, attention_mask = padded_batch(np.random.default_rng(0), lengths)
    indices = sequence_groups(attention_mask, groups)
    assert sorted(np.concatenate(indices).tolist()) == list(range(len(lengths)))
    assert all(np.all(np.diff(group) > 0) for group in indices)  # each group in the batch's order
    assert 2 <= len(indices) <= groups
    tokens = [sum(lengths[i] for i in group) for group in indices]
    assert max(tokens) - min(tokens) <= max(lengths)
    if len(set(lengths)) == 1:  # equal sequences split evenly
        sizes = [len(group) for group in indices]
        assert max(sizes) - min(sizes) <= 1


def test_sequence_groups_balance_a_length_sorted_batch_better_than_consecutive_runs():
    # 10 + 9 + 8 | 2 + 2 + 1 + 1 was the best cut into consecutive runs (27 against 6 tokens)
    _, attention_mask = padded_batch(np.random.default_rng(0), [10, 9, 8, 2, 2, 1, 1])
    tokens = [int(attention_mask[group].sum()) for group in sequence_groups(attention_mask, 2)]
    assert sorted(tokens) == [16, 17]


def test_sequence_groups_give_a_lone_sequence_one_group():
    _, attention_mask = padded_batch(np.random.default_rng(0), [4])
    assert [group.tolist() for group in sequence_groups(attention_mask, 2)] == [[0]]


@pytest.fixture
def group_sizes(monkeypatch):
    """The number of sequences of each group fast_encoder hands to packed_encoder, in call order."""
    sizes = []

    def recording_packed_encoder(x, *arguments):
        sizes.append(len(x))
        return packed_encoder(x, *arguments)

    monkeypatch.setattr(fast_encoder_module, "packed_encoder", recording_packed_encoder)
    return sizes


def test_fast_encoder_groups_give_the_numbers_of_one_packed_batch(group_sizes, two_blas_threads):
    # the threaded path (a group of sequences per core, one BLAS thread each) against the whole batch at once
    rng = np.random.default_rng(5)
    layers, config = random_layers(rng), tiny_config()
    x, attention_mask = padded_batch(rng, [150, 1, 90, 3, 70, 2])  # enough tokens for a group per core
    whole = packed_encoder(x, layers, attention_mask, config)
    grouped = fast_encoder(x, layers, attention_mask, config)
    assert sorted(group_sizes) == [2, 4]  # sequences 0, 1, 3, 5 (156 tokens) and 2, 4 (160), in either order
    np.testing.assert_allclose(grouped, whole, rtol=0, atol=1e-6)


def test_fast_encoder_keeps_a_small_batch_in_one_group(group_sizes):
    rng = np.random.default_rng(7)
    layers, config = random_layers(rng), tiny_config()
    x, attention_mask = padded_batch(rng, [50, 1, 60, 3])  # 114 tokens: too few for two groups
    fast_encoder(x, layers, attention_mask, config)
    assert group_sizes == [4]


def blas_counts():
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_fast_encoder_runs_each_group_on_one_blas_thread_and_gives_the_threads_back(two_blas_threads, monkeypatch):
    counts_inside = []

    def recording_packed_encoder(x, *arguments):
        counts_inside.append(blas_counts())
        return packed_encoder(x, *arguments)

    monkeypatch.setattr(fast_encoder_module, "packed_encoder", recording_packed_encoder)
    rng = np.random.default_rng(6)
    layers, config = random_layers(rng), tiny_config()
    x, attention_mask = padded_batch(rng, [150, 1, 190, 3])
    fast_encoder(x, layers, attention_mask, config)
    assert counts_inside == [{1}, {1}]  # two groups (two BLAS threads outside), each with BLAS at one thread
    assert blas_counts() == {2}


def test_encode_from_several_threads_at_once_gives_each_its_own_embeddings(model):
    texts = [FEW_HARD_TEXTS[i:] + FEW_HARD_TEXTS[:i] for i in range(4)]
    expected = [model.encode(batch) for batch in texts]
    with ThreadPoolExecutor(4) as callers:
        actual = list(callers.map(lambda batch: model.encode(batch, batch_size=3), texts * 3))
    for index, embeddings in enumerate(actual):
        np.testing.assert_allclose(embeddings, expected[index % 4], rtol=0, atol=1e-6)


@pytest.mark.parametrize("module", ["layers", "modern_layers"])
def test_the_layer_modules_leave_the_choice_of_path_to_reference_or_fast(module):
    # reference_or_fast.py is the one place that chooses between the reference and the fast path
    import ast
    import importlib

    source = importlib.import_module(f"minisbert.architectures.{module}").__file__
    imported = {
        node.module for node in ast.walk(ast.parse(open(source, encoding="utf-8").read()))
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"minisbert.architectures.fast_encoder", "minisbert.architectures.reference_or_fast"}
