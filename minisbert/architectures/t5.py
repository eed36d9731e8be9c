"""The T5 encoder (Raffel et al., 2019), as sentence-t5 and GTR use it (sentence-transformers loads T5 through
transformers' T5EncoderModel): token embeddings, then pre-norm layers of self-attention and a feed-forward
block, and a final norm. T5's norm is an RMSNorm (no mean, no bias); attention scores are not divided by
sqrt(head_dim) and get a learned bias per head and bucket of key - query distance (the buckets of MPNet, which
took them from T5), computed by the first layer and added in every layer. The feed-forward block is
ReLU (t5) or gated GELU (t5 v1.1, mT5: ``feed_forward_proj = "gated-gelu"``).
"""

import functools

import numpy as np

from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import activation, embedding_lookup
from minisbert.architectures.modern_layers import (
    check_value,
    compiled_activation,
    gated_mlp,
    linear_without_bias,
    merge_heads,
    record_layer,
    rms_norm,
    split_heads,
    unsupported,
)
from minisbert.architectures.mpnet import relative_position_bucket
from minisbert.architectures.reference_or_fast import run_layout
from minisbert.files.loading import LARGEST_SIZE, POSITIVE_NUMBER, POSITIVE_SIZE, TEXT, is_size

# transformers' T5Config defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {
    "d_kv": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "layer_norm_epsilon": 1e-6,
    "feed_forward_proj": "relu",
}
# 4 buckets at least: a quarter of them are exact distances (none of 3 or fewer), the rest log-spaced
BUCKETS = (f"a whole number from 4 to {LARGEST_SIZE}", lambda value: is_size(value) and value >= 4)
CONFIG_ALIASES = {
    "hidden_size": "d_model",
    "num_attention_heads": "num_heads",
    "num_hidden_layers": "num_layers",
    "intermediate_size": "d_ff",
}


def feed_forward_kind(config):
    # -> (gated, activation name) as transformers' T5Config reads feed_forward_proj ("relu", "gated-gelu", ...)
    proj = config["feed_forward_proj"]
    check_value("t5", "feed_forward_proj", proj, TEXT)
    parts = proj.split("-")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
        raise unsupported("t5", "feed_forward_proj", proj, "'{act}' or 'gated-{act}'")
    name = "gelu_new" if proj == "gated-gelu" else parts[-1]
    compiled_activation(name)
    return len(parts) == 2, name


def position_bias(relative_attention_bias, seq_len, config):
    # relative_attention_bias (buckets, heads) -> (heads, seq, seq), added to every layer's attention scores
    positions = np.arange(seq_len)
    buckets = relative_position_bucket(
        positions[None, :] - positions[:, None],
        config["relative_attention_num_buckets"],
        config["relative_attention_max_distance"],
    )  # (seq, seq)
    return np.ascontiguousarray(relative_attention_bias[buckets].transpose(2, 0, 1))


def self_attention(x, layer, attend, head_dim):
    # x (batch, seq, hidden) normed, attend from a layout's attention(...) -> (batch, seq, hidden), probabilities
    # (batch, heads, seq, seq) or None
    query, key, value = (split_heads(linear_without_bias(x, layer[name]), head_dim) for name in ("q", "k", "v"))
    context, probabilities = attend(query, key, value)
    return linear_without_bias(merge_heads(context), layer["o"]), probabilities


def encoder_layer(x, layer, attend, config):
    # x (batch, seq, hidden) -> (batch, seq, hidden), probabilities (batch, heads, seq, seq)
    eps = config["layer_norm_epsilon"]
    normed = rms_norm(x, layer["attention_norm"], eps)
    attention_output, probabilities = self_attention(normed, layer, attend, config["d_kv"])
    x = x + attention_output
    normed = rms_norm(x, layer["mlp_norm"], eps)
    gated, name = feed_forward_kind(config)
    if gated:
        return x + gated_mlp(normed, layer["wi_0"], layer["wi_1"], layer["wo"], name), probabilities
    hidden = activation(name)(linear_without_bias(normed, layer["wi"]))  # (batch, seq, d_ff)
    return x + linear_without_bias(hidden, layer["wo"]), probabilities


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask (batch, seq) -> token embeddings (batch, seq, hidden); packed unless recording
    run = functools.partial(layers_forward, params, config)
    return run_layout(run, input_ids, attention_mask, record, first_token_only)


def layers_forward(params, config, batch, record):
    # batch: a modern_layers.PaddedBatch or PackedBatch -> token embeddings in its layout
    x = embedding_lookup(params["word"], batch.ids, "word embedding")  # (batch, seq, hidden) or (1, tokens, hidden)
    bias = position_bias(params["relative_attention_bias"], batch.shape[1], config)  # (heads, seq, seq)
    attend = batch.attention(1.0, position_bias=bias)  # T5 does not scale its scores
    record_layer(record, "hidden_states", x)
    for layer in params["layers"]:
        x, probabilities = encoder_layer(x, layer, attend, config)
        record_layer(record, "hidden_states", x)
        record_layer(record, "attentions", probabilities)
    x = rms_norm(x, params["final_norm"], config["layer_norm_epsilon"])
    if record is not None:  # transformers' last hidden state is the final norm's output
        record["hidden_states"][-1] = x
    return batch.unpack(x)


def load_parameters(tensors, config):
    """transformers' T5EncoderModel (or T5Model) tensor names -> the nested parameter dict ``forward`` reads.
    The word table is ``shared.weight``, or the encoder's own copy of it when only that was saved."""
    gated, _ = feed_forward_kind(config)
    check_value("t5", "layer_norm_epsilon", config["layer_norm_epsilon"], POSITIVE_NUMBER)
    check_value("t5", "relative_attention_num_buckets", config["relative_attention_num_buckets"], BUCKETS)
    check_value("t5", "relative_attention_max_distance", config["relative_attention_max_distance"], POSITIVE_SIZE)
    hidden, inner, intermediate = config["d_model"], config["num_heads"] * config["d_kv"], config["d_ff"]
    checkpoint = Checkpoint(tensors)
    word = "shared.weight" if "shared.weight" in checkpoint.tensors else "encoder.embed_tokens.weight"
    params = {
        "word": checkpoint.take(word, (config["vocab_size"], hidden)),
        "relative_attention_bias": checkpoint.take(
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            (config["relative_attention_num_buckets"], config["num_heads"]),
        ),
        "final_norm": checkpoint.take("encoder.final_layer_norm.weight", (hidden,)),
        "layers": [],
    }
    for i in range(config["num_layers"]):
        attention, mlp = f"encoder.block.{i}.layer.0", f"encoder.block.{i}.layer.1"
        layer = {
            "attention_norm": checkpoint.take(f"{attention}.layer_norm.weight", (hidden,)),
            **{name: checkpoint.take(f"{attention}.SelfAttention.{name}.weight", (inner, hidden)) for name in "qkv"},
            "o": checkpoint.take(f"{attention}.SelfAttention.o.weight", (hidden, inner)),
            "mlp_norm": checkpoint.take(f"{mlp}.layer_norm.weight", (hidden,)),
            "wo": checkpoint.take(f"{mlp}.DenseReluDense.wo.weight", (hidden, intermediate)),
        }
        for name in ("wi_0", "wi_1") if gated else ("wi",):
            layer[name] = checkpoint.take(f"{mlp}.DenseReluDense.{name}.weight", (intermediate, hidden))
        params["layers"].append(layer)
    checkpoint.check("t5")
    return params
