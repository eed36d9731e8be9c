"""DeBERTa-v2/v3 (He et al., 2020; 2021), as DeBERTa-based embedders and rerankers use it: BERT's post-norm
layers with disentangled attention. A token's attention score to another adds to content x content (q k) a
content x position term (c2p: the query against the embedding of the key's relative distance) and a position x
content term (p2c: the key against the embedding of the query's relative distance), all divided by
sqrt(head_dim * number of terms). Distances are log-bucketed beyond position_buckets / 2 and read from one
shared table of relative embeddings (LayerNorm-ed when norm_rel_ebd says so); v3 projects them with the
content query/key weights (share_att_key). Absolute positions are added to the input only if
position_biased_input.
"""

import numpy as np

from minisbert.architectures.checkpoint import Checkpoint, check_heads_divide_hidden
from minisbert.architectures.layers import (
    activation,
    embedding_lookup,
    layer_norm,
    linear,
    merge_heads,
    softmax,
    split_heads,
)
from minisbert.architectures.modern_layers import linear_without_bias, record_layer, unsupported

# transformers' DebertaV2Config defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-7,
    "max_position_embeddings": 512,
    "type_vocab_size": 0,
    "relative_attention": False,
    "max_relative_positions": -1,
    "position_buckets": -1,
    "position_biased_input": True,
    "pos_att_type": None,
    "share_att_key": False,
    "norm_rel_ebd": "none",
    "conv_kernel_size": 0,
    "pad_token_id": 0,
}
ATTENTION_TERMS = ("c2p", "p2c")


def attention_terms(config):
    # pos_att_type: a list, or a string "p2c|c2p" as older configs write it -> the set of extra terms
    kinds = config["pos_att_type"] or []
    if isinstance(kinds, str):
        kinds = [kind.strip() for kind in kinds.lower().split("|")]
    for kind in kinds:
        if kind not in ATTENTION_TERMS:
            raise unsupported("deberta-v2", "pos_att_type", kind, "c2p and p2c")
    return set(kinds) if config["relative_attention"] else set()


def relative_span(config):
    # -> (max_relative_positions, the span of the relative embedding table: position_buckets, or the former)
    max_relative = config["max_relative_positions"]
    if max_relative < 1:
        max_relative = config["max_position_embeddings"]
    return max_relative, config["position_buckets"] if config["position_buckets"] > 0 else max_relative


def log_bucket_position(relative, bucket_size, max_position):
    # relative (q, k) int -> (q, k): exact within bucket_size / 2, log-spaced beyond, in float32 as transformers
    sign = np.sign(relative)
    mid = bucket_size // 2
    absolute = np.where((relative < mid) & (relative > -mid), mid - 1, np.abs(relative))
    log_ratio = np.log(absolute.astype(np.float32) / np.float32(mid)) / np.log(np.float32((max_position - 1) / mid))
    log_position = np.ceil(log_ratio * np.float32(mid - 1)) + np.float32(mid)
    return np.where(absolute <= mid, relative.astype(np.float32), log_position * sign).astype(np.int64)


def relative_positions(seq_len, config):
    # -> (seq, seq) int: query position - key position, log-bucketed if position_buckets is set
    positions = np.arange(seq_len)
    relative = positions[:, None] - positions[None, :]
    max_relative, _ = relative_span(config)
    if config["position_buckets"] > 0 and max_relative > 0:
        relative = log_bucket_position(relative, config["position_buckets"], max_relative)
    return relative


def disentangled_attention(x, layer, mask, relative, relative_embeddings, config, terms):
    # x (batch, seq, hidden), mask (batch, 1, seq, seq) additive, relative (seq, seq), relative_embeddings
    # (2 span, hidden) -> context (batch, seq, hidden), probabilities (batch, heads, seq, seq)
    heads = config["num_attention_heads"]
    query, key, value = (split_heads(linear(x, layer[name]), heads) for name in ("query", "key", "value"))
    head_dim = query.shape[-1]
    scale = np.sqrt(np.float32(head_dim * (1 + len(terms))))
    scores = query @ (key.transpose(0, 1, 3, 2) / scale)  # (batch, heads, seq, seq)
    _, span = relative_span(config)
    shared = config["share_att_key"]
    if "c2p" in terms:  # the query against the key's distance: row q, column bucket(q - k) + span
        position_key = split_heads(linear(relative_embeddings[None], layer["key" if shared else "position_key"]), heads)
        c2p = query @ position_key.transpose(0, 1, 3, 2)  # (batch, heads, seq, 2 span)
        index = np.clip(relative + span, 0, 2 * span - 1)  # (seq, seq)
        scores = scores + np.take_along_axis(c2p, np.broadcast_to(index, c2p.shape[:2] + index.shape), axis=-1) / scale
    if "p2c" in terms:  # the key against the query's distance: for key k, query q, bucket -(k - q) + span
        position_query = split_heads(
            linear(relative_embeddings[None], layer["query" if shared else "position_query"]), heads
        )
        p2c = key @ position_query.transpose(0, 1, 3, 2)  # (batch, heads, seq (key), 2 span)
        index = np.clip(-relative + span, 0, 2 * span - 1)  # (seq (key), seq (query))
        gathered = np.take_along_axis(p2c, np.broadcast_to(index, p2c.shape[:2] + index.shape), axis=-1)
        scores = scores + gathered.transpose(0, 1, 3, 2) / scale
    probabilities = softmax(scores + mask)
    return merge_heads(probabilities @ value), probabilities


def encoder_layer(x, layer, mask, relative, relative_embeddings, config, terms):
    # x (batch, seq, hidden) -> (batch, seq, hidden), probabilities: post-norm, as BERT
    eps = config["layer_norm_eps"]
    context, probabilities = disentangled_attention(x, layer, mask, relative, relative_embeddings, config, terms)
    x = layer_norm(linear(context, layer["attention_output"]) + x, layer["attention_norm"], eps)
    intermediate = activation(config["hidden_act"])(linear(x, layer["intermediate"]))
    return layer_norm(linear(intermediate, layer["output"]) + x, layer["output_norm"], eps), probabilities


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask, token_type_ids (batch, seq) -> token embeddings (batch, seq, hidden), or
    # (batch, 1, hidden) for the first token only (one path only: every layer computes every token)
    eps = config["layer_norm_eps"]
    embeddings = params["embeddings"]
    x = embedding_lookup(embeddings["word"], input_ids, "word embedding")  # (batch, seq, embedding size)
    if "position" in embeddings:
        x = x + embedding_lookup(embeddings["position"], np.arange(input_ids.shape[1])[None], "position embedding")
    if "token_type" in embeddings:
        types = np.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        x = x + embedding_lookup(embeddings["token_type"], types, "token type embedding")
    if "projection" in embeddings:
        x = linear_without_bias(x, embeddings["projection"])
    x = layer_norm(x, embeddings["norm"], eps) * attention_mask[:, :, None].astype(np.float32)  # padding zeroed
    # a query attends to real keys; a padding query to none (row of the mask all masked, as transformers)
    both = (attention_mask[:, None, :, None] > 0) & (attention_mask[:, None, None, :] > 0)  # (batch, 1, seq, seq)
    mask = np.where(both, 0.0, np.finfo(np.float32).min).astype(np.float32)
    terms = attention_terms(config)
    relative = relative_positions(input_ids.shape[1], config)  # (seq, seq)
    relative_embeddings = params.get("relative_embeddings")
    if relative_embeddings is not None and "relative_norm" in params:
        relative_embeddings = layer_norm(relative_embeddings, params["relative_norm"], eps)
    record_layer(record, "hidden_states", x)
    for layer in params["layers"]:
        x, probabilities = encoder_layer(x, layer, mask, relative, relative_embeddings, config, terms)
        record_layer(record, "hidden_states", x)
        record_layer(record, "attentions", probabilities)
    return x[:, :1] if first_token_only else x


def load_parameters(tensors, config):
    """transformers' DebertaV2Model tensor names (under ``deberta.`` in a task model's checkpoint) -> the
    nested parameter dict ``forward`` reads."""
    if config["conv_kernel_size"] > 0:
        raise unsupported("deberta-v2", "conv_kernel_size", config["conv_kernel_size"], "no convolution layer (0)")
    check_heads_divide_hidden(config)
    terms = attention_terms(config)
    activation(config["hidden_act"])
    checkpoint = Checkpoint(tensors, prefixes=("deberta.", "model."))
    hidden, intermediate = config["hidden_size"], config["intermediate_size"]
    size = config.get("embedding_size") or hidden
    embeddings = {
        "word": checkpoint.take("embeddings.word_embeddings.weight", (config["vocab_size"], size)),
        "norm": checkpoint.norm("embeddings.LayerNorm", hidden),
    }
    if config["position_biased_input"]:
        shape = (config["max_position_embeddings"], size)
        embeddings["position"] = checkpoint.take("embeddings.position_embeddings.weight", shape)
    if config["type_vocab_size"] > 0:
        shape = (config["type_vocab_size"], size)
        embeddings["token_type"] = checkpoint.take("embeddings.token_type_embeddings.weight", shape)
    if size != hidden:
        embeddings["projection"] = checkpoint.take("embeddings.embed_proj.weight", (hidden, size))
    params = {"embeddings": embeddings, "layers": []}
    if config["relative_attention"]:
        _, span = relative_span(config)
        params["relative_embeddings"] = checkpoint.take("encoder.rel_embeddings.weight", (2 * span, hidden))
        norms = [kind.strip() for kind in config["norm_rel_ebd"].lower().split("|")]
        if "layer_norm" in norms:
            params["relative_norm"] = checkpoint.norm("encoder.LayerNorm", hidden)
    for i in range(config["num_hidden_layers"]):
        name = f"encoder.layer.{i}"
        attention = f"{name}.attention.self"
        layer = {
            "query": checkpoint.linear(f"{attention}.query_proj", hidden, hidden),
            "key": checkpoint.linear(f"{attention}.key_proj", hidden, hidden),
            "value": checkpoint.linear(f"{attention}.value_proj", hidden, hidden),
            "attention_output": checkpoint.linear(f"{name}.attention.output.dense", hidden, hidden),
            "attention_norm": checkpoint.norm(f"{name}.attention.output.LayerNorm", hidden),
            "intermediate": checkpoint.linear(f"{name}.intermediate.dense", hidden, intermediate),
            "output": checkpoint.linear(f"{name}.output.dense", intermediate, hidden),
            "output_norm": checkpoint.norm(f"{name}.output.LayerNorm", hidden),
        }
        if not config["share_att_key"]:
            if "c2p" in terms:
                layer["position_key"] = checkpoint.linear(f"{attention}.pos_key_proj", hidden, hidden)
            if "p2c" in terms:
                layer["position_query"] = checkpoint.linear(f"{attention}.pos_query_proj", hidden, hidden)
        params["layers"].append(layer)
    checkpoint.check("deberta-v2")
    return params
