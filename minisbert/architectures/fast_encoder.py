"""layers.encoder computed fast, the same numbers (layers.encoder is the readable version it is tested against;
reference_or_fast.py chooses between them): the real tokens of a batch packed side by side into one (hidden,
tokens) matrix, so that nothing is spent on padding, and fused numba kernels between OpenBLAS matmuls that
write into buffers reused by every layer. A batch of several sequences is cut into one group of sequences per core, and
each group runs the whole encoder in its own thread with one OpenBLAS thread: the numba kernels then run on
every core too, and no thread waits for another. How each choice was measured: bench/RESULTS.md, "What the
fast path does, and why".
"""

import contextlib
import functools
import itertools

import numpy as np

from minisbert.architectures.layers import activation
from minisbert.kernels.activations import bias_gelu
from minisbert.kernels.attention import packed_attention
from minisbert.kernels.matmul import available_cores, int8_linear, matmul_4_threaded, pack_weight, quantize_weight
from minisbert.kernels.normalization import bias_residual_layer_norm
from minisbert.runtime.threads import blas_limited_to_one_thread, blas_thread_count, run_parallel


def sequence_groups(attention_mask, groups):
    # attention_mask (batch, seq) -> up to ``groups`` index arrays (each ascending) that hold every sequence once,
    # with about equal tokens: the longest sequence first, each to the group with the fewest tokens so far (within
    # one sequence's tokens of even). Runs of consecutive sequences of a length-sorted batch were up to 11% apart
    # (bench/RESULTS.md, "Today's architectures").
    lengths = attention_mask.sum(axis=1)
    totals = np.zeros(groups, dtype=np.int64)
    members = [[] for _ in range(groups)]
    for sequence in np.argsort(-lengths, kind="stable"):
        group = int(np.argmin(totals))
        members[group].append(sequence)
        totals[group] += lengths[sequence]
    return [np.sort(np.array(group, dtype=np.int64)) for group in members if group]


# Fewer tokens than this in each group and one group, with OpenBLAS on every core, is faster (measured:
# bench/RESULTS.md, "Throughput: bench/compare.py", the bullet on MIN_GROUP_TOKENS).
MIN_GROUP_TOKENS = 128


def runs_in_groups(attention_mask):
    """Whether run_in_groups splits this batch into groups of sequences (else it runs it whole)."""
    return len(attention_mask) >= 2 and int(attention_mask.sum()) >= 2 * MIN_GROUP_TOKENS and blas_thread_count() >= 2


def run_in_groups(attention_mask, run_group, run_whole):
    """run_whole() for a batch too small to split, else run_group(indices of sequences) for one group of sequences
    per core (as many tokens each), each on its own thread with numpy's BLAS at one thread; put back in the
    batch's order. Two or three groups per core, taken by each thread as it frees, ran no faster (bench/RESULTS.md,
    "Reranking")."""
    if not runs_in_groups(attention_mask):
        return run_whole()
    groups = sequence_groups(attention_mask, min(blas_thread_count(), int(attention_mask.sum()) // MIN_GROUP_TOKENS))
    with blas_limited_to_one_thread():  # one BLAS thread a group; the count comes back when the last caller leaves
        grouped = np.concatenate(run_parallel(run_group, groups))  # the batch's rows in the groups' order
    output = np.empty_like(grouped)
    output[np.concatenate(groups)] = grouped
    return output


@contextlib.contextmanager
def one_blas_thread_while_split(attention_mask):
    """numpy's BLAS at one thread for the whole of a batch that runs in groups: its encoder and the modules after
    it (a classifier, a Dense layer). An OpenBLAS call on two threads between two batches leaves OpenBLAS's
    second thread spinning for ~0.1 s on the core the next batch's second group runs on: 21% of a rerank's
    time (bench/RESULTS.md, "Reranking")."""
    with blas_limited_to_one_thread() if runs_in_groups(attention_mask) else contextlib.nullcontext():
        yield


def fast_encoder(x, layers, attention_mask, config, position_bias=None, first_token_only=False):
    # x (batch, seq, hidden), attention_mask (batch, seq) -> (batch, seq, hidden), zeros at padding; or
    # (batch, 1, hidden), each sequence's first real token only
    def run_group(group):
        bias = position_bias if position_bias is None or len(position_bias) == 1 else position_bias[group]
        # one thread for the numba GEMMs too
        return packed_encoder(x[group], layers, attention_mask[group], config, bias, 1, first_token_only)

    return run_in_groups(
        attention_mask,
        run_group,
        lambda: packed_encoder(x, layers, attention_mask, config, position_bias, None, first_token_only),
    )


def pack(x, attention_mask):
    # x (batch, seq, hidden), attention_mask (batch, seq) -> the real tokens side by side, one per column
    # (hidden, tokens); each sequence's first column offsets (batch + 1,); and each token's (sequence, position)
    # index pair, 2 x (tokens,)
    real = attention_mask > 0  # (batch, seq)
    offsets = np.zeros(len(real) + 1, dtype=np.int64)
    np.cumsum(real.sum(axis=1), out=offsets[1:])
    token_index = np.nonzero(real)
    return np.ascontiguousarray(x[token_index].T, dtype=np.float32), offsets, token_index


def packed_encoder(
    x, layers, attention_mask, config, position_bias=None, matmul_threads=None, first_token_only=False
):
    # x (batch, seq, hidden), attention_mask (batch, seq) -> (batch, seq, hidden), zeros at padding; or
    # (batch, 1, hidden), each sequence's first real token only, whose last layer then computes that token alone.
    # Inside, tokens are columns: a linear layer is weight (out, in) @ x (in, tokens), the orientation in which
    # OpenBLAS runs these shapes fastest (bench/RESULTS.md, "Throughput: bench/compare.py", "Tokens as columns").
    # matmul_threads: threads of the numba GEMMs (default: every core; 1 inside a group of fast_encoder's).
    hidden_states, offsets, token_index = pack(x, attention_mask)  # (hidden, tokens)
    hidden, tokens = hidden_states.shape
    threads = matmul_threads or available_cores()
    buffers = layer_buffers(hidden, config["intermediate_size"], tokens)
    if position_bias is not None:
        position_bias = position_bias.astype(np.float32, copy=False)
    matmul = linear_kernel(layers, tokens, threads)
    for layer in layers[:-1] if first_token_only else layers:
        fast_encoder_layer(hidden_states, layer, offsets, token_index[1], config, position_bias, buffers, matmul)
    if first_token_only:
        last = layers[-1]
        first_tokens = first_token_layer(hidden_states, last, offsets, token_index[1], config, position_bias, buffers,
                                         matmul, linear_kernel(layers, len(x), threads))  # (hidden, batch)
        return first_tokens.T[:, None, :]  # (batch, 1, hidden)
    output = np.zeros(x.shape, dtype=np.float32)
    output[token_index] = hidden_states.T
    return output


def layer_buffers(hidden, intermediate, tokens):
    """The arrays a layer writes, for ``tokens`` columns, reused by every layer."""
    return {
        "qkv": np.empty((3 * hidden, tokens), dtype=np.float32),
        "projection": np.empty((hidden, tokens), dtype=np.float32),
        "intermediate": np.empty((intermediate, tokens), dtype=np.float32),
    }


def fast_encoder_layer(x, layer, offsets, positions, config, position_bias, buffers, matmul=None):
    # x (hidden, tokens), updated in place; positions (tokens,) each token's place in its sequence;
    # matmul(linear, x, out): weight @ x without the bias (linear_kernel's choice; default OpenBLAS)
    matmul = matmul or openblas_linear
    qkv = buffers["qkv"]
    matmul(layer["qkv"], x, qkv)  # (3 hidden, tokens)
    qkv += layer["qkv"]["bias"][:, None]
    # (hidden, tokens): each token attends to the tokens of its own sequence
    context = packed_attention(qkv, offsets, config["num_attention_heads"], position_bias, positions)
    after_attention(x, context, layer, config, buffers, matmul)


def first_token_layer(x, layer, offsets, positions, config, position_bias, buffers, matmul, first_tokens_matmul):
    # x (hidden, tokens) -> the layer's output for each sequence's first token (column offsets[i]) alone,
    # (hidden, sequences): keys and values of every token, then the first token's attention and feed-forward
    # block. matmul: the linear layers' kernel for every token, first_tokens_matmul for one token a sequence.
    # (The queries come with the keys and values, from one matmul: a separate one for the first tokens would
    # save a third of it.)
    qkv = buffers["qkv"]
    matmul(layer["qkv"], x, qkv)  # (3 hidden, tokens)
    qkv += layer["qkv"]["bias"][:, None]
    context = first_token_attention(qkv, offsets, config["num_attention_heads"], position_bias, positions)
    first_tokens = np.ascontiguousarray(x[:, offsets[:-1]])  # (hidden, sequences)
    hidden, sequences = first_tokens.shape
    buffers = layer_buffers(hidden, config["intermediate_size"], sequences)
    after_attention(first_tokens, context, layer, config, buffers, first_tokens_matmul)
    return first_tokens


def first_token_attention(qkv, offsets, num_heads, position_bias, positions):
    # qkv (3 hidden, tokens) -> context (hidden, sequences): each sequence's first token attending to the
    # tokens of its sequence, softmax(q k^T / sqrt(head_dim) + bias) v for one query per head
    hidden = qkv.shape[0] // 3
    head_dim = hidden // num_heads
    context = np.empty((hidden, len(offsets) - 1), dtype=np.float32)
    for i, (start, stop) in enumerate(itertools.pairwise(offsets)):
        # each (heads, head_dim, length)
        query, key, value = qkv[:, start:stop].reshape(3, num_heads, head_dim, stop - start)
        scores = np.einsum("hd,hdl->hl", query[:, :, 0], key) / np.sqrt(np.float32(head_dim))  # (heads, length)
        if position_bias is not None:
            scores += position_bias[min(i, len(position_bias) - 1)][:, positions[start], positions[start:stop]]
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        probabilities = scores / scores.sum(axis=1, keepdims=True)
        context[:, i] = np.einsum("hdl,hl->hd", value, probabilities).reshape(hidden)
    return context


def after_attention(x, context, layer, config, buffers, matmul):
    # x (hidden, columns) updated in place from the attention's context (hidden, columns): the attention's
    # output projection and LayerNorm, then the feed-forward block and its LayerNorm
    eps = config["layer_norm_eps"]
    projection, intermediate = buffers["projection"], buffers["intermediate"]
    matmul(layer["attention_output"], context, projection)  # (hidden, tokens)
    norm = layer["attention_norm"]
    bias_residual_layer_norm(projection, layer["attention_output"]["bias"], x, norm["weight"], norm["bias"], eps)
    matmul(layer["intermediate"], x, intermediate)  # (intermediate, tokens)
    if config["hidden_act"] == "gelu":  # exact GELU: fused with the bias, one pass over the matrix
        bias_gelu(intermediate, layer["intermediate"]["bias"])
    else:
        intermediate += layer["intermediate"]["bias"][:, None]
        intermediate[:] = activation(config["hidden_act"])(intermediate)
    matmul(layer["output"], intermediate, projection)  # (hidden, tokens)
    norm = layer["output_norm"]
    bias_residual_layer_norm(projection, layer["output"]["bias"], x, norm["weight"], norm["bias"], eps)


# --- the linear layers' matmul: OpenBLAS, the packed numba GEMM, or int8 ------------------------------------

# Up to this many tokens in a call, the packed numba GEMM (weights packed once, threads over output rows) beats
# OpenBLAS, which repacks the weights on every call; above, OpenBLAS wins. Measured by bench/matmul.py:
# bench/RESULTS.md, section "Packed GEMM (bench/matmul.py)".
PACKED_GEMM_MAX_TOKENS = 32


def openblas_linear(linear, x, out):
    # linear {"weight": (out, in), "bias"}, x (in, tokens) -> out (out, tokens) = weight @ x (no bias)
    return np.matmul(linear["weight"], x, out=out)


def packed_linear(linear, x, out, threads):
    # as openblas_linear, with the weight packed at first use and kept on the layer's dict
    if "packed" not in linear:
        linear["packed"] = pack_weight(linear["weight"])
    return matmul_4_threaded(linear["packed"], x, out, threads)


def quantized_linear(linear, x, out, threads):
    # as openblas_linear, in int8 (weights quantized by quantize_linear_layers, each token on the fly)
    return int8_linear(linear["int8"], x, out, threads)


def linear_kernel(layers, tokens, threads):
    """The matmul of the linear layers for a call of ``tokens`` tokens: int8 if the layers were quantized,
    else the packed numba GEMM up to PACKED_GEMM_MAX_TOKENS tokens, else OpenBLAS."""
    if layers and any(isinstance(part, dict) and "int8" in part for part in layers[0].values()):
        return functools.partial(quantized_linear, threads=threads)
    if tokens <= PACKED_GEMM_MAX_TOKENS:
        return functools.partial(packed_linear, threads=threads)
    return openblas_linear


# Keys a linear layer's dict gains from its "weight" (packed_linear, quantize_linear_layers): stale once the weight
# changes, so training drops them.
DERIVED_WEIGHT_KEYS = ("packed", "int8")


def quantize_linear_layers(layers):
    """Adds {"int8": quantize_weight(weight)} to every linear layer (a dict with a 2-D weight) of each layer:
    encode then computes them in int8 (LayerNorm, softmax and GELU stay float32)."""
    for layer in layers:
        for part in layer.values():
            if isinstance(part, dict) and getattr(part.get("weight"), "ndim", 0) == 2:
                part["int8"] = quantize_weight(part["weight"])
    return layers
