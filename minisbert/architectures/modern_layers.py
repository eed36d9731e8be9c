"""The pieces of today's encoders and decoders (ModernBERT, Qwen3, Gemma 3, T5), as pure functions over NumPy
arrays, beside layers.py's BERT ones: RMSNorm, rotary position embeddings, gated feed-forward blocks,
grouped-query attention and the masks it reads (padding, causal, sliding window). Each architecture module
assembles its pre-norm layers from these. Float32 throughout, rounded the way transformers rounds them.
The same layer code runs on either layout of a batch: PaddedBatch (the readable reference, which can record
attention probabilities) or PackedBatch (the fast path: real tokens only, attention per sequence in a kernel);
reference_or_fast.run_layout chooses.

Config readers are here too: the rotary settings and layer types of a config.json, whether written by
transformers 5 (``layer_types``, ``rope_parameters``) or by older versions (``rope_theta``, ``rope_scaling``,
ModernBERT's ``global_rope_theta``...), with an error naming the key and value of any option not implemented.
"""

import numpy as np

from minisbert.architectures.layers import activation, softmax
from minisbert.files.loading import POSITIVE_NUMBER
from minisbert.kernels.gated_activation import ACTIVATION_CODES, gated_activation
from minisbert.kernels.masked_attention import packed_masked_attention, packed_masked_attention_over_cores
from minisbert.kernels.matmul import matmul_4_threaded
from minisbert.kernels.rms_norm import row_norm
from minisbert.kernels.rotary import rotary_heads
from minisbert.runtime.threads import blas_limited_to_one_thread


class UnsupportedConfigError(ValueError):
    """config.json asks for a variant of a known architecture that minisbert does not implement."""


def unsupported(model_type, key, value, supported):
    return UnsupportedConfigError(
        f"unsupported {model_type} option: config.json has {key} = {value!r}; minisbert implements {supported}"
    )


def check_value(model_type, key, value, check):
    """value (config.json's ``key``), refused unless it passes ``check``, one of files.loading's (what it must be,
    test) pairs (POSITIVE_NUMBER, POSITIVE_SIZE...): a zero, negative, NaN or string size, window, epsilon or
    rotary base would otherwise surface as a Python error deep in the model or as NaN embeddings."""
    description, test = check
    if not test(value):
        raise UnsupportedConfigError(f"{model_type} config.json has {key} = {value!r:.80}; it must be {description}")
    return value


def rms_norm(x, weight, eps, offset=0.0):
    # x (..., hidden) -> (..., hidden): x / sqrt(mean(x^2) + eps) * (offset + weight); Gemma stores its weight
    # as a difference from 1 (offset 1), the others as the scale itself (offset 0); no mean is subtracted
    scale = weight if offset == 0 else np.float32(offset) + weight
    return row_norm(x, scale, eps, subtract_mean=False)


def layer_norm_without_bias(x, weight, eps):
    # x (..., hidden) -> (..., hidden): LayerNorm with a scale and no shift (ModernBERT's norm_bias = false)
    return row_norm(x, weight, eps, subtract_mean=True)


def compiled_activation(name):
    """The activation config.json names, called once now: a numba ufunc compiles at its first call, which must
    not happen in two of the encoder's threads at once."""
    function = activation(name)
    function(np.zeros(1, dtype=np.float32))
    return function


# Up to this many tokens a linear layer runs in kernels.matmul's numba GEMM over the weight as stored (memory-mapped:
# no packed copy, no memory beyond the weights; unaligned, it ran within 10% of pack_weight's layout), on every core;
# above, OpenBLAS's x @ weight.T, which repacks the whole weight on every call. One thread, weights 2304 x 768 and
# 3072 x 1024 (ms, x @ weight.T -> numba): 8 tokens 0.96 -> 0.38, 24 1.19 -> 0.75, 60 1.80 -> 1.58, 120 2.80 -> 2.96.
NUMBA_GEMM_MAX_TOKENS = 16


def linear_without_bias(x, weight):
    # x (..., in), weight (out, in) -> (..., out)
    rows = x.reshape(-1, x.shape[-1])  # (tokens, in)
    if len(rows) > NUMBA_GEMM_MAX_TOKENS:
        return x @ weight.T
    out = np.empty((len(rows), len(weight)), dtype=np.float32)  # (tokens, out), written through its transpose
    matmul_4_threaded({"weight": weight, "shape": weight.shape}, rows.T, out.T)
    return out.reshape(x.shape[:-1] + (len(weight),))


def activated_times(gate, up, hidden_act):
    # gate, up (..., intermediate) -> act(gate) * up: in one fused pass written into gate for the activations
    # kernels.gated_activation has (GELU, tanh GELU, SiLU), else in NumPy (ReLU, tanh)
    if hidden_act in ACTIVATION_CODES:
        return gated_activation(gate, up, hidden_act)
    return activation(hidden_act)(gate) * up


def gated_mlp(x, gate_weight, up_weight, down_weight, hidden_act):
    # x (..., hidden), gate/up (intermediate, hidden), down (hidden, intermediate) -> (..., hidden):
    # down(act(gate x) * up x); GeGLU with a GELU, SwiGLU with SiLU
    gated = activated_times(linear_without_bias(x, gate_weight), linear_without_bias(x, up_weight), hidden_act)
    return linear_without_bias(gated, down_weight)


# --- rotary position embeddings (Su et al., 2021) ---


def rotary_inverse_frequencies(theta, head_dim):
    # -> (head_dim / 2,) float32: theta^(-2i / head_dim), computed in float32 as transformers does
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    return (np.float32(1.0) / np.power(np.float32(theta), exponents)).astype(np.float32)


def rotary_tables(inverse_frequencies, positions):
    # positions (seq,) -> cos, sin (seq, head_dim): position p's angles p * frequency, each frequency twice
    # (halves, not pairs)
    angles = positions.astype(np.float32)[:, None] * inverse_frequencies[None, :]  # (seq, head_dim / 2)
    angles = np.concatenate([angles, angles], axis=-1)  # (seq, head_dim)
    return np.cos(angles), np.sin(angles)


def rope_settings(config, layer_type, model_type, legacy_theta_keys, default_theta):
    """The rotary base (theta) of ``layer_type``'s layers: transformers 5's rope_parameters (one dict, or one
    per layer type), else the older keys, else the architecture's default. Scaled rope is an error."""
    parameters = config.get("rope_parameters") or {}
    theta_key = "rope_parameters.rope_theta"
    if not isinstance(parameters, dict):
        raise unsupported(model_type, "rope_parameters", parameters, "a dict (or one per layer type)")
    if layer_type in parameters:
        parameters = parameters[layer_type] or {}
        theta_key = f"rope_parameters.{layer_type}.rope_theta"
        if not isinstance(parameters, dict):
            raise unsupported(model_type, f"rope_parameters.{layer_type}", parameters, "a dict")
    elif any(key in parameters for key in ("full_attention", "sliding_attention")):
        parameters = {}
    scaling = config.get("rope_scaling") or {}
    if not isinstance(scaling, dict):
        raise unsupported(model_type, "rope_scaling", scaling, "a dict")
    for source, key in ((parameters, "rope_parameters"), (scaling, "rope_scaling")):
        rope_type = source.get("rope_type", source.get("type", "default"))
        if rope_type != "default":
            raise unsupported(model_type, f"{key}.rope_type", rope_type, "only the default (unscaled) rotary embedding")
    factor = parameters.get("partial_rotary_factor", config.get("partial_rotary_factor"))
    if factor not in (None, 1, 1.0):
        raise unsupported(model_type, "partial_rotary_factor", factor, "rotary embeddings over the whole head")
    if "rope_theta" in parameters:
        return float(check_value(model_type, theta_key, parameters["rope_theta"], POSITIVE_NUMBER))
    for key in legacy_theta_keys:
        if config.get(key) is not None:
            return float(check_value(model_type, key, config[key], POSITIVE_NUMBER))
    return float(default_theta)


def rotary_by_layer_type(config, model_type, legacy_theta_keys, default_theta, head_dim):
    """{"full_attention", "sliding_attention"} -> each kind of layer's rotary inverse frequencies (head_dim / 2,),
    for models whose global and sliding-window layers have their own rotary base (ModernBERT, Gemma 3).
    legacy_theta_keys and default_theta are dicts by layer type (rope_settings)."""
    return {
        kind: rotary_inverse_frequencies(
            rope_settings(config, kind, model_type, legacy_theta_keys[kind], default_theta[kind]), head_dim
        )
        for kind in ("full_attention", "sliding_attention")
    }


def check_layer_types(config, model_type):
    # -> the list of layer types, one per layer, each "full_attention" or "sliding_attention"
    layer_types = config["layer_types"]
    if len(layer_types) != config["num_hidden_layers"]:
        raise UnsupportedConfigError(
            f"{model_type} config.json has {len(layer_types)} layer_types for {config['num_hidden_layers']} layers"
        )
    for layer_type in layer_types:
        if layer_type not in ("full_attention", "sliding_attention"):
            raise unsupported(model_type, "layer_types", layer_type, "full_attention and sliding_attention")
    return list(layer_types)


# --- the two layouts of a batch, attention masks and grouped-query attention ---


class PaddedBatch:
    """The reference layout: the batch as the tokenizer padded it, x (batch, seq, hidden); attention over every
    position with the masks as additive biases (layers.py's way), recording its probabilities."""

    def __init__(self, input_ids, attention_mask):
        self.shape = input_ids.shape  # (batch, seq)
        self.ids = input_ids
        self.attention_mask = attention_mask
        self.positions = np.arange(input_ids.shape[1])  # (seq,) each column's position, for rotary tables

    def attention(self, scaling, causal=False, window=None, position_bias=None):
        # position_bias (heads, seq, seq) or None -> attend(query, key, value) -> context (batch, heads, seq,
        # head_dim), probabilities
        bias = attention_bias(self.attention_mask, causal, window)  # (batch, 1, seq, seq)
        # a query that may attend no key (padding outside every window, or before every token when causal) gets
        # no context, as torch's scaled_dot_product_attention gives it with transformers' boolean masks (what
        # sentence-transformers runs); eager attention would spread it evenly over every key instead
        attends_a_key = (bias == 0).any(axis=-1, keepdims=True)  # (batch, 1, seq, 1)
        if position_bias is not None:
            bias = bias + position_bias[None]  # (batch, heads, seq, seq)

        def attend(query, key, value):
            context, probabilities = grouped_query_attention(query, key, value, bias, scaling)
            return context * attends_a_key, probabilities * attends_a_key

        return attend

    def unpack(self, x):
        return x


class PackedBatch:
    """The fast layout: the real tokens of the batch side by side, x (1, tokens, hidden), so that no work is
    spent on padding; attention per sequence in kernels.masked_attention. Positions are each token's column in
    the padded batch, as transformers counts them (with left padding they start after the padding)."""

    def __init__(self, input_ids, attention_mask, heads_over_cores):
        # heads_over_cores: attention's heads split over the cores (a batch run whole, not one group of several)
        self.attention_kernel = packed_masked_attention_over_cores if heads_over_cores else packed_masked_attention
        self.shape = input_ids.shape
        self.token_index = np.nonzero(attention_mask > 0)  # (sequence, column) of each real token
        self.ids = input_ids[self.token_index][None]  # (1, tokens)
        self.positions = self.token_index[1]  # (tokens,)
        self.offsets = np.concatenate([[0], np.cumsum((attention_mask > 0).sum(axis=1))])  # (batch + 1,)

    def attention(self, scaling, causal=False, window=None, position_bias=None):
        # position_bias (heads, seq, seq) or None, by position in the sequence -> attend(query, key, value) ->
        # context (1, heads, tokens, head_dim), None (no probabilities kept)
        def attend(query, key, value):
            # one OpenBLAS thread for the small per-sequence products (as each group of run_layout has anyway)
            with blas_limited_to_one_thread():
                context = self.attention_kernel(
                    query[0], key[0], value[0], self.offsets, scaling, causal, window, position_bias
                )
            return context[None], None

        return attend

    def unpack(self, x):
        # x (1, tokens, hidden) -> (batch, seq, hidden), zeros at padding
        output = np.zeros(self.shape + x.shape[-1:], dtype=x.dtype)
        output[self.token_index] = x[0]
        return output


def attention_bias(attention_mask, causal=False, window=None, dtype=np.float32):
    # attention_mask (batch, seq) of 1 / 0 -> (batch, 1, seq, seq) additive: 0 where query q may attend key k,
    # the most negative float where not. A key must be a token (not padding), and also: before or at the query
    # (causal), within ``window`` positions of it on either side (|q - k| <= window), or both.
    seq = attention_mask.shape[1]
    positions = np.arange(seq)
    allowed = np.broadcast_to(attention_mask[:, None, :] > 0, (len(attention_mask), seq, seq))  # (batch, q, k)
    if causal:
        allowed = allowed & (positions[None, :] <= positions[:, None])[None]
    if window is not None:
        allowed = allowed & (np.abs(positions[None, :] - positions[:, None]) <= window)[None]
    return np.where(allowed[:, None], 0.0, np.finfo(dtype).min).astype(dtype)


def grouped_query_attention(query, key, value, bias, scaling):
    # query (batch, heads, seq, head_dim), key/value (batch, kv_heads, seq, head_dim), bias (batch, 1, seq, seq)
    # -> context (batch, heads, seq, head_dim), probabilities (batch, heads, seq, seq). Each key/value head
    # serves heads / kv_heads consecutive query heads.
    groups = query.shape[1] // key.shape[1]
    key, value = np.repeat(key, groups, axis=1), np.repeat(value, groups, axis=1)
    scores = query @ key.transpose(0, 1, 3, 2) * np.float32(scaling)  # (batch, heads, seq, seq)
    probabilities = softmax(scores + bias)
    return probabilities @ value, probabilities


def rotary_self_attention(x, layer, attend, cos, sin, head_dim, qk_norm=None):
    # x (batch, seq, hidden) normed, layer {"query", "key", "value", "output"} weights (out, in) and optionally
    # "query_norm"/"key_norm" (head_dim,) read by qk_norm(x, weight), attend from a layout's attention(...),
    # cos/sin (seq, head_dim) -> (batch, seq, hidden), probabilities (batch, heads, seq, seq) or None
    batch, seq, _ = x.shape
    query, key, value = (
        linear_without_bias(x, layer[name]).reshape(batch, seq, -1, head_dim) for name in ("query", "key", "value")
    )  # (batch, seq, heads or kv_heads, head_dim)
    if qk_norm is not None:  # each head's query and key normalised on their own (Qwen3, Gemma 3)
        query, key = qk_norm(query, layer["query_norm"]), qk_norm(key, layer["key_norm"])
    # -> (batch, heads or kv_heads, seq, head_dim), rotated by position (kernels.rotary)
    query, key = rotary_heads(query, cos, sin), rotary_heads(key, cos, sin)
    context, probabilities = attend(query, key, value.transpose(0, 2, 1, 3))
    return linear_without_bias(merge_heads(context), layer["output"]), probabilities


def attention_weights(checkpoint, name, config, head_dim, norms=True):
    """A layer's q/k/v/o projections (transformers' Llama naming: {name}.q_proj ...) and its per-head q/k
    norms, from a checkpoint.Checkpoint."""
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads  # transformers' default: one per query head
    weights = {
        "query": checkpoint.take(f"{name}.q_proj.weight", (heads * head_dim, hidden)),
        "key": checkpoint.take(f"{name}.k_proj.weight", (kv_heads * head_dim, hidden)),
        "value": checkpoint.take(f"{name}.v_proj.weight", (kv_heads * head_dim, hidden)),
        "output": checkpoint.take(f"{name}.o_proj.weight", (hidden, heads * head_dim)),
    }
    if norms:
        weights["query_norm"] = checkpoint.take(f"{name}.q_norm.weight", (head_dim,))
        weights["key_norm"] = checkpoint.take(f"{name}.k_norm.weight", (head_dim,))
    return weights


def gated_mlp_weights(checkpoint, name, config):
    hidden, intermediate = config["hidden_size"], config["intermediate_size"]
    return {
        "gate": checkpoint.take(f"{name}.gate_proj.weight", (intermediate, hidden)),
        "up": checkpoint.take(f"{name}.up_proj.weight", (intermediate, hidden)),
        "down": checkpoint.take(f"{name}.down_proj.weight", (hidden, intermediate)),
    }


def split_heads(x, head_dim):
    # x (batch, seq, heads * head_dim) -> (batch, heads, seq, head_dim)
    batch, seq, width = x.shape
    return x.reshape(batch, seq, width // head_dim, head_dim).transpose(0, 2, 1, 3)


def merge_heads(x):
    # x (batch, heads, seq, head_dim) -> (batch, seq, heads * head_dim)
    batch, heads, seq, head_dim = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, seq, heads * head_dim)


def record_layer(record, name, value):
    if record is not None:
        record.setdefault(name, []).append(value)
