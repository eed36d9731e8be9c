"""The Normalize module: an embedding (the sentence embedding, or another features entry) scaled to unit L2 norm."""

from pathlib import Path

from minisbert.files.loading import TEXT, read_config
from minisbert.kernels.similarity import normalize_rows

__all__ = ["Normalize"]


class Normalize:
    """features["sentence_embedding"] (or another module_input_name) scaled to unit L2 norm."""

    def __init__(self, module_input_name="sentence_embedding", module_output_name=None):
        self.input_name = module_input_name
        self.output_name = module_output_name or module_input_name

    @classmethod
    def from_folder(cls, folder):
        checks = {"module_input_name": TEXT, "module_output_name": TEXT}
        config = read_config(Path(folder) / "config.json", checks, required=False) or {}
        return cls(config.get("module_input_name", "sentence_embedding"), config.get("module_output_name"))

    def __call__(self, features):
        x = features.get(self.input_name)  # (..., dim)
        if x is not None:
            features[self.output_name] = normalize_rows(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        return features
