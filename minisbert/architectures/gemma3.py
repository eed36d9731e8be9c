"""Gemma 3's text decoder (Gemma team, 2025) as EmbeddingGemma uses it (``use_bidirectional_attention``):
token embeddings scaled by sqrt(hidden), then layers of rotary grouped-query self-attention with an RMSNorm on
each head's query and key, and a GeGLU feed-forward block (tanh GELU), each block with an RMSNorm before and
after it ("sandwich" norms); a final RMSNorm. Gemma's RMSNorm scales by 1 + weight. Most layers see only a
sliding window of tokens (rotary base rope_local_base_freq), every sixth sees the whole text (rope_theta).
Bidirectional, a window layer sees the tokens within sliding_window // 2 positions on either side; causal
(a plain Gemma 3), the sliding_window - 1 tokens before and itself.
"""

import functools

import numpy as np

from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import embedding_lookup
from minisbert.architectures.modern_layers import (
    compiled_activation,
    attention_weights,
    check_layer_types,
    check_value,
    gated_mlp,
    gated_mlp_weights,
    record_layer,
    rms_norm,
    rotary_by_layer_type,
    rotary_self_attention,
    rotary_tables,
    unsupported,
)
from minisbert.architectures.reference_or_fast import run_layout
from minisbert.files.loading import FLAG, POSITIVE_NUMBER, POSITIVE_SIZE

# transformers' Gemma3TextConfig defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {
    "hidden_activation": "gelu_pytorch_tanh",
    "rms_norm_eps": 1e-6,
    "head_dim": 256,
    "num_key_value_heads": 4,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "sliding_window_pattern": 6,
    "use_bidirectional_attention": False,
    "attention_bias": False,
    "attn_logit_softcapping": None,
    "max_position_embeddings": 131_072,
}
CONFIG_ALIASES = {"hidden_act": "hidden_activation"}
DEFAULT_THETA = {"full_attention": 1_000_000.0, "sliding_attention": 10_000.0}
LEGACY_THETA_KEYS = {"full_attention": ("rope_theta",), "sliding_attention": ("rope_local_base_freq",)}


def gemma_rms_norm(x, weight, eps):
    return rms_norm(x, weight, eps, offset=1.0)


def layer_types(config):
    # transformers 5 writes layer_types; older configs give sliding_window_pattern (every n-th layer global)
    if config.get("layer_types") is None:
        every = config["sliding_window_pattern"]
        layers = range(config["num_hidden_layers"])
        types = ["sliding_attention" if (i + 1) % every else "full_attention" for i in layers]
        config = {**config, "layer_types": types}
    return check_layer_types(config, "gemma3_text")


def attention_masks(config):
    # -> {layer type: (causal, window)} as transformers builds Gemma 3's masks (window: |q - k| <= window)
    if config["use_bidirectional_attention"]:
        return {"full_attention": (False, None), "sliding_attention": (False, config["sliding_window"] // 2)}
    return {"full_attention": (True, None), "sliding_attention": (True, config["sliding_window"] - 1)}


def decoder_layer(x, layer, attend, cos, sin, config):
    # x (batch, seq, hidden) -> (batch, seq, hidden), probabilities (batch, heads, seq, seq) or None
    eps = config["rms_norm_eps"]
    attention_output, probabilities = rotary_self_attention(
        gemma_rms_norm(x, layer["input_norm"], eps), layer["attention"], attend, cos, sin, config["head_dim"],
        qk_norm=lambda heads, weight: gemma_rms_norm(heads, weight, eps),
    )
    x = x + gemma_rms_norm(attention_output, layer["post_attention_norm"], eps)
    mlp = layer["mlp"]
    normed = gemma_rms_norm(x, layer["pre_feedforward_norm"], eps)
    feed_forward = gated_mlp(normed, mlp["gate"], mlp["up"], mlp["down"], config["hidden_activation"])
    return x + gemma_rms_norm(feed_forward, layer["post_feedforward_norm"], eps), probabilities


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask (batch, seq) -> token embeddings (batch, seq, hidden); packed unless recording
    run = functools.partial(layers_forward, params, config)
    return run_layout(run, input_ids, attention_mask, record, first_token_only)


def layers_forward(params, config, batch, record):
    # batch: a modern_layers.PaddedBatch or PackedBatch -> token embeddings in its layout
    x = embedding_lookup(params["word"], batch.ids, "word embedding")  # (batch, seq, hidden) or (1, tokens, hidden)
    x = x * np.float32(config["hidden_size"] ** 0.5)
    scaling = config["query_pre_attn_scalar"] ** -0.5
    attends = {kind: batch.attention(scaling, causal, window) for kind, (causal, window) in params["masks"].items()}
    tables = {kind: rotary_tables(frequencies, batch.positions) for kind, frequencies in params["rotary"].items()}
    record_layer(record, "hidden_states", x)
    for layer in params["layers"]:
        kind = layer["attention_type"]
        x, probabilities = decoder_layer(x, layer, attends[kind], *tables[kind], config)
        record_layer(record, "hidden_states", x)
        record_layer(record, "attentions", probabilities)
    x = gemma_rms_norm(x, params["final_norm"], config["rms_norm_eps"])
    if record is not None:  # transformers' last hidden state is the final norm's output
        record["hidden_states"][-1] = x
    return batch.unpack(x)


def load_parameters(tensors, config):
    """transformers' Gemma3TextModel tensor names (under ``model.`` in a Gemma3ForCausalLM checkpoint) -> the
    nested parameter dict ``forward`` reads, with each layer's attention type, mask and rotary frequencies."""
    for key in ("attention_bias", "attn_logit_softcapping"):
        if config.get(key):
            raise unsupported("gemma3_text", key, config[key], f"Gemma 3 without {key}")
    for key in ("rms_norm_eps", "query_pre_attn_scalar"):
        check_value("gemma3_text", key, config[key], POSITIVE_NUMBER)
    check_value("gemma3_text", "sliding_window", config["sliding_window"], POSITIVE_SIZE)
    check_value("gemma3_text", "use_bidirectional_attention", config["use_bidirectional_attention"], FLAG)
    compiled_activation(config["hidden_activation"])
    types = layer_types(config)
    hidden = config["hidden_size"]
    # the config's rotary settings are checked before any tensor is read
    rotary = rotary_by_layer_type(config, "gemma3_text", LEGACY_THETA_KEYS, DEFAULT_THETA, config["head_dim"])
    checkpoint = Checkpoint(tensors, prefixes=("model.",))
    params = {
        "word": checkpoint.take("embed_tokens.weight", (config["vocab_size"], hidden)),
        "final_norm": checkpoint.take("norm.weight", (hidden,)),
        "masks": attention_masks(config),
        "rotary": rotary,
        "layers": [],
    }
    for i, kind in enumerate(types):
        name = f"layers.{i}"
        params["layers"].append(
            {
                "attention_type": kind,
                "input_norm": checkpoint.take(f"{name}.input_layernorm.weight", (hidden,)),
                "attention": attention_weights(checkpoint, f"{name}.self_attn", config, config["head_dim"]),
                "post_attention_norm": checkpoint.take(f"{name}.post_attention_layernorm.weight", (hidden,)),
                "pre_feedforward_norm": checkpoint.take(f"{name}.pre_feedforward_layernorm.weight", (hidden,)),
                "post_feedforward_norm": checkpoint.take(f"{name}.post_feedforward_layernorm.weight", (hidden,)),
                "mlp": gated_mlp_weights(checkpoint, f"{name}.mlp", config),
            }
        )
    checkpoint.check("gemma3_text")
    return params
