"""The SparseStaticEmbedding module of inference-free SPLADE: a text -> a fixed weight for each vocabulary entry
among its tokens, no forward pass (a Router sends queries here, documents through the fill-mask Transformer).
"""

from pathlib import Path

import numpy as np

from minisbert.architectures.checkpoint import Checkpoint
from minisbert.files.loading import read_config
from minisbert.files.weights import load_weights
from minisbert.tokenization import Tokenizer

__all__ = ["SparseStaticEmbedding"]


NO_LENGTH_LIMIT = 2**31 - 1  # transformers' "no limit" (1e30) is larger than the tokenizers library accepts


class SparseStaticEmbedding:
    """Text -> features["sentence_embedding"] (batch, vocab): weight[t] for each vocabulary entry t among the
    text's tokens (tokenized without special tokens, as sentence-transformers does), 0 elsewhere."""

    def __init__(self, folder):
        folder = Path(folder)
        tokenizer_config = read_config(folder / "tokenizer_config.json", {}, required=False) or {}
        max_length = tokenizer_config.get("model_max_length")
        if not isinstance(max_length, int) or not 0 < max_length < NO_LENGTH_LIMIT:
            max_length = NO_LENGTH_LIMIT
        self.tokenizer = Tokenizer.from_folder(folder, max_length)
        self.max_seq_length = max_length
        checkpoint = Checkpoint(load_weights(folder))
        size = self.tokenizer.backend.get_vocab_size(with_added_tokens=True)
        self.weight = checkpoint.take("weight", (size,))
        checkpoint.check(f"SparseStaticEmbedding in {folder}")
        self.sentence_embedding_dimension = size

    @classmethod
    def from_folder(cls, folder):
        return cls(folder)

    def tokenize(self, texts):
        return self.tokenizer(texts, add_special_tokens=False)

    def __call__(self, features):
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]  # (batch, seq)
        present = np.zeros((len(input_ids), len(self.weight)), dtype=np.float32)  # (batch, vocab)
        # A padding position writes 0 at the padding id, as torch's scatter of the attention mask does.
        present[np.arange(len(input_ids))[:, None], input_ids] = attention_mask
        features["sentence_embedding"] = present * self.weight
        return features
