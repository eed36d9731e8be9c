"""Qwen3 (Qwen team, 2025), the decoder behind Qwen3-Embedding: token embeddings, then pre-norm layers of
causal rotary self-attention (each token sees itself and the tokens before it) with grouped-query attention
(num_key_value_heads < num_attention_heads) and an RMSNorm on each head's query and key, and a SwiGLU
feed-forward block; a final RMSNorm. Qwen3-Embedding pools the last token (its tokenizer appends
<|endoftext|> and pads on the left) and prefixes queries with an instruction prompt.
"""

import functools

from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import embedding_lookup
from minisbert.architectures.modern_layers import (
    compiled_activation,
    attention_weights,
    check_value,
    gated_mlp,
    gated_mlp_weights,
    record_layer,
    rms_norm,
    rope_settings,
    rotary_inverse_frequencies,
    rotary_self_attention,
    rotary_tables,
    unsupported,
)
from minisbert.architectures.reference_or_fast import run_layout
from minisbert.files.loading import POSITIVE_NUMBER

# transformers' Qwen3Config defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "head_dim": 128,
    "attention_bias": False,
    "use_sliding_window": False,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
}
DEFAULT_THETA = 10_000.0


def head_dim(config):
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def decoder_layer(x, layer, attend, cos, sin, config):
    # x (batch, seq, hidden) -> (batch, seq, hidden), probabilities (batch, heads, seq, seq) or None; the per-head
    # q/k norms where the layer has them (Qwen3's; EuroBERT's Llama layers have none)
    eps = config["rms_norm_eps"]
    has_qk_norms = "query_norm" in layer["attention"]
    attention_output, probabilities = rotary_self_attention(
        rms_norm(x, layer["input_norm"], eps), layer["attention"], attend, cos, sin, head_dim(config),
        qk_norm=(lambda heads, weight: rms_norm(heads, weight, eps)) if has_qk_norms else None,
    )
    x = x + attention_output
    mlp = layer["mlp"]
    normed = rms_norm(x, layer["post_attention_norm"], eps)
    return x + gated_mlp(normed, mlp["gate"], mlp["up"], mlp["down"], config["hidden_act"]), probabilities


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask (batch, seq) -> token embeddings (batch, seq, hidden); positions count from the
    # first column, as transformers' (so left padding shifts them: rotary attention depends only on distances).
    # Packed unless recording.
    run = functools.partial(layers_forward, params, config)
    return run_layout(run, input_ids, attention_mask, record, first_token_only)


def layers_forward(params, config, batch, record, causal=True):
    # batch: a modern_layers.PaddedBatch or PackedBatch -> token embeddings in its layout; causal for Qwen3,
    # bidirectional for EuroBERT
    x = embedding_lookup(params["word"], batch.ids, "word embedding")  # (batch, seq, hidden) or (1, tokens, hidden)
    attend = batch.attention(head_dim(config) ** -0.5, causal=causal)
    cos, sin = rotary_tables(params["rotary"], batch.positions)  # (seq or tokens, head_dim)
    record_layer(record, "hidden_states", x)
    for layer in params["layers"]:
        x, probabilities = decoder_layer(x, layer, attend, cos, sin, config)
        record_layer(record, "hidden_states", x)
        record_layer(record, "attentions", probabilities)
    x = rms_norm(x, params["final_norm"], config["rms_norm_eps"])
    if record is not None:  # transformers' last hidden state is the final norm's output
        record["hidden_states"][-1] = x
    return batch.unpack(x)


def check_config(config):
    if config.get("attention_bias"):
        raise unsupported("qwen3", "attention_bias", config["attention_bias"], "bias-free attention, as Qwen3's")
    if config.get("use_sliding_window"):
        raise unsupported("qwen3", "use_sliding_window", config["use_sliding_window"], "full causal attention")
    layer_types = config.get("layer_types") or []
    if any(kind != "full_attention" for kind in layer_types):
        kind = next(kind for kind in layer_types if kind != "full_attention")
        raise unsupported("qwen3", "layer_types", kind, "full_attention layers")
    check_value("qwen3", "rms_norm_eps", config["rms_norm_eps"], POSITIVE_NUMBER)
    compiled_activation(config["hidden_act"])


def load_parameters(tensors, config):
    """transformers' Qwen3Model tensor names (under ``model.`` in a Qwen3ForCausalLM checkpoint) -> the nested
    parameter dict ``forward`` reads."""
    check_config(config)
    theta = rope_settings(config, "full_attention", "qwen3", ("rope_theta",), DEFAULT_THETA)
    return llama_parameters(tensors, config, "qwen3", theta, qk_norms=True)


def llama_parameters(tensors, config, model_type, theta, qk_norms):
    """transformers' Llama-style tensor names (Qwen3Model, EuroBertModel; under ``model.`` in a task model's
    checkpoint) -> the nested parameter dict ``layers_forward`` reads; qk_norms: whether each layer has per-head
    q/k norms."""
    hidden = config["hidden_size"]
    checkpoint = Checkpoint(tensors, prefixes=("model.",))
    params = {
        "word": checkpoint.take("embed_tokens.weight", (config["vocab_size"], hidden)),
        "final_norm": checkpoint.take("norm.weight", (hidden,)),
        "rotary": rotary_inverse_frequencies(theta, head_dim(config)),
        "layers": [],
    }
    for i in range(config["num_hidden_layers"]):
        name = f"layers.{i}"
        params["layers"].append(
            {
                "input_norm": checkpoint.take(f"{name}.input_layernorm.weight", (hidden,)),
                "attention": attention_weights(checkpoint, f"{name}.self_attn", config, head_dim(config), qk_norms),
                "post_attention_norm": checkpoint.take(f"{name}.post_attention_layernorm.weight", (hidden,)),
                "mlp": gated_mlp_weights(checkpoint, f"{name}.mlp", config),
            }
        )
    checkpoint.check(model_type)
    return params
