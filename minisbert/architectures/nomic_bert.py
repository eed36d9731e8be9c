"""NomicBERT (Nussbaum et al., 2024), as nomic-embed-text-v1 and v1.5 use it and as transformers implements it:
word and token type embeddings and a LayerNorm (no position table), then BERT's post-norm layers with rotary
self-attention (bias-free projections) and a SwiGLU feed-forward block (bias-free), each followed by residual
and LayerNorm.

Nomic's own checkpoints name the tensors as their hub code did (``encoder.layers.0.attn.Wqkv``, ``emb_ln``,
``fc11``...) and give the sizes under GPT-2-style keys (``n_embd``...). transformers reads such a folder with
its own config defaults and renames the tensors on load (conversion_mapping.py, "nomic_bert"); so does
minisbert, and a legacy key that asks for something else (a different size, pre-norm, biases, partial or
scaled rotary, mixture of experts) is an error naming it.
"""

import functools
import re

import numpy as np

from minisbert.architectures.checkpoint import Checkpoint, check_heads_divide_hidden
from minisbert.architectures.layers import embedding_lookup, layer_norm
from minisbert.architectures.modern_layers import (
    UnsupportedConfigError,
    attention_weights,
    check_value,
    compiled_activation,
    gated_mlp,
    gated_mlp_weights,
    record_layer,
    rope_settings,
    rotary_inverse_frequencies,
    rotary_self_attention,
    rotary_tables,
    unsupported,
)
from minisbert.architectures.reference_or_fast import run_layout
from minisbert.files.loading import POSITIVE_NUMBER

# transformers' NomicBertConfig defaults, for the keys a config.json may leave out (nomic's own configs leave
# out all the sizes: transformers then builds nomic-embed-text-v1.5's, which these are)
CONFIG_DEFAULTS = {
    "vocab_size": 30528,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "silu",
    "layer_norm_eps": 1e-12,
    "type_vocab_size": 2,
    "max_position_embeddings": 2048,
    "pad_token_id": 0,
}
DEFAULT_THETA = 1000.0
# nomic's own config keys -> the transformers key whose value they must equal
LEGACY_SIZE_KEYS = {
    "n_embd": "hidden_size",
    "n_head": "num_attention_heads",
    "n_layer": "num_hidden_layers",
    "n_inner": "intermediate_size",
    "layer_norm_epsilon": "layer_norm_eps",
    "rotary_emb_base": "rope_theta",
}
# nomic's own options -> the value of the model transformers implements
LEGACY_OPTIONS = {
    "activation_function": "swiglu",
    "prenorm": False,
    "causal": False,
    "parallel_block": False,
    "use_rms_norm": False,
    "qkv_proj_bias": False,
    "mlp_fc1_bias": False,
    "mlp_fc2_bias": False,
    "rotary_emb_fraction": 1.0,
    "rotary_emb_interleaved": False,
    "rotary_scaling_factor": None,
    "moe_every_n_layers": 0,
}
# nomic's own tensor name parts -> transformers' (its conversion_mapping.py); attn.Wqkv is split in three
LEGACY_TENSOR_NAMES = {
    "encoder.layers": "layers",
    "emb_ln": "embeddings.LayerNorm",
    "attn.out_proj": "self_attn.o_proj",
    "mlp.fc11": "mlp.up_proj",
    "mlp.fc12": "mlp.gate_proj",
    "mlp.fc2": "mlp.down_proj",
    "norm1": "post_attention_layernorm",
    "norm2": "post_mlp_layernorm",
}


def head_dim(config):
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def encoder_layer(x, layer, attend, cos, sin, config):
    # x (batch, seq, hidden) -> (batch, seq, hidden), probabilities (batch, heads, seq, seq) or None: post-norm,
    # as BERT's layers
    eps = config["layer_norm_eps"]
    attention_output, probabilities = rotary_self_attention(x, layer["attention"], attend, cos, sin, head_dim(config))
    x = layer_norm(x + attention_output, layer["attention_norm"], eps)
    mlp = layer["mlp"]
    x = layer_norm(x + gated_mlp(x, mlp["gate"], mlp["up"], mlp["down"], config["hidden_act"]), layer["mlp_norm"], eps)
    return x, probabilities


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask (batch, seq) -> token embeddings (batch, seq, hidden); positions count from the
    # first column, as transformers'. Every token has token type 0 (one text at a time: no family of minisbert
    # gives this architecture pairs). Packed unless recording.
    if token_type_ids is not None and np.any(token_type_ids):
        raise ValueError("nomic_bert: minisbert computes token type 0 only; these inputs have other token types")
    run = functools.partial(layers_forward, params, config)
    return run_layout(run, input_ids, attention_mask, record, first_token_only)


def layers_forward(params, config, batch, record):
    # batch: a modern_layers.PaddedBatch or PackedBatch -> token embeddings in its layout
    x = embedding_lookup(params["word"], batch.ids, "word embedding") + params["token_type_0"]
    x = layer_norm(x, params["embedding_norm"], config["layer_norm_eps"])  # (batch, seq, hidden) or (1, tokens, hidden)
    attend = batch.attention(head_dim(config) ** -0.5)
    cos, sin = rotary_tables(params["rotary"], batch.positions)  # (seq or tokens, head_dim)
    record_layer(record, "hidden_states", x)
    for layer in params["layers"]:
        x, probabilities = encoder_layer(x, layer, attend, cos, sin, config)
        record_layer(record, "hidden_states", x)
        record_layer(record, "attentions", probabilities)
    return batch.unpack(x)


def check_config(config):
    """config.json as transformers reads it; nomic's own keys must agree with it (see the module docstring)."""
    theta = rope_settings(config, "full_attention", "nomic_bert", ("rope_theta",), DEFAULT_THETA)
    values = {**config, "rope_theta": theta}
    for legacy, key in LEGACY_SIZE_KEYS.items():
        if config.get(legacy) is not None and config[legacy] != values[key]:
            raise UnsupportedConfigError(
                f"nomic_bert config.json has {legacy} = {config[legacy]!r}, but transformers reads {key} = "
                f"{values[key]!r} (give {key} too, or leave {legacy} out)"
            )
    for legacy, implemented in LEGACY_OPTIONS.items():
        if legacy in config and config[legacy] != implemented:
            raise unsupported("nomic_bert", legacy, config[legacy], f"{legacy} = {implemented!r}, as transformers")
    check_value("nomic_bert", "layer_norm_eps", config["layer_norm_eps"], POSITIVE_NUMBER)
    if config.get("head_dim") is None:  # else the heads are head_dim wide, whatever the hidden size
        check_heads_divide_hidden(config)
    compiled_activation(config["hidden_act"])
    return theta


def transformers_names(tensors):
    """A checkpoint's tensors under transformers' names: nomic's own renamed, attn.Wqkv split into q, k, v."""
    renamed = {}
    for name, tensor in tensors.items():
        for legacy, current in LEGACY_TENSOR_NAMES.items():
            name = re.sub(rf"(^|\.){re.escape(legacy)}(?=\.)", rf"\g<1>{current}", name)
        if name.endswith("attn.Wqkv.weight") and getattr(tensor, "ndim", 0) == 2 and len(tensor) % 3 == 0:
            stem = name.removesuffix("attn.Wqkv.weight")
            for part, chunk in zip(("q", "k", "v"), np.split(tensor, 3)):
                renamed[f"{stem}self_attn.{part}_proj.weight"] = chunk
        else:
            renamed[name] = tensor
    return renamed


def load_parameters(tensors, config):
    """transformers' NomicBertModel tensor names (under ``nomic_bert.`` in a task model's checkpoint), or
    nomic's own -> the nested parameter dict ``forward`` reads."""
    theta = check_config(config)
    hidden = config["hidden_size"]
    checkpoint = Checkpoint(transformers_names(tensors), prefixes=("nomic_bert.",))
    params = {
        "word": checkpoint.take("embeddings.word_embeddings.weight", (config["vocab_size"], hidden)),
        "token_type_0": checkpoint.take(
            "embeddings.token_type_embeddings.weight", (config["type_vocab_size"], hidden)
        )[0],
        "embedding_norm": checkpoint.norm("embeddings.LayerNorm", hidden),
        "rotary": rotary_inverse_frequencies(theta, head_dim(config)),
        "layers": [],
    }
    for i in range(config["num_hidden_layers"]):
        name = f"layers.{i}"
        params["layers"].append(
            {
                "attention": attention_weights(checkpoint, f"{name}.self_attn", config, head_dim(config), norms=False),
                "attention_norm": checkpoint.norm(f"{name}.post_attention_layernorm", hidden),
                "mlp": gated_mlp_weights(checkpoint, f"{name}.mlp", config),
                "mlp_norm": checkpoint.norm(f"{name}.post_mlp_layernorm", hidden),
            }
        )
    checkpoint.check("nomic_bert")
    return params
