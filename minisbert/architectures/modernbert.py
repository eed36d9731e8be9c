"""ModernBERT (Warner et al., 2024), as gte-modernbert-base and modernbert-embed-base use it: token embeddings
and a bias-free LayerNorm (no position table), then pre-norm layers of rotary self-attention and a GeGLU
feed-forward block, and a final LayerNorm. Every third layer (global_attn_every_n_layers) attends to the
whole text with rotary base global_rope_theta; the others see only the tokens within local_attention / 2
positions on either side, with base local_rope_theta. The first layer has no norm before its attention.
"""

import functools

import numpy as np

from minisbert.architectures.checkpoint import Checkpoint, check_heads_divide_hidden
from minisbert.architectures.layers import embedding_lookup
from minisbert.architectures.modern_layers import (
    activated_times,
    compiled_activation,
    check_layer_types,
    check_value,
    layer_norm_without_bias,
    linear_without_bias,
    merge_heads,
    record_layer,
    rotary_by_layer_type,
    rotary_tables,
    unsupported,
)
from minisbert.architectures.reference_or_fast import run_layout
from minisbert.kernels.rotary import rotary_heads
from minisbert.files.loading import POSITIVE_NUMBER, POSITIVE_SIZE

# transformers' ModernBertConfig defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {
    "hidden_activation": "gelu",
    "norm_eps": 1e-5,
    "norm_bias": False,
    "attention_bias": False,
    "mlp_bias": False,
    "local_attention": 128,
    "global_attn_every_n_layers": 3,
    "max_position_embeddings": 8192,
    "pad_token_id": 50283,
}
CONFIG_ALIASES = {"hidden_act": "hidden_activation", "layer_norm_eps": "norm_eps"}
DEFAULT_THETA = {"full_attention": 160_000.0, "sliding_attention": 10_000.0}
LEGACY_THETA_KEYS = {"full_attention": ("global_rope_theta",), "sliding_attention": ("local_rope_theta",)}


def layer_types(config):
    # transformers 5 writes layer_types; older configs give global_attn_every_n_layers (layer 0 global)
    if config.get("layer_types") is None:
        every = check_value("modernbert", "global_attn_every_n_layers", config["global_attn_every_n_layers"], POSITIVE_SIZE)
        config = {
            **config,
            "layer_types": [
                "sliding_attention" if i % every else "full_attention" for i in range(config["num_hidden_layers"])
            ],
        }
    return check_layer_types(config, "modernbert")


def head_dim(config):
    return config["hidden_size"] // config["num_attention_heads"]


def attention_layer(x, layer, attend, cos, sin, config):
    # x (batch, seq, hidden) normed -> (batch, seq, hidden), probabilities (batch, heads, seq, seq) or None
    batch, seq, _ = x.shape
    qkv = linear_without_bias(x, layer["qkv"]).reshape(batch, seq, 3, config["num_attention_heads"], head_dim(config))
    # -> (batch, heads, seq, head_dim), query and key rotated by position (kernels.rotary)
    query, key = rotary_heads(qkv[:, :, 0], cos, sin), rotary_heads(qkv[:, :, 1], cos, sin)
    context, probabilities = attend(query, key, qkv[:, :, 2].transpose(0, 2, 1, 3))
    return linear_without_bias(merge_heads(context), layer["attention_output"]), probabilities


def encoder_layer(x, layer, attend, cos, sin, config):
    # x (batch, seq, hidden) -> (batch, seq, hidden), probabilities (batch, heads, seq, seq): pre-norm residuals
    eps = config["norm_eps"]
    normed = x if layer["attention_norm"] is None else layer_norm_without_bias(x, layer["attention_norm"], eps)
    attention_output, probabilities = attention_layer(normed, layer, attend, cos, sin, config)
    x = x + attention_output
    normed = layer_norm_without_bias(x, layer["mlp_norm"], eps)
    up, gate = np.split(linear_without_bias(normed, layer["mlp_in"]), 2, axis=-1)  # 2 x (batch, seq, intermediate)
    x = x + linear_without_bias(activated_times(up, gate, config["hidden_activation"]), layer["mlp_out"])
    return x, probabilities


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask (batch, seq) -> token embeddings (batch, seq, hidden); positions count from the
    # first column (as transformers: arange(seq) whatever the padding side). Packed unless recording.
    run = functools.partial(layers_forward, params, config)
    return run_layout(run, input_ids, attention_mask, record, first_token_only)


def layers_forward(params, config, batch, record):
    # batch: a modern_layers.PaddedBatch or PackedBatch -> token embeddings in its layout
    eps = config["norm_eps"]
    x = embedding_lookup(params["word"], batch.ids, "word embedding")  # (batch, seq, hidden) or (1, tokens, hidden)
    x = layer_norm_without_bias(x, params["embedding_norm"], eps)
    scaling = head_dim(config) ** -0.5
    attends = {kind: batch.attention(scaling, window=window) for kind, window in params["windows"].items()}
    tables = {kind: rotary_tables(frequencies, batch.positions) for kind, frequencies in params["rotary"].items()}
    record_layer(record, "hidden_states", x)
    for layer in params["layers"]:
        kind = layer["attention_type"]
        x, probabilities = encoder_layer(x, layer, attends[kind], *tables[kind], config)
        record_layer(record, "hidden_states", x)
        record_layer(record, "attentions", probabilities)
    x = layer_norm_without_bias(x, params["final_norm"], eps)
    if record is not None:  # transformers' last hidden state is the final norm's output
        record["hidden_states"][-1] = x
    return batch.unpack(x)


def load_parameters(tensors, config):
    """transformers' ModernBertModel tensor names (under ``model.`` in a ModernBertForMaskedLM checkpoint)
    -> the nested parameter dict ``forward`` reads, with each layer's attention type, window and rotary
    frequencies."""
    for key in ("norm_bias", "attention_bias", "mlp_bias"):
        if config[key]:
            raise unsupported("modernbert", key, config[key], "the bias-free layers of the released models")
    check_value("modernbert", "norm_eps", config["norm_eps"], POSITIVE_NUMBER)
    check_value("modernbert", "local_attention", config["local_attention"], POSITIVE_SIZE)
    check_heads_divide_hidden(config)
    compiled_activation(config["hidden_activation"])
    types = layer_types(config)
    hidden, intermediate = config["hidden_size"], config["intermediate_size"]
    head_dim = hidden // config["num_attention_heads"]
    # the config's rotary settings are checked before any tensor is read
    rotary = rotary_by_layer_type(config, "modernbert", LEGACY_THETA_KEYS, DEFAULT_THETA, head_dim)
    checkpoint = Checkpoint(tensors, prefixes=("model.",))
    params = {
        "word": checkpoint.take("embeddings.tok_embeddings.weight", (config["vocab_size"], hidden)),
        "embedding_norm": checkpoint.take("embeddings.norm.weight", (hidden,)),
        "final_norm": checkpoint.take("final_norm.weight", (hidden,)),
        "windows": {"full_attention": None, "sliding_attention": config["local_attention"] // 2},
        "rotary": rotary,
        "layers": [],
    }
    for i, kind in enumerate(types):
        name = f"layers.{i}"
        params["layers"].append(
            {
                "attention_type": kind,
                "attention_norm": None if i == 0 else checkpoint.take(f"{name}.attn_norm.weight", (hidden,)),
                "qkv": checkpoint.take(f"{name}.attn.Wqkv.weight", (3 * hidden, hidden)),
                "attention_output": checkpoint.take(f"{name}.attn.Wo.weight", (hidden, hidden)),
                "mlp_norm": checkpoint.take(f"{name}.mlp_norm.weight", (hidden,)),
                "mlp_in": checkpoint.take(f"{name}.mlp.Wi.weight", (2 * intermediate, hidden)),
                "mlp_out": checkpoint.take(f"{name}.mlp.Wo.weight", (hidden, intermediate)),
            }
        )
    checkpoint.check("modernbert")
    return params
