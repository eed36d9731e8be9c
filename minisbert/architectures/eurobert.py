"""EuroBERT (Boizard et al., 2025), a Llama made bidirectional: token embeddings, then pre-norm layers of rotary
self-attention over the whole text (grouped-query when num_key_value_heads < num_attention_heads) and a SwiGLU
feed-forward block, RMSNorm before each; a final RMSNorm. Qwen3's layers without the per-head q/k norms, and
with every token seeing every other.
"""

import functools

from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import embedding_lookup
from minisbert.architectures.modern_layers import (
    attention_weights,
    check_value,
    compiled_activation,
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

# transformers' EuroBertConfig defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "attention_bias": False,
    "mlp_bias": False,
    "max_position_embeddings": 8192,
    "pad_token_id": 128001,
}
DEFAULT_THETA = 10_000.0


def head_dim(config):
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def encoder_layer(x, layer, attend, cos, sin, config):
    # x (batch, seq, hidden) -> (batch, seq, hidden), probabilities (batch, heads, seq, seq) or None
    eps = config["rms_norm_eps"]
    attention_output, probabilities = rotary_self_attention(
        rms_norm(x, layer["input_norm"], eps), layer["attention"], attend, cos, sin, head_dim(config)
    )
    x = x + attention_output
    mlp = layer["mlp"]
    normed = rms_norm(x, layer["post_attention_norm"], eps)
    return x + gated_mlp(normed, mlp["gate"], mlp["up"], mlp["down"], config["hidden_act"]), probabilities


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask (batch, seq) -> token embeddings (batch, seq, hidden); positions count from the
    # first column, as transformers'. Packed unless recording.
    run = functools.partial(layers_forward, params, config)
    return run_layout(run, input_ids, attention_mask, record, first_token_only)


def layers_forward(params, config, batch, record):
    # batch: a modern_layers.PaddedBatch or PackedBatch -> token embeddings in its layout
    x = embedding_lookup(params["word"], batch.ids, "word embedding")  # (batch, seq, hidden) or (1, tokens, hidden)
    attend = batch.attention(head_dim(config) ** -0.5)
    cos, sin = rotary_tables(params["rotary"], batch.positions)  # (seq or tokens, head_dim)
    record_layer(record, "hidden_states", x)
    for layer in params["layers"]:
        x, probabilities = encoder_layer(x, layer, attend, cos, sin, config)
        record_layer(record, "hidden_states", x)
        record_layer(record, "attentions", probabilities)
    x = rms_norm(x, params["final_norm"], config["rms_norm_eps"])
    if record is not None:  # transformers' last hidden state is the final norm's output
        record["hidden_states"][-1] = x
    return batch.unpack(x)


def load_parameters(tensors, config):
    """transformers' EuroBertModel tensor names (under ``model.`` in a task model's checkpoint) -> the nested
    parameter dict ``forward`` reads."""
    for key in ("attention_bias", "mlp_bias"):
        if config[key]:
            raise unsupported("eurobert", key, config[key], "the bias-free layers of the released models")
    check_value("eurobert", "rms_norm_eps", config["rms_norm_eps"], POSITIVE_NUMBER)
    compiled_activation(config["hidden_act"])
    theta = rope_settings(config, "full_attention", "eurobert", ("rope_theta",), DEFAULT_THETA)
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
                "attention": attention_weights(checkpoint, f"{name}.self_attn", config, head_dim(config), norms=False),
                "post_attention_norm": checkpoint.take(f"{name}.post_attention_layernorm.weight", (hidden,)),
                "mlp": gated_mlp_weights(checkpoint, f"{name}.mlp", config),
            }
        )
    checkpoint.check("eurobert")
    return params
