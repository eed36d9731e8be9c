"""The backward pass of the encoder, one function beside each forward piece of architectures/layers.py.

Each ``*_backward`` takes the gradient of the loss with respect to a piece's output (``d_out``, same shape as
the output) and what the forward pass saw, and returns the gradient with respect to the piece's input and, for
pieces with weights, a dict of parameter gradients shaped as the parameters. LayerNorm recomputes what it needs
from its input, so the forward pass only has to keep inputs; the activation keeps its derivative (computed with
the activation itself, in one pass); attention keeps its queries, keys, values and probabilities.

``encoder_layer_forward`` / ``encoder_forward`` are the training forward pass: architectures/layers.py's functions, in
the same order, with dropout (a seeded mask) and a ``cache`` of the activations the backward pass reads.
Everything runs in the dtype of its inputs: float32 for training, float64 for gradient checks.

The encoder holds the real tokens only, packed as the rows of a (tokens, hidden) matrix (``real_tokens``
says which (sequence, position) each row is), so that the linear layers, LayerNorm, GELU and dropout do no work
on padding: a batch of sentence pairs is mostly padding when one sentence is long. Only attention unpacks them
into (batch, seq) to mask the padded keys. A padded position's output is never read (the pooling and the
next layer's keys mask it), so its gradient is zero and leaving it out changes no gradient.
"""

import math

import numba
import numpy as np

from minisbert.architectures.layers import (
    activation,
    additive_attention_mask,
    layer_norm,
    linear,
    merge_heads,
    softmax,
    split_heads,
)
from minisbert.kernels import normalization
from minisbert.kernels.activations import bias_gelu_with_derivative
from minisbert.kernels.embedding import embedding_gradient

# ---------------------------------------------------------------------------------------------- pieces


def linear_backward(d_out, x, layer):
    # d_out (..., out), x (..., in), layer["weight"] (out, in) -> d_x (..., in), {"weight" (out, in), "bias" (out,)}
    d_flat, x_flat = d_out.reshape(-1, d_out.shape[-1]), x.reshape(-1, x.shape[-1])  # (n, out), (n, in)
    d_x = (d_flat @ layer["weight"]).reshape(x.shape)
    return d_x, {"weight": d_flat.T @ x_flat, "bias": d_flat.sum(axis=0)}


def layer_norm_backward(d_out, x, layer, eps):
    # d_out, x (..., hidden) -> d_x (..., hidden), {"weight" (hidden,), "bias" (hidden,)}: the formula is
    # kernels/normalization.py's layer_norm_backward_reference, run as its one-pass kernel
    hidden = x.shape[-1]
    d_x, d_weight, d_bias = normalization.layer_norm_backward(
        d_out.reshape(-1, hidden), x.reshape(-1, hidden), layer["weight"], eps
    )
    return d_x.reshape(x.shape), {"weight": d_weight, "bias": d_bias}


_SQRT_HALF = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def gelu_derivative_reference(x):
    # d/dx x Phi(x) = Phi(x) + x phi(x), with Python's math.erf one element at a time
    erf = np.frompyfunc(math.erf, 1, 1)
    cdf = 0.5 * (1 + erf(x * _SQRT_HALF).astype(np.float64))
    return (cdf + x * np.exp(-0.5 * x * x) * _INV_SQRT_2PI).astype(x.dtype)


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def gelu_derivative(x):
    # computed in float64 whatever the input, rounded once to the input's dtype
    x = np.float64(x)
    return 0.5 * (1 + math.erf(x * _SQRT_HALF)) + x * math.exp(-0.5 * x * x) * _INV_SQRT_2PI


def gelu_tanh_derivative(x):
    # GELU's tanh approximation 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3):
    # 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# hidden_act (as in architectures.layers.ACTIVATIONS) -> derivative as a function of the activation's input
ACTIVATION_DERIVATIVES = {
    "gelu": gelu_derivative,
    "gelu_new": gelu_tanh_derivative,
    "gelu_pytorch_tanh": gelu_tanh_derivative,
    "relu": lambda x: (x > 0).astype(x.dtype),
    "silu": lambda x: sigmoid(x) * (1 + x * (1 - sigmoid(x))),
    "swish": lambda x: sigmoid(x) * (1 + x * (1 - sigmoid(x))),
    "tanh": lambda x: 1 - np.tanh(x) ** 2,
}


def linear_activation_forward(x, layer, name):
    # x (tokens, in) -> activation(linear(x)) (tokens, out) and the activation's derivative at linear(x)
    # (tokens, out), which is all the backward pass needs of it (the gradient through the activation is d_out *
    # derivative). The exact GELU in float32 is one fused kernel (bias, GELU and its derivative in one pass, erf
    # and exp vectorized); float64 (gradient checks) and the other activations take the exact ufuncs.
    if name not in ACTIVATION_DERIVATIVES:
        raise ValueError(f"training does not support hidden_act {name!r}; supported: {sorted(ACTIVATION_DERIVATIVES)}")
    if name == "gelu" and x.dtype == np.float32:
        return bias_gelu_with_derivative(x @ layer["weight"].T, layer["bias"])
    pre = linear(x, layer)
    return activation(name)(pre), ACTIVATION_DERIVATIVES[name](pre)


def softmax_backward(d_out, probabilities):
    # d_out, probabilities (..., n) -> d_scores (..., n) = p * (d_out - sum(d_out * p))
    return probabilities * (d_out - (d_out * probabilities).sum(axis=-1, keepdims=True))


def dropout(x, rate, rng):
    # x (...) -> x * mask / (1 - rate), mask (...) bool drawn from rng (None, nothing dropped, when rate is 0 or
    # rng is None: evaluation mode)
    if rate == 0 or rng is None:
        return x, None
    keep = rng.random(x.shape, dtype=x.dtype) >= rate  # float32 draws for float32 x: half the bytes, ~2x as fast
    return x * keep / x.dtype.type(1 - rate), keep


def dropout_backward(d_out, keep, rate):
    return d_out if keep is None else d_out * keep / d_out.dtype.type(1 - rate)


def embedding_backward(d_out, ids, rows):
    # d_out (..., hidden), ids (...) int -> d_table (rows, hidden): each position's gradient added to its id's
    # row, so that an id met several times gets the sum
    return embedding_gradient(d_out.reshape(-1, d_out.shape[-1]), ids.reshape(-1), rows)


def real_tokens(attention_mask):
    # attention_mask (batch, seq) -> the real tokens' (sequence, position) index pair, 2 x (tokens,), in
    # row-major order: the rows of the packed (tokens, width) matrices
    return np.nonzero(attention_mask)


def unpack(packed, real, shape):
    # packed (tokens, width), real 2 x (tokens,), shape (batch, seq) -> (batch, seq, width), zeros at padding
    padded = np.zeros((*shape, packed.shape[-1]), dtype=packed.dtype)
    padded[real] = packed
    return padded


# ---------------------------------------------------------------------------------------------- attention


def attention_forward(x, layer, real, mask, num_heads, position_bias, dropout_rate, rng):
    # x (tokens, hidden) packed as real (2 x (tokens,)) says, mask (batch, 1, 1, seq) additive, position_bias
    # (1, heads, seq, seq) or None -> output (tokens, hidden), cache; as architectures.layers.self_attention, with
    # dropout on the probabilities
    qkv = unpack(linear(x, layer["qkv"]), real, (len(mask), mask.shape[-1]))  # (batch, seq, 3 hidden)
    query, key, value = (split_heads(t, num_heads) for t in np.split(qkv, 3, axis=-1))  # (batch, heads, seq, head_dim)
    scale = x.dtype.type(1 / np.sqrt(query.shape[-1]))
    scores = query @ key.transpose(0, 1, 3, 2) * scale  # (batch, heads, seq, seq)
    if position_bias is not None:
        scores = scores + position_bias
    probabilities = softmax(scores + mask)  # (batch, heads, seq, seq)
    dropped, keep = dropout(probabilities, dropout_rate, rng)
    context = merge_heads(dropped @ value)[real]  # (tokens, hidden)
    cache = dict(x=x, real=real, query=query, key=key, value=value, probabilities=probabilities, dropped=dropped,
                 keep=keep, context=context, scale=scale, rate=dropout_rate)
    return linear(context, layer["attention_output"]), cache


def attention_backward(d_out, layer, cache):
    # d_out (tokens, hidden) -> d_x (tokens, hidden), grads {"qkv", "attention_output"}, d_position_bias
    # (heads, seq, seq) summed over the batch
    d_context, d_output_layer = linear_backward(d_out, cache["context"], layer["attention_output"])
    batch, num_heads, seq, _ = cache["query"].shape
    d_context = split_heads(unpack(d_context, cache["real"], (batch, seq)), num_heads)  # (batch, heads, seq, head_dim)
    d_value = cache["dropped"].transpose(0, 1, 3, 2) @ d_context  # (batch, heads, seq, head_dim)
    d_dropped = d_context @ cache["value"].transpose(0, 1, 3, 2)  # (batch, heads, seq, seq)
    d_probabilities = dropout_backward(d_dropped, cache["keep"], cache["rate"])
    d_scores = softmax_backward(d_probabilities, cache["probabilities"])  # (batch, heads, seq, seq)
    d_query = d_scores @ cache["key"] * cache["scale"]
    d_key = d_scores.transpose(0, 1, 3, 2) @ cache["query"] * cache["scale"]
    real = cache["real"]
    d_qkv = np.concatenate([merge_heads(d)[real] for d in (d_query, d_key, d_value)], axis=-1)  # (tokens, 3 hidden)
    d_x, d_qkv_layer = linear_backward(d_qkv, cache["x"], layer["qkv"])
    return d_x, {"qkv": d_qkv_layer, "attention_output": d_output_layer}, d_scores.sum(axis=0)


# ---------------------------------------------------------------------------------------------- layers


def encoder_layer_forward(x, layer, real, mask, config, position_bias, rng):
    # x (tokens, hidden) packed, mask (batch, 1, 1, seq) -> (tokens, hidden), cache; as
    # architectures.layers.encoder_layer, with dropout after the attention and the feed-forward block
    eps, rate = config["layer_norm_eps"], config["hidden_dropout_prob"]
    attention_output, attention_cache = attention_forward(
        x, layer, real, mask, config["num_attention_heads"], position_bias, config["attention_probs_dropout_prob"], rng
    )
    attention_output, attention_keep = dropout(attention_output, rate, rng)
    attention_residual = x + attention_output  # (tokens, hidden)
    h = layer_norm(attention_residual, layer["attention_norm"], eps)
    activated, activation_derivative = linear_activation_forward(h, layer["intermediate"], config["hidden_act"])
    feed_forward, feed_forward_keep = dropout(linear(activated, layer["output"]), rate, rng)
    output_residual = h + feed_forward
    cache = dict(attention=attention_cache, attention_keep=attention_keep, attention_residual=attention_residual,
                 h=h, activated=activated, activation_derivative=activation_derivative,
                 feed_forward_keep=feed_forward_keep, output_residual=output_residual)
    return layer_norm(output_residual, layer["output_norm"], eps), cache


def encoder_layer_backward(d_out, layer, config, cache):
    # d_out (tokens, hidden) -> d_x (tokens, hidden), grads shaped as ``layer``, d_position_bias
    eps, rate = config["layer_norm_eps"], config["hidden_dropout_prob"]
    grads = {}
    d_residual, grads["output_norm"] = layer_norm_backward(d_out, cache["output_residual"], layer["output_norm"], eps)
    d_feed_forward = dropout_backward(d_residual, cache["feed_forward_keep"], rate)
    d_activated, grads["output"] = linear_backward(d_feed_forward, cache["activated"], layer["output"])
    d_intermediate = d_activated * cache["activation_derivative"]  # (tokens, intermediate)
    d_h, grads["intermediate"] = linear_backward(d_intermediate, cache["h"], layer["intermediate"])
    d_h = d_h + d_residual
    d_residual, grads["attention_norm"] = layer_norm_backward(
        d_h, cache["attention_residual"], layer["attention_norm"], eps
    )
    d_attention_output = dropout_backward(d_residual, cache["attention_keep"], rate)
    d_x, attention_grads, d_position_bias = attention_backward(d_attention_output, layer, cache["attention"])
    grads.update(attention_grads)
    return d_x + d_residual, grads, d_position_bias


def encoder_forward(x, layers, attention_mask, real, config, position_bias, rng):
    # x (tokens, hidden) embeddings packed as real = real_tokens(attention_mask) says, attention_mask (batch, seq)
    # -> (tokens, hidden), caches (one a layer)
    mask = additive_attention_mask(attention_mask, x.dtype)
    caches = []
    for layer in layers:
        x, cache = encoder_layer_forward(x, layer, real, mask, config, position_bias, rng)
        caches.append(cache)
    return x, caches


def encoder_backward(d_out, layers, config, caches):
    # d_out (tokens, hidden) -> d_x (tokens, hidden), [grads of each layer], d_position_bias summed
    # over layers (heads, seq, seq)
    layer_grads, d_position_bias = [None] * len(layers), 0
    for index in reversed(range(len(layers))):
        d_out, layer_grads[index], d_bias = encoder_layer_backward(d_out, layers[index], config, caches[index])
        d_position_bias = d_position_bias + d_bias
    return d_out, layer_grads, d_position_bias
