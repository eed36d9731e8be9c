"""The readable reference of the encoder architectures: the pieces they are built from, as pure functions over
NumPy arrays, and ``encoder``, the stack of post-LayerNorm transformer layers that BERT and its descendants
share. fast_encoder.py computes the same encoder fast; reference_or_fast.py chooses which of the two runs.
Weights are plain dicts of float32 arrays; a linear layer's weight is (out, in), as torch stores it, so that a
layer reads ``x @ weight.T + bias``.
"""

import numpy as np

from minisbert.kernels.activations import gelu, gelu_tanh
from minisbert.kernels.rms_norm import row_norm


def embedding_lookup(table, ids, table_name):
    # table (rows, hidden), ids (batch, seq) or (1, seq) int -> (batch or 1, seq, hidden); an id outside the
    # table is an error naming it (a tokenizer that does not fit the weights, or too long a max_seq_length)
    if ids.size and (ids.min() < 0 or ids.max() >= len(table)):
        raise ValueError(
            f"id {ids.max() if ids.max() >= len(table) else ids.min()} is outside the model's {table_name} table "
            f"of {len(table)} rows: the tokenizer or max_seq_length does not fit the weights"
        )
    return table[ids]


def embeddings(params, input_ids, position_ids, eps, token_type_ids=None):
    # input_ids (batch, seq), position_ids (batch or 1, seq), token_type_ids (batch, seq) or None for models
    # without token types -> (batch, seq, hidden): word + token type + position vectors, then LayerNorm
    x = embedding_lookup(params["word"], input_ids, "word embedding")
    if token_type_ids is not None:
        x = x + embedding_lookup(params["token_type"], token_type_ids, "token type embedding")
    x = x + embedding_lookup(params["position"], position_ids, "position embedding")
    # layer_norm(x, params["norm"], eps) in one numba kernel: NumPy's passes took 60% of this function
    return row_norm(x, params["norm"]["weight"], eps, subtract_mean=True, shift=params["norm"]["bias"])


def linear(x, layer):
    # x (..., in), layer["weight"] (out, in), layer["bias"] (out,) -> (..., out)
    return x @ layer["weight"].T + layer["bias"]


def layer_norm(x, layer, eps):
    # x (..., hidden) -> (..., hidden): zero mean, unit (biased) variance over the last axis, then scale+shift
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * layer["weight"] + layer["bias"]


def softmax(x):
    # x (..., n) -> (..., n), along the last axis
    exponentials = np.exp(x - x.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def relu(x):
    return np.maximum(x, 0)


def silu(x):
    return x / (1 + np.exp(-x))


# The names transformers' configs use for ``hidden_act``.
ACTIVATIONS = {
    "gelu": gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "relu": relu,
    "silu": silu,
    "swish": silu,
    "tanh": np.tanh,
}


def activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r} in config.json; supported: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def additive_attention_mask(attention_mask, dtype=np.float32):
    # attention_mask (batch, seq) of 1 (token) / 0 (padding) -> (batch, 1, 1, seq): 0 where attended,
    # the most negative float where not, added to the attention scores of every head and query
    return np.where(attention_mask[:, None, None, :] > 0, 0.0, np.finfo(dtype).min).astype(dtype)


def split_heads(x, num_heads):
    # x (batch, seq, hidden) -> (batch, heads, seq, head_dim)
    batch, seq, hidden = x.shape
    return x.reshape(batch, seq, num_heads, hidden // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    # x (batch, heads, seq, head_dim) -> (batch, seq, hidden)
    batch, heads, seq, head_dim = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, seq, heads * head_dim)


def self_attention(x, layer, mask, num_heads, position_bias=None):
    # x (batch, seq, hidden), mask (batch, 1, 1, seq) additive, position_bias (batch or 1, heads, seq, seq)
    # -> output (batch, seq, hidden), attention probabilities (batch, heads, seq, seq)
    query, key, value = np.split(linear(x, layer["qkv"]), 3, axis=-1)  # 3 x (batch, seq, hidden)
    query, key, value = (split_heads(t, num_heads) for t in (query, key, value))  # (batch, heads, seq, head_dim)
    scores = query @ key.transpose(0, 1, 3, 2) / np.sqrt(query.shape[-1]).astype(x.dtype)  # (batch, heads, seq, seq)
    if position_bias is not None:
        scores = scores + position_bias
    probabilities = softmax(scores + mask)  # (batch, heads, seq, seq)
    context = merge_heads(probabilities @ value)  # (batch, seq, hidden)
    return linear(context, layer["attention_output"]), probabilities


def encoder_layer(x, layer, mask, config, position_bias=None):
    # x (batch, seq, hidden), mask (batch, 1, 1, seq) -> (batch, seq, hidden), attention (batch, heads, seq, seq)
    eps = config["layer_norm_eps"]
    attention_output, attention = self_attention(x, layer, mask, config["num_attention_heads"], position_bias)
    x = layer_norm(x + attention_output, layer["attention_norm"], eps)
    feed_forward = linear(activation(config["hidden_act"])(linear(x, layer["intermediate"])), layer["output"])
    return layer_norm(x + feed_forward, layer["output_norm"], eps), attention


def encoder(x, layers, attention_mask, config, position_bias=None, record=None):
    # x (batch, seq, hidden) embeddings, attention_mask (batch, seq) -> (batch, seq, hidden), padding positions
    # computed too (fast_encoder leaves them at zero: no caller reads them).
    # If ``record`` is a dict, the input and each layer's output are appended to record["hidden_states"],
    # and each layer's attention probabilities to record["attentions"].
    mask = additive_attention_mask(attention_mask, x.dtype)
    if record is not None:
        record.setdefault("hidden_states", []).append(x)
    for layer in layers:
        x, attention = encoder_layer(x, layer, mask, config, position_bias)
        if record is not None:
            record["hidden_states"].append(x)
            record.setdefault("attentions", []).append(attention)
    return x
