"""The Transformer module: text -> token ids (minisbert.tokenization) -> the architecture's forward pass
(minisbert.architectures) -> features["token_embeddings"]. Its config files: the architecture's config.json,
sentence_bert_config.json (max_seq_length, do_lower_case), the tokenizer's files and the weights.
"""

from pathlib import Path

from minisbert.architectures import architecture_for
from minisbert.files.loading import (
    COUNT, FLAG, POSITIVE_NUMBER, POSITIVE_SIZE, TEXT, ConfigError, ModelLoadError, read_config,
)
from minisbert.files.weights import load_weights
from minisbert.tokenization import TOKENIZER_CONFIG_CHECKS, Tokenizer

__all__ = ["Transformer"]


# The keys of a transformers config.json the architectures read (DistilBERT's own names too).
TRANSFORMER_CONFIG_CHECKS = {
    "model_type": TEXT,
    **dict.fromkeys(
        ("hidden_size", "dim", "num_hidden_layers", "n_layers", "num_attention_heads", "n_heads", "intermediate_size",
         "hidden_dim", "vocab_size", "max_position_embeddings", "relative_attention_num_buckets", "head_dim"),
        POSITIVE_SIZE,
    ),
    "type_vocab_size": COUNT,
    "pad_token_id": COUNT,
    "layer_norm_eps": POSITIVE_NUMBER,
    "hidden_act": TEXT,
    "activation": TEXT,
}
SENTENCE_BERT_CONFIG_CHECKS = {"max_seq_length": POSITIVE_SIZE, "do_lower_case": FLAG}


class Transformer:
    """Tokenizer plus forward pass: features["input_ids"...] -> features["token_embeddings"]."""

    def __init__(self, folder):
        folder = Path(folder)
        sentence_bert_config = read_config(
            folder / "sentence_bert_config.json", SENTENCE_BERT_CONFIG_CHECKS, required=False
        ) or {}
        config = read_config(folder / "config.json", TRANSFORMER_CONFIG_CHECKS)
        self.architecture, self.config = architecture_for(config)
        max_seq_length = sentence_bert_config.get("max_seq_length") or default_max_seq_length(folder, self.config)
        self.tokenizer = Tokenizer.from_folder(folder, max_seq_length, sentence_bert_config.get("do_lower_case", False))
        try:
            self.params = self.architecture.load_parameters(load_weights(folder), self.config)
        except KeyError as error:  # a key the architecture needs, with no default
            raise ConfigError(f"corrupt model file {folder / 'config.json'}: missing {error}") from None

    @classmethod
    def from_folder(cls, folder):
        return cls(folder)

    def tokenize(self, texts):
        return self.tokenizer(texts)

    @property
    def max_seq_length(self):
        return self.tokenizer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value):
        self.tokenizer.set_max_length(value)

    def __call__(self, features, record=None, first_token_only=False):
        # -> features with token_embeddings (batch, seq, hidden), or (batch, 1, hidden) for the first token only
        features["token_embeddings"] = self.architecture.forward(
            self.params,
            self.config,
            features["input_ids"],
            features["attention_mask"],
            features.get("token_type_ids"),
            record=record,
            first_token_only=first_token_only,
        )
        return features


def default_max_seq_length(folder, config):
    """Without sentence_bert_config.json: the tokenizer's model_max_length, capped at the position table."""
    tokenizer_config = read_config(folder / "tokenizer_config.json", TOKENIZER_CONFIG_CHECKS, required=False) or {}
    limits = [tokenizer_config.get("model_max_length"), config.get("max_position_embeddings")]
    limits = [limit for limit in limits if isinstance(limit, int) and limit > 0]
    if not limits:
        raise ModelLoadError(f"{folder}: no max_seq_length, model_max_length or max_position_embeddings found")
    return min(limits)
