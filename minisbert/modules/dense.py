"""Linear layers between modules: Dense (modules.json's linear layer and activation, on the sentence embedding
or the token embeddings) and TokenProjection (Stanford ColBERT's bias-free projection, stored beside the encoder).
"""

import logging
from pathlib import Path

import numpy as np

from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import ACTIVATIONS
from minisbert.files.loading import FLAG, POSITIVE_SIZE, TEXT, ModelLoadError, read_config, require_keys
from minisbert.files.weights import load_weights

__all__ = ["DENSE_ACTIVATIONS", "Dense", "TokenProjection", "dense_activation"]

logger = logging.getLogger(__name__)


# torch.nn activation classes a Dense module saves (by class name) -> the function in NumPy.
DENSE_ACTIVATIONS = {
    "Tanh": np.tanh,
    "Identity": lambda x: x,
    "ReLU": ACTIVATIONS["relu"],
    "GELU": ACTIVATIONS["gelu"],
    "SiLU": ACTIVATIONS["silu"],
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}


DENSE_CONFIG_CHECKS = {
    "in_features": POSITIVE_SIZE,
    "out_features": POSITIVE_SIZE,
    "bias": FLAG,
    "use_residual": FLAG,
    "activation_function": TEXT,
    "module_input_name": TEXT,
    "module_output_name": TEXT,
}


class Dense:
    """A linear layer and an activation on features[module_input_name] (the sentence embedding by default)."""

    def __init__(self, folder):
        folder = Path(folder)
        config = read_config(folder / "config.json", DENSE_CONFIG_CHECKS)
        require_keys(config, folder / "config.json", ("in_features", "out_features"))
        self.in_features, self.out_features = config["in_features"], config["out_features"]
        try:
            self.activation = dense_activation(config.get("activation_function", "torch.nn.modules.activation.Tanh"))
        except ModelLoadError as error:
            raise ModelLoadError(f"{folder / 'config.json'}: {error}") from None
        self.input_name = config.get("module_input_name", "sentence_embedding")
        self.output_name = config.get("module_output_name") or self.input_name
        self.use_residual = config.get("use_residual", False)
        checkpoint = Checkpoint(load_weights(folder))
        self.weight = np.ascontiguousarray(checkpoint.take("linear.weight", (self.out_features, self.in_features)).T)
        self.bias = checkpoint.take("linear.bias", (self.out_features,)) if config.get("bias", True) else 0
        # With a residual connection and a change of size, the input is projected by a bias-free linear layer.
        self.residual = None
        if self.use_residual and self.in_features != self.out_features:
            self.residual = np.ascontiguousarray(
                checkpoint.take("residual.weight", (self.out_features, self.in_features)).T
            )
        checkpoint.check(f"Dense module in {folder}")
        self.sentence_embedding_dimension = self.out_features

    @classmethod
    def from_folder(cls, folder):
        return cls(folder)

    def __call__(self, features):
        x = features[self.input_name]  # (..., in_features)
        out = self.activation(x @ self.weight + self.bias)  # (..., out_features)
        if self.use_residual:
            out = out + (x if self.residual is None else x @ self.residual)
        features[self.output_name] = out
        return features


def dense_activation(class_path):
    """sentence-transformers loads only torch's own activation classes unless trust_remote_code; others
    fall back to Tanh (with a warning), as here."""
    if not class_path.startswith("torch."):
        logger.warning("Dense activation %r is not a torch class: using Tanh as sentence-transformers does", class_path)
        return np.tanh
    name = class_path.rsplit(".", 1)[-1]
    if name not in DENSE_ACTIVATIONS:
        raise ModelLoadError(f"unsupported Dense activation {class_path!r}; supported: {sorted(DENSE_ACTIVATIONS)}")
    return DENSE_ACTIVATIONS[name]


class TokenProjection:
    """Stanford ColBERT's projection: linear.weight (out, in), no bias, stored beside the encoder's weights."""

    def __init__(self, weight):
        self.weight = weight  # (out_features, in_features)
        self.out_features = weight.shape[0]

    def __call__(self, features):
        features["token_embeddings"] = features["token_embeddings"] @ self.weight.T  # (batch, seq, out_features)
        return features
