"""BERT (Devlin et al., 2018) as used by sentence-transformers: embeddings, then post-LayerNorm encoder
layers of multi-head self-attention and a feed-forward block (models.layers.encoder). The forward pass is
``forward``; ``load_parameters`` maps a transformers checkpoint onto the nested dict of arrays it reads.
"""

import numpy as np

from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import embeddings, encoder

# transformers' BertConfig defaults, for the keys a config.json may leave out.
CONFIG_DEFAULTS = {
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "type_vocab_size": 2,
    "max_position_embeddings": 512,
    "pad_token_id": 0,
}


def forward(params, config, input_ids, attention_mask, token_type_ids=None, record=None):
    # input_ids, attention_mask, token_type_ids (batch, seq) -> token embeddings (batch, seq, hidden)
    if token_type_ids is None:
        token_type_ids = np.zeros_like(input_ids)
    position_ids = np.arange(input_ids.shape[1])[None, :]  # (1, seq)
    x = embeddings(params["embeddings"], input_ids, position_ids, config["layer_norm_eps"], token_type_ids)
    return encoder(x, params["layers"], attention_mask, config, record=record)


def load_parameters(tensors, config, prefixes=("bert.", "model.")):
    """transformers' BertModel tensor names -> the nested parameter dict ``forward`` reads. RoBERTa's and
    ELECTRA's checkpoints name their tensors the same way, under the prefix ``roberta.`` or ``electra.``."""
    checkpoint = Checkpoint(tensors, prefixes=prefixes)
    hidden, intermediate = config["hidden_size"], config["intermediate_size"]
    width = config.get("embedding_size", hidden)  # ELECTRA's embeddings may be narrower than its layers
    params = {
        "embeddings": {
            **checkpoint.embeddings({**config, "hidden_size": width}),
            "token_type": checkpoint.take(
                "embeddings.token_type_embeddings.weight", (config["type_vocab_size"], width)
            ),
        },
        "layers": [],
    }
    for i in range(config["num_hidden_layers"]):
        name = f"encoder.layer.{i}"
        params["layers"].append(
            {
                "qkv": checkpoint.fused_linear(
                    [f"{name}.attention.self.{part}" for part in ("query", "key", "value")], hidden, hidden
                ),
                "attention_output": checkpoint.linear(f"{name}.attention.output.dense", hidden, hidden),
                "attention_norm": checkpoint.norm(f"{name}.attention.output.LayerNorm", hidden),
                "intermediate": checkpoint.linear(f"{name}.intermediate.dense", hidden, intermediate),
                "output": checkpoint.linear(f"{name}.output.dense", intermediate, hidden),
                "output_norm": checkpoint.norm(f"{name}.output.LayerNorm", hidden),
            }
        )
    checkpoint.check(config.get("model_type", "bert"))
    return params
