"""The SpladePooling module: a fill-mask Transformer's logits -> one weight per vocabulary entry,
log(1 + relu(logit)) pooled by max (or sum) over a text's tokens.
"""

from pathlib import Path

import numpy as np

from minisbert.files.loading import POSITIVE_SIZE, TEXT, ModelLoadError, read_config

__all__ = ["SpladePooling", "splade_activation"]


SPLADE_POOLING_STRATEGIES = ("max", "sum")
SPLADE_ACTIVATIONS = ("relu", "log1p_relu")


def splade_activation(x, activation_function):
    # log(1 + relu(x)); "log1p_relu" (OpenSearch's models) takes log1p once more
    x = np.log1p(np.maximum(x, 0))
    return np.log1p(x) if activation_function == "log1p_relu" else x


def splade_pool(logits, strategy, activation_function):
    # logits (tokens, vocab) of one text's real tokens -> (vocab,). The activation is monotone, so the max of the
    # activated logits is the activation of the max logit: max pooling activates vocab numbers, not tokens x vocab.
    if strategy == "max":
        return splade_activation(logits.max(axis=0), activation_function)
    return splade_activation(logits, activation_function).sum(axis=0)


class SpladePooling:
    """MLM logits -> features["sentence_embedding"] (batch, vocab), as sentence-transformers' SpladePooling; padding
    never counts (sentence-transformers zeroes its logits, which the ReLU then drops)."""

    def __init__(self, pooling_strategy="max", activation_function="relu"):
        if pooling_strategy not in SPLADE_POOLING_STRATEGIES:
            raise ModelLoadError(f"SpladePooling pooling_strategy must be one of {SPLADE_POOLING_STRATEGIES}, "
                                 f"got {pooling_strategy!r}")
        if activation_function not in SPLADE_ACTIVATIONS:
            raise ModelLoadError(f"SpladePooling activation_function must be one of {SPLADE_ACTIVATIONS}, "
                                 f"got {activation_function!r}")
        self.pooling_strategy = pooling_strategy
        self.activation_function = activation_function

    @classmethod
    def from_folder(cls, folder):
        checks = {"pooling_strategy": TEXT, "activation_function": TEXT, "embedding_dimension": POSITIVE_SIZE}
        config = read_config(Path(folder) / "config.json", checks)  # sentence-transformers always saves it
        return cls(config.get("pooling_strategy", "max"), config.get("activation_function", "relu"))

    def __call__(self, features):
        if "mlm_logits" not in features:
            raise ModelLoadError("SpladePooling needs a fill-mask Transformer (an MLM head) before it")
        hidden, lengths = features["token_embeddings"], features["attention_mask"].sum(axis=1)  # (batch, seq, hidden)
        features["sentence_embedding"] = np.stack([
            splade_pool(features["mlm_logits"](tokens[:length]), self.pooling_strategy, self.activation_function)
            for tokens, length in zip(hidden, lengths)
        ])  # (batch, vocab)
        return features
