"""MPNet (Song et al., 2020): BERT's post-LayerNorm layers with RoBERTa's position ids, no token types, and
a learned relative position bias added to every layer's attention scores. The bias is looked up per head
from T5-style buckets of the distance between query and key (exact up to 8, logarithmic up to 128).
"""

import math

import numpy as np

from minisbert.architectures import bert
from minisbert.architectures.checkpoint import EncoderTensorNames, load_encoder
from minisbert.architectures.layers import embeddings
from minisbert.architectures.reference_or_fast import run_encoder
from minisbert.architectures.roberta import position_ids_skipping_padding

# transformers' MPNetConfig defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "relative_attention_num_buckets": 32,
    "pad_token_id": 1,
}
# transformers' MPNet hard-codes these: position ids count from padding index 1 whatever pad_token_id says,
# and the encoder asks for 32 buckets (the table has relative_attention_num_buckets rows).
PADDING_IDX = 1
NUM_BUCKETS = 32
MAX_DISTANCE = 128
# transformers' MPNetModel tensor names: BERT's, but for the attention's
TENSOR_NAMES = EncoderTensorNames(
    prefixes=("mpnet.", "model."),
    layer="encoder.layer.{}",
    layer_parts={
        **bert.TENSOR_NAMES.layer_parts,
        "qkv": ("attention.attn.q", "attention.attn.k", "attention.attn.v"),
        "attention_output": "attention.attn.o",
        "attention_norm": "attention.LayerNorm",
    },
    token_types=False,
    relative_attention_bias="encoder.relative_attention_bias",
)


def relative_position_bucket(relative_position, num_buckets=NUM_BUCKETS, max_distance=MAX_DISTANCE):
    # relative_position (q, k) int of key - query -> bucket (q, k) in [0, num_buckets): half the buckets for
    # keys before the query, half after; within each, exact distances below max_exact, then log-spaced
    # distances up to max_distance. Float32 as in transformers, so that the rounding agrees.
    n = -relative_position
    half = num_buckets // 2
    bucket = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    with np.errstate(divide="ignore"):  # log(0) where n == 0, which is_small covers
        log_ratio = np.log(n.astype(np.float32) / np.float32(max_exact))
    scaled = log_ratio / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact)
    large = max_exact + np.where(n < max_exact, 0, scaled).astype(np.int64)
    large = np.minimum(large, half - 1)
    return bucket + np.where(n < max_exact, n, large)


def position_bias(relative_attention_bias, seq_len):
    # relative_attention_bias (buckets, heads), seq_len -> (1, heads, seq, seq), added to attention scores
    positions = np.arange(seq_len)
    buckets = relative_position_bucket(positions[None, :] - positions[:, None])  # (seq, seq)
    return relative_attention_bias[buckets].transpose(2, 0, 1)[None]


def embedding_ids(config, input_ids, token_type_ids):
    # input_ids (batch, seq) -> position_ids (batch, seq) skipping padding, from PADDING_IDX; None: no token types
    return position_ids_skipping_padding(input_ids, PADDING_IDX), None


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask (batch, seq) -> token embeddings (batch, seq, hidden); no token types
    position_ids, _ = embedding_ids(config, input_ids, token_type_ids)
    x = embeddings(params["embeddings"], input_ids, position_ids, config["layer_norm_eps"])  # (batch, seq, hidden)
    bias = position_bias(params["relative_attention_bias"], input_ids.shape[1])  # (1, heads, seq, seq)
    return run_encoder(x, params["layers"], attention_mask, config, position_bias=bias, record=record,
                       first_token_only=first_token_only)


def load_parameters(tensors, config):
    return load_encoder(tensors, config, TENSOR_NAMES)
