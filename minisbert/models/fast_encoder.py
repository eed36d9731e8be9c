"""models.layers' encoder computed fast (layers.encoder_reference is the readable version it is tested against):
the real tokens of a batch packed side by side into one (hidden, tokens) matrix, so that nothing is spent on
padding, and fused numba kernels between OpenBLAS matmuls that write into buffers reused by every layer. A batch of several
sequences is cut into one group of sequences per core, and each group runs the whole encoder in its own thread
with one OpenBLAS thread: the numba kernels then run on every core too, and no thread waits for another.
"""

import itertools

import numpy as np

from minisbert.kernels.activations import bias_gelu, gelu
from minisbert.kernels.attention import packed_attention
from minisbert.kernels.normalization import bias_residual_layer_norm
from minisbert.threads import blas_limited_to_one_thread, blas_thread_count, run_parallel


def sequence_groups(attention_mask, groups):
    # attention_mask (batch, seq) -> up to ``groups`` slices of consecutive sequences with about equal tokens
    tokens = np.cumsum(attention_mask.sum(axis=1))
    cuts = np.searchsorted(tokens, tokens[-1] * np.arange(1, groups) / groups, side="right")
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 1, len(tokens) - 1), [len(tokens)]]))
    return [slice(start, stop) for start, stop in itertools.pairwise(bounds)]


# Fewer tokens than this in each group and one group, with OpenBLAS on every core, is faster (RESULTS.md:
# 8 short sentences, 88 tokens a group: 289 against 310 sentences/s; 16, 176 tokens a group: 355 against 334).
MIN_GROUP_TOKENS = 128


def fast_encoder(x, layers, attention_mask, config, activation, position_bias=None):
    # x (batch, seq, hidden), attention_mask (batch, seq) -> (batch, seq, hidden), zeros at padding.
    # ``activation`` is the feed-forward function (models.layers.activation(config["hidden_act"])).
    tokens = int(attention_mask.sum())
    if len(x) < 2 or tokens < 2 * MIN_GROUP_TOKENS:
        return packed_encoder(x, layers, attention_mask, config, activation, position_bias)
    groups = sequence_groups(attention_mask, min(blas_thread_count(), tokens // MIN_GROUP_TOKENS))
    if len(groups) < 2:
        return packed_encoder(x, layers, attention_mask, config, activation, position_bias)

    def run(group):
        bias = position_bias if position_bias is None or len(position_bias) == 1 else position_bias[group]
        return packed_encoder(x[group], layers, attention_mask[group], config, activation, bias)

    with blas_limited_to_one_thread():  # one BLAS thread a group; the count comes back when the last caller leaves
        return np.concatenate(run_parallel(run, groups))


def pack(x, attention_mask):
    # x (batch, seq, hidden), attention_mask (batch, seq) -> the real tokens side by side, one per column
    # (hidden, tokens); each sequence's first column offsets (batch + 1,); and each token's (sequence, position)
    # index pair, 2 x (tokens,)
    real = attention_mask > 0  # (batch, seq)
    offsets = np.zeros(len(real) + 1, dtype=np.int64)
    np.cumsum(real.sum(axis=1), out=offsets[1:])
    token_index = np.nonzero(real)
    return np.ascontiguousarray(x[token_index].T, dtype=np.float32), offsets, token_index


def packed_encoder(x, layers, attention_mask, config, activation, position_bias=None):
    # x (batch, seq, hidden), attention_mask (batch, seq) -> (batch, seq, hidden), zeros at padding.
    # Inside, tokens are columns: a linear layer is weight (out, in) @ x (in, tokens), the orientation in which
    # OpenBLAS runs these shapes fastest (3-28% faster than x @ weight.T, most for few tokens: RESULTS.md).
    hidden_states, offsets, token_index = pack(x, attention_mask)  # (hidden, tokens)
    hidden, tokens = hidden_states.shape
    buffers = {
        "qkv": np.empty((3 * hidden, tokens), dtype=np.float32),
        "projection": np.empty((hidden, tokens), dtype=np.float32),
        "intermediate": np.empty((config["intermediate_size"], tokens), dtype=np.float32),
    }
    if position_bias is not None:
        position_bias = position_bias.astype(np.float32, copy=False)
    for layer in layers:
        fast_encoder_layer(hidden_states, layer, offsets, token_index[1], config, activation, position_bias, buffers)
    output = np.zeros(x.shape, dtype=np.float32)
    output[token_index] = hidden_states.T
    return output


def fast_encoder_layer(x, layer, offsets, positions, config, activation, position_bias, buffers):
    # x (hidden, tokens), updated in place; positions (tokens,) each token's place in its sequence
    eps = config["layer_norm_eps"]
    qkv, projection, intermediate = buffers["qkv"], buffers["projection"], buffers["intermediate"]
    np.matmul(layer["qkv"]["weight"], x, out=qkv)  # (3 hidden, tokens)
    qkv += layer["qkv"]["bias"][:, None]
    # (hidden, tokens): each token attends to the tokens of its own sequence
    context = packed_attention(qkv, offsets, config["num_attention_heads"], position_bias, positions)
    np.matmul(layer["attention_output"]["weight"], context, out=projection)  # (hidden, tokens)
    norm = layer["attention_norm"]
    bias_residual_layer_norm(projection, layer["attention_output"]["bias"], x, norm["weight"], norm["bias"], eps)
    np.matmul(layer["intermediate"]["weight"], x, out=intermediate)  # (intermediate, tokens)
    if activation is gelu:
        bias_gelu(intermediate, layer["intermediate"]["bias"])
    else:
        intermediate += layer["intermediate"]["bias"][:, None]
        intermediate[:] = activation(intermediate)
    np.matmul(layer["output"]["weight"], intermediate, out=projection)  # (hidden, tokens)
    norm = layer["output_norm"]
    bias_residual_layer_norm(projection, layer["output"]["bias"], x, norm["weight"], norm["bias"], eps)
