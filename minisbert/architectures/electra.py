"""ELECTRA (Clark et al., 2020), the discriminator as rerankers use it: BERT's layers and tensor names (under
``electra.``), with embeddings of their own ``embedding_size`` projected to the layers' hidden size by a linear
layer (``embeddings_project``) when the two differ.
"""

import dataclasses

from minisbert.architectures import bert
from minisbert.architectures.checkpoint import load_encoder
from minisbert.architectures.layers import embeddings, linear
from minisbert.architectures.reference_or_fast import run_encoder

# transformers' ElectraConfig defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {**bert.CONFIG_DEFAULTS, "embedding_size": 128}
TENSOR_NAMES = dataclasses.replace(
    bert.TENSOR_NAMES, prefixes=("electra.", "model."), embeddings_project="embeddings_project"
)
embedding_ids = bert.embedding_ids  # position ids from 0, token types as given or 0, as BERT's


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None,
            first_token_only=False):
    # input_ids, attention_mask, token_type_ids (batch, seq) -> token embeddings (batch, seq, hidden)
    position_ids, token_type_ids = embedding_ids(config, input_ids, token_type_ids)
    x = embeddings(params["embeddings"], input_ids, position_ids, config["layer_norm_eps"], token_type_ids)
    if "embeddings_project" in params:
        x = linear(x, params["embeddings_project"])  # (batch, seq, embedding_size) -> (batch, seq, hidden)
    return run_encoder(x, params["layers"], attention_mask, config, record=record, first_token_only=first_token_only)


def load_parameters(tensors, config):
    return load_encoder(tensors, config, TENSOR_NAMES)
