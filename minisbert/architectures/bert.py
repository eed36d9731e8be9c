"""BERT (Devlin et al., 2018) as used by sentence-transformers: embeddings, then post-LayerNorm encoder
layers of multi-head self-attention and a feed-forward block (layers.encoder). The forward pass is
``forward``; ``load_parameters`` maps a transformers checkpoint onto the nested dict of arrays it reads, by the
table ``TENSOR_NAMES``.
"""

import numpy as np

from minisbert.architectures.checkpoint import EncoderTensorNames, load_encoder
from minisbert.architectures.layers import embeddings
from minisbert.architectures.reference_or_fast import run_encoder

# transformers' BertConfig defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "type_vocab_size": 2,
    "max_position_embeddings": 512,
    "pad_token_id": 0,
}
# transformers' BertModel tensor names (RoBERTa's and ELECTRA's checkpoints use them too, under their own prefix)
TENSOR_NAMES = EncoderTensorNames(
    prefixes=("bert.", "model."),
    layer="encoder.layer.{}",
    layer_parts={
        "qkv": ("attention.self.query", "attention.self.key", "attention.self.value"),
        "attention_output": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm",
        "intermediate": "intermediate.dense",
        "output": "output.dense",
        "output_norm": "output.LayerNorm",
    },
)


def embedding_ids(config, input_ids, token_type_ids):
    # input_ids, token_type_ids or None (batch, seq) -> position_ids (1, seq) counting from 0, token_type_ids
    # (batch, seq), all 0 when not given
    position_ids = np.arange(input_ids.shape[1])[None, :]
    return position_ids, np.zeros_like(input_ids) if token_type_ids is None else token_type_ids


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask, token_type_ids (batch, seq) -> token embeddings (batch, seq, hidden)
    position_ids, token_type_ids = embedding_ids(config, input_ids, token_type_ids)
    x = embeddings(params["embeddings"], input_ids, position_ids, config["layer_norm_eps"], token_type_ids)
    return run_encoder(x, params["layers"], attention_mask, config, record=record, first_token_only=first_token_only)


def load_parameters(tensors, config):
    return load_encoder(tensors, config, TENSOR_NAMES)
