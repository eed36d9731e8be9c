"""Today's architectures match transformers + sentence-transformers on tiny random models (tests/tiny_models.py):
tokenization, sentence embeddings on the hard inputs at several batch sizes and both padding sides, prompts,
and the recorded hidden states and attentions against transformers' eager outputs."""

import re

import numpy as np
import pytest
from inputs import HARD_TEXTS
from tiny_models import GEMMA_PROMPTS, NOMIC_PROMPTS, QWEN3_PROMPTS, build_sentence_transformer, max_relative_difference

from minisbert.architectures import architecture_for

TOLERANCE = 1e-5  # relative to the largest value of the reference output
TRACE_TOLERANCE = 1e-4  # hidden states and attentions against transformers' eager attention

# Each real model's module chain, on a tiny model: (architecture, build options).
MODELS = {
    "modernbert": ("modernbert", dict(pooling_mode="mean", normalize=True)),
    "modernbert-left": ("modernbert", dict(pooling_mode="cls", padding_side="left")),
    "qwen3": ("qwen3", dict(pooling_mode="lasttoken", normalize=True, padding_side="left", prompts=QWEN3_PROMPTS)),
    "gemma3": (
        "gemma3_text",
        dict(
            pooling_mode="mean",
            dense=[(64, "Identity", False), (32, "Identity", False)],
            normalize=True,
            prompts=GEMMA_PROMPTS,
        ),
    ),
    "gemma3-causal": ("gemma3_text-causal", dict(pooling_mode="lasttoken", padding_side="left")),
    "sentence-t5": ("t5", dict(pooling_mode="mean", dense=[(32, "Identity", False)], normalize=True)),
    "gtr-t5-gated": ("t5-gated", dict(pooling_mode="mean", dense=[(32, "Identity", False)], normalize=True)),
    "deberta-v3": ("deberta-v3", dict(pooling_mode="mean")),
    "deberta-v2": ("deberta-v2", dict(pooling_mode="cls")),
    "nomic-embed-text": ("nomic_bert", dict(pooling_mode="mean", normalize=True, prompts=NOMIC_PROMPTS)),
    "nomic-left": ("nomic_bert", dict(pooling_mode="cls", padding_side="left")),
    "eurobert": ("eurobert", dict(pooling_mode="mean", normalize=True)),
    "eurobert-left": ("eurobert", dict(pooling_mode="cls", padding_side="left")),
    "qwen3-right": ("qwen3", dict(pooling_mode="lasttoken", normalize=True, padding_side="right")),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """built(name) -> (minisbert model, sentence-transformers model, transformers folder), each built once."""
    from sentence_transformers import SentenceTransformer as ReferenceModel

    from minisbert import SentenceTransformer

    cache = {}

    def build(name):
        if name not in cache:
            architecture, options = MODELS[name]
            folder = tmp_path_factory.mktemp("modern") / name
            folder, hf_folder = build_sentence_transformer(folder, architecture, **options)
            cache[name] = SentenceTransformer(folder), ReferenceModel(str(folder), device="cpu"), hf_folder
        return cache[name]

    return build


@pytest.mark.parametrize("name", MODELS)
def test_tokenization_matches_reference(built, name):
    model, reference, _ = built(name)
    texts = HARD_TEXTS[:12]
    expected = reference.preprocess(texts)
    actual = model.tokenize(texts)
    assert actual["input_ids"].tolist() == expected["input_ids"].tolist()
    assert actual["attention_mask"].tolist() == expected["attention_mask"].tolist()


@pytest.mark.parametrize("batch_size", [1, 7, 32])
@pytest.mark.parametrize("name", MODELS)
def test_sentence_embeddings_match_reference(built, name, batch_size):
    model, reference, _ = built(name)
    expected = reference.encode(HARD_TEXTS, batch_size=batch_size)
    actual = model.encode(HARD_TEXTS, batch_size=batch_size)
    assert actual.shape == expected.shape
    assert max_relative_difference(actual, expected) <= TOLERANCE


@pytest.mark.parametrize("name", MODELS)
def test_token_embeddings_match_reference(built, name):
    model, reference, _ = built(name)
    expected = reference.encode(HARD_TEXTS, output_value="token_embeddings", batch_size=16)
    actual = model.encode(HARD_TEXTS, output_value="token_embeddings", batch_size=16)
    # with left padding both keep the padding in front of a text; its rows are compared by shape only (a padding
    # query attends to nothing: transformers' sdpa and eager attention disagree on it too)
    for text, tokens, expected_tokens in zip(HARD_TEXTS, actual, expected):
        real = int(model.tokenize([text])["attention_mask"].sum())
        assert tokens.shape == expected_tokens.shape
        assert max_relative_difference(tokens[-real:], expected_tokens[-real:]) <= TOLERANCE


@pytest.mark.parametrize("name", [name for name, (_, options) in MODELS.items() if options.get("prompts")])
def test_prompts_match_reference(built, name):
    model, reference, _ = built(name)
    texts = HARD_TEXTS[40:46]
    assert max_relative_difference(model.encode_query(texts), reference.encode_query(texts)) <= TOLERANCE
    assert max_relative_difference(model.encode_document(texts), reference.encode_document(texts)) <= TOLERANCE


@pytest.mark.parametrize("name", MODELS)
def test_trace_matches_transformers_eager(built, name):
    import torch
    import transformers

    model, _, hf_folder = built(name)
    text = HARD_TEXTS[40]  # past the sliding window, within max_seq_length
    trace = model.trace(text)
    architecture = transformers.AutoConfig.from_pretrained(hf_folder).architectures[0]  # T5EncoderModel for T5
    reference = getattr(transformers, architecture).from_pretrained(hf_folder, attn_implementation="eager").eval()
    with torch.no_grad():
        outputs = reference(
            torch.tensor(trace.input_ids[None]), output_hidden_states=True, output_attentions=True
        )
    assert len(trace.input_ids) > 2 * 8 + 1
    expected_hidden = np.stack([h[0].numpy() for h in outputs.hidden_states])
    expected_attentions = np.stack([a[0].numpy() for a in outputs.attentions])
    assert max_relative_difference(trace.hidden_states, expected_hidden) <= TRACE_TOLERANCE
    assert max_relative_difference(trace.attentions, expected_attentions) <= TRACE_TOLERANCE


def test_left_and_right_padding_give_the_same_embeddings(built):
    # the same model padded on either side: lasttoken pooling and the masks must follow the real tokens
    left, _, _ = built("qwen3")
    right, _, _ = built("qwen3-right")
    texts = HARD_TEXTS[:10]
    assert max_relative_difference(left.encode(texts, batch_size=10), right.encode(texts, batch_size=1)) <= TOLERANCE


@pytest.mark.parametrize(
    "config, message",
    [
        (
            {"model_type": "modernbert", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
            "rope_scaling.rope_type = 'yarn'",
        ),
        (
            {"model_type": "modernbert", "layer_types": ["chunked_attention", "full_attention"]},
            "layer_types = 'chunked_attention'",
        ),
        ({"model_type": "modernbert", "mlp_bias": True}, "mlp_bias = True"),
        ({"model_type": "qwen3", "use_sliding_window": True}, "use_sliding_window = True"),
        (
            {"model_type": "qwen3", "rope_parameters": {"rope_type": "linear", "factor": 2.0}},
            "rope_parameters.rope_type = 'linear'",
        ),
        ({"model_type": "qwen3", "partial_rotary_factor": 0.5}, "partial_rotary_factor = 0.5"),
        ({"model_type": "qwen3", "attention_bias": True}, "attention_bias = True"),
        ({"model_type": "gemma3_text", "attn_logit_softcapping": 50.0}, "attn_logit_softcapping = 50.0"),
        (
            {"model_type": "gemma3_text", "rope_scaling": {"rope_type": "linear", "factor": 8.0}},
            "rope_scaling.rope_type = 'linear'",
        ),
        ({"model_type": "gemma3_text", "hidden_activation": "gelu_fast"}, "unsupported activation 'gelu_fast'"),
        ({"model_type": "t5", "feed_forward_proj": "gated-gelu-extra"}, "feed_forward_proj = 'gated-gelu-extra'"),
        ({"model_type": "t5", "feed_forward_proj": "swiglu"}, "unsupported activation 'swiglu'"),
        ({"model_type": "t5", "feed_forward_proj": 5}, "feed_forward_proj = 5"),
        # values no model can have: refused naming config.json, the key and the value (issue 11)
        ({"model_type": "gemma3_text", "query_pre_attn_scalar": 0}, "config.json has query_pre_attn_scalar = 0"),
        ({"model_type": "gemma3_text", "query_pre_attn_scalar": -4}, "config.json has query_pre_attn_scalar = -4"),
        ({"model_type": "gemma3_text", "sliding_window": 0}, "config.json has sliding_window = 0"),
        ({"model_type": "gemma3_text", "sliding_window": -1}, "config.json has sliding_window = -1"),
        ({"model_type": "gemma3_text", "sliding_window": 4.5}, "config.json has sliding_window = 4.5"),
        ({"model_type": "gemma3_text", "rms_norm_eps": 0}, "config.json has rms_norm_eps = 0"),
        (
            {"model_type": "gemma3_text", "use_bidirectional_attention": "no"},
            "config.json has use_bidirectional_attention = 'no'",
        ),
        ({"model_type": "gemma3_text", "rope_local_base_freq": "x"}, "config.json has rope_local_base_freq = 'x'"),
        (
            {"model_type": "t5", "relative_attention_max_distance": 0},
            "config.json has relative_attention_max_distance = 0",
        ),
        (
            {"model_type": "t5", "relative_attention_num_buckets": 0},
            "config.json has relative_attention_num_buckets = 0",
        ),
        (
            {"model_type": "t5", "relative_attention_num_buckets": 2},
            "config.json has relative_attention_num_buckets = 2",
        ),
        ({"model_type": "t5", "layer_norm_epsilon": "x"}, "config.json has layer_norm_epsilon = 'x'"),
        ({"model_type": "modernbert", "rope_parameters": [1]}, "config.json has rope_parameters = [1]"),
        (
            {"model_type": "modernbert", "rope_parameters": {"full_attention": {"rope_theta": float("nan")}}},
            "config.json has rope_parameters.full_attention.rope_theta = nan",
        ),
        (
            {"model_type": "modernbert", "rope_parameters": {"full_attention": {"rope_theta": -1}}},
            "config.json has rope_parameters.full_attention.rope_theta = -1",
        ),
        ({"model_type": "modernbert", "global_rope_theta": "x"}, "config.json has global_rope_theta = 'x'"),
        ({"model_type": "modernbert", "local_attention": 0}, "config.json has local_attention = 0"),
        ({"model_type": "modernbert", "local_attention": -4}, "config.json has local_attention = -4"),
        ({"model_type": "modernbert", "layer_types": None, "global_attn_every_n_layers": 0},
         "config.json has global_attn_every_n_layers = 0"),
        ({"model_type": "modernbert", "norm_eps": float("inf")}, "config.json has norm_eps = inf"),
        ({"model_type": "qwen3", "rms_norm_eps": -1}, "config.json has rms_norm_eps = -1"),
        ({"model_type": "qwen3", "rope_theta": 0}, "config.json has rope_theta = 0"),
        (
            {"model_type": "qwen3", "rope_parameters": {"rope_theta": "x"}},
            "config.json has rope_parameters.rope_theta = 'x'",
        ),
        ({"model_type": "qwen3", "rope_scaling": [2.0]}, "config.json has rope_scaling = [2.0]"),
        ({"model_type": "deberta-v2", "conv_kernel_size": 3}, "conv_kernel_size = 3"),
        ({"model_type": "eurobert", "mlp_bias": True}, "config.json has mlp_bias = True"),
        ({"model_type": "nomic_bert", "prenorm": True}, "config.json has prenorm = True"),
        ({"model_type": "nomic_bert", "moe_every_n_layers": 2}, "config.json has moe_every_n_layers = 2"),
        ({"model_type": "nomic_bert", "rotary_emb_fraction": 0.5}, "config.json has rotary_emb_fraction = 0.5"),
        ({"model_type": "nomic_bert", "n_embd": 768}, "config.json has n_embd = 768, but transformers reads hidden_size = 32"),
        ({"model_type": "nomic_bert", "rotary_emb_base": 10000}, "rotary_emb_base = 10000, but transformers reads rope_theta = 1000.0"),
        ({"model_type": "deberta-v2", "relative_attention": True, "pos_att_type": "p2p"}, "pos_att_type = 'p2p'"),
    ],
)
def test_unsupported_options_are_errors_naming_key_and_value(config, message):
    base = dict(hidden_size=32, intermediate_size=40, num_attention_heads=4, num_hidden_layers=2, vocab_size=10)
    base.update(d_model=32, d_ff=40, num_heads=4, num_layers=2)  # T5's names
    module, full_config = architecture_for({**base, **config})
    with pytest.raises(ValueError, match=re.escape(message)):
        module.load_parameters({}, full_config)


@pytest.mark.parametrize("bucket_size, max_position", [(256, 512), (16, 64), (32, 128)])
def test_deberta_log_buckets_match_transformers(bucket_size, max_position):
    import torch
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

    from minisbert.architectures.deberta_v2 import log_bucket_position

    positions = np.arange(700)
    relative = positions[:, None] - positions[None, :]  # every distance from -699 to 699
    expected = make_log_bucket_position(torch.tensor(relative), bucket_size, max_position).long().numpy()
    assert np.array_equal(log_bucket_position(relative, bucket_size, max_position), expected)


def test_t5_buckets_reach_their_logarithmic_range_in_the_tests():
    # the tiny T5 has 16 buckets up to distance 20: texts of 48 tokens use the log-spaced and the last bucket
    import torch
    from transformers.models.t5.modeling_t5 import T5Attention

    from minisbert.architectures.mpnet import relative_position_bucket

    positions = np.arange(48)
    relative = positions[None, :] - positions[:, None]
    expected = T5Attention._relative_position_bucket(torch.tensor(relative), True, 16, 20).numpy()
    actual = relative_position_bucket(relative, 16, 20)
    assert np.array_equal(actual, expected) and actual.max() == 15


@pytest.mark.parametrize("architecture, dtype", [("gemma3_text", "bfloat16"), ("qwen3", "float16")])
def test_half_precision_checkpoints_are_computed_in_float32(tmp_path, architecture, dtype):
    # the weights as shipped (bfloat16 / float16), widened to float32: the same as torch widening them
    import torch
    from safetensors import safe_open
    from sentence_transformers import SentenceTransformer as ReferenceModel

    from minisbert import SentenceTransformer

    folder, _ = build_sentence_transformer(tmp_path / "model", architecture, pooling_mode="mean", dtype=dtype)
    with safe_open(str(folder / "model.safetensors"), "np" if dtype == "float16" else "pt") as weights:
        assert str(weights.get_tensor(weights.keys()[0]).dtype).endswith(dtype)
    reference = ReferenceModel(str(folder), device="cpu", model_kwargs={"dtype": torch.float32})
    texts = HARD_TEXTS[:20]
    assert max_relative_difference(SentenceTransformer(folder).encode(texts), reference.encode(texts)) <= TOLERANCE


def test_t5_heads_need_not_divide_d_model(tmp_path):
    # T5 sets its head size apart (d_kv), as mT5-small does (d_model 512, 6 heads of 64): 32 / 3 heads of 16
    from sentence_transformers import SentenceTransformer as ReferenceModel

    from minisbert import SentenceTransformer

    folder, _ = build_sentence_transformer(tmp_path / "model", "t5", config_overrides={"num_heads": 3})
    reference = ReferenceModel(str(folder), device="cpu")
    texts = HARD_TEXTS[:20]
    assert max_relative_difference(SentenceTransformer(folder).encode(texts), reference.encode(texts)) <= TOLERANCE


# The keys hub checkpoints saved before transformers 5 carry instead of layer_types and rope_parameters, with
# values other than the defaults, so that reading them wrongly shows.
LEGACY_KEYS = {
    "modernbert": {"global_attn_every_n_layers": 2, "global_rope_theta": 50000.0, "local_rope_theta": 500.0},
    "gemma3_text": {"sliding_window_pattern": 2, "rope_theta": 50000.0, "rope_local_base_freq": 500.0},
    "qwen3": {"rope_theta": 500.0, "rope_scaling": None},
}


@pytest.mark.parametrize("architecture", LEGACY_KEYS)
def test_older_config_keys_are_read_as_transformers_reads_them(tmp_path, architecture):
    import json

    from sentence_transformers import SentenceTransformer as ReferenceModel

    from minisbert import SentenceTransformer

    folder, _ = build_sentence_transformer(tmp_path / "model", architecture, pooling_mode="mean")
    texts = HARD_TEXTS[38:44]
    before = SentenceTransformer(folder).encode(texts)
    config = json.loads((folder / "config.json").read_text())
    for key in ("layer_types", "rope_parameters"):
        config.pop(key, None)
    (folder / "config.json").write_text(json.dumps({**config, **LEGACY_KEYS[architecture]}))
    actual = SentenceTransformer(folder).encode(texts)
    assert max_relative_difference(actual, ReferenceModel(str(folder), device="cpu").encode(texts)) <= TOLERANCE
    assert max_relative_difference(actual, before) > 1e-3  # the keys changed the model


def test_nomic_checkpoints_load_in_either_naming_with_nomic_own_config_keys(tmp_path):
    # transformers saves NomicBERT under nomic's own tensor names (q, k, v fused in attn.Wqkv, emb_ln, fc11...),
    # which the hub's checkpoints have too, and reads its own names as well; nomic's configs give the sizes under
    # GPT-2-style keys, which transformers leaves aside (the tests above load nomic's names)
    import json

    from safetensors.numpy import load_file, save_file
    from sentence_transformers import SentenceTransformer as ReferenceModel

    from minisbert import SentenceTransformer

    folder, _ = build_sentence_transformer(tmp_path / "model", "nomic_bert", pooling_mode="mean")
    texts = HARD_TEXTS[38:44]
    before = SentenceTransformer(folder).encode(texts)
    nomic_names = load_file(folder / "model.safetensors")
    assert "encoder.layers.0.attn.Wqkv.weight" in nomic_names and "emb_ln.weight" in nomic_names
    transformers_names = {}
    for name, tensor in nomic_names.items():
        for nomic, current in [("encoder.layers.", "layers."), ("emb_ln", "embeddings.LayerNorm"),
                               ("attn.out_proj", "self_attn.o_proj"), ("mlp.fc11", "mlp.up_proj"),
                               ("mlp.fc12", "mlp.gate_proj"), ("mlp.fc2", "mlp.down_proj"),
                               ("norm1", "post_attention_layernorm"), ("norm2", "post_mlp_layernorm")]:
            name = name.replace(nomic, current)
        if name.endswith("attn.Wqkv.weight"):
            for part, chunk in zip(("q", "k", "v"), np.split(tensor, 3)):
                transformers_names[name.replace("attn.Wqkv", f"self_attn.{part}_proj")] = chunk
        else:
            transformers_names[name] = tensor
    save_file(transformers_names, folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    nomic_keys = {"n_embd": 32, "n_head": 4, "n_layer": 2, "n_inner": 40, "rotary_emb_base": 1000,
                  "layer_norm_epsilon": 1e-12, "activation_function": "swiglu", "prenorm": False,
                  "qkv_proj_bias": False, "rotary_emb_fraction": 1.0, "rotary_scaling_factor": None}
    (folder / "config.json").write_text(json.dumps({**config, **nomic_keys}))
    actual = SentenceTransformer(folder).encode(texts)
    assert max_relative_difference(actual, ReferenceModel(str(folder), device="cpu").encode(texts)) <= TOLERANCE
    np.testing.assert_array_equal(actual, before)
