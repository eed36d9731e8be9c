"""RoBERTa (Liu et al., 2019) and XLM-RoBERTa (Conneau et al., 2019): BERT's layers and tensor names, with
position ids that skip padding and start after ``pad_token_id`` (fairseq's convention). Parameters load as
BERT's do, under the prefix ``roberta.``.
"""

import dataclasses

import numpy as np

from minisbert.architectures import bert
from minisbert.architectures.checkpoint import load_encoder
from minisbert.architectures.layers import embeddings
from minisbert.architectures.reference_or_fast import run_encoder

# transformers' RobertaConfig / XLMRobertaConfig defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {**bert.CONFIG_DEFAULTS, "pad_token_id": 1}
TENSOR_NAMES = dataclasses.replace(bert.TENSOR_NAMES, prefixes=("roberta.", "model."))


def position_ids_skipping_padding(input_ids, padding_idx):
    # input_ids (batch, seq) -> (batch, seq): padding_idx + 1, + 2, ... over the real tokens, padding_idx on
    # padding, as transformers' create_position_ids_from_input_ids
    is_token = (input_ids != padding_idx).astype(np.int64)  # (batch, seq)
    return np.cumsum(is_token, axis=1) * is_token + padding_idx


def embedding_ids(config, input_ids, token_type_ids):
    # input_ids, token_type_ids or None (batch, seq) -> position_ids (batch, seq) skipping padding,
    # token_type_ids (batch, seq), all 0 when not given
    position_ids = position_ids_skipping_padding(input_ids, config["pad_token_id"])
    return position_ids, np.zeros_like(input_ids) if token_type_ids is None else token_type_ids


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask, token_type_ids (batch, seq) -> token embeddings (batch, seq, hidden)
    position_ids, token_type_ids = embedding_ids(config, input_ids, token_type_ids)
    x = embeddings(params["embeddings"], input_ids, position_ids, config["layer_norm_eps"], token_type_ids)
    return run_encoder(x, params["layers"], attention_mask, config, record=record, first_token_only=first_token_only)


def load_parameters(tensors, config):
    return load_encoder(tensors, config, TENSOR_NAMES)
