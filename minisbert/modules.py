"""The modules a sentence-transformers model chains, as listed in its modules.json: Transformer (tokens ->
token embeddings), Pooling (token embeddings -> sentence embedding), Normalize. Each reads and extends a
``features`` dict of NumPy arrays, as sentence-transformers' modules do with tensors.
"""

from pathlib import Path

from minisbert.kernels.pooling import mean_pool
from minisbert.kernels.similarity import normalize_rows
from minisbert.loading import ModelLoadError, load_weights, read_json
from minisbert.models import architecture_for
from minisbert.tokenization import Tokenizer


class Transformer:
    """Tokenizer plus forward pass: features["input_ids"...] -> features["token_embeddings"]."""

    def __init__(self, folder):
        folder = Path(folder)
        sentence_bert_config = read_json(folder / "sentence_bert_config.json", required=False) or {}
        self.architecture, self.config = architecture_for(read_json(folder / "config.json"))
        self.max_seq_length = sentence_bert_config.get("max_seq_length") or default_max_seq_length(
            folder, self.config
        )
        self.tokenizer = Tokenizer.from_folder(
            folder, self.max_seq_length, sentence_bert_config.get("do_lower_case", False)
        )
        self.params = self.architecture.load_parameters(load_weights(folder), self.config)

    @classmethod
    def from_folder(cls, folder):
        return cls(folder)

    def tokenize(self, texts):
        return self.tokenizer(texts)

    def __call__(self, features, record=None):
        features["token_embeddings"] = self.architecture.forward(
            self.params,
            self.config,
            features["input_ids"],
            features["attention_mask"],
            features.get("token_type_ids"),
            record=record,
        )
        return features


def default_max_seq_length(folder, config):
    """Without sentence_bert_config.json: the tokenizer's model_max_length, capped at the position table."""
    tokenizer_config = read_json(folder / "tokenizer_config.json", required=False) or {}
    limits = [tokenizer_config.get("model_max_length"), config.get("max_position_embeddings")]
    limits = [limit for limit in limits if isinstance(limit, int) and limit > 0]
    if not limits:
        raise ModelLoadError(f"{folder}: no max_seq_length, model_max_length or max_position_embeddings found")
    return min(limits)


class Pooling:
    """Token embeddings (batch, seq, hidden) -> features["sentence_embedding"] (batch, hidden)."""

    def __init__(self, word_embedding_dimension, pooling_mode_mean_tokens=True, **other_modes):
        enabled = [mode for mode, on in other_modes.items() if mode.startswith("pooling_mode") and on]
        if not pooling_mode_mean_tokens or enabled:
            raise ModelLoadError(f"unsupported pooling configuration: {sorted(enabled) or 'no mode enabled'}")
        self.sentence_embedding_dimension = word_embedding_dimension

    @classmethod
    def from_folder(cls, folder):
        return cls(**read_json(Path(folder) / "config.json"))

    def __call__(self, features):
        features["sentence_embedding"] = mean_pool(features["token_embeddings"], features["attention_mask"])
        return features


class Normalize:
    """features["sentence_embedding"] scaled to unit L2 norm."""

    @classmethod
    def from_folder(cls, folder):
        return cls()

    def __call__(self, features):
        features["sentence_embedding"] = normalize_rows(features["sentence_embedding"])
        return features


# modules.json names a module by its class path; old and new sentence-transformers spell it differently.
MODULE_TYPES = {"Transformer": Transformer, "Pooling": Pooling, "Normalize": Normalize}


def load_modules(folder):
    """The chain of modules of a sentence-transformers folder; a bare transformers folder gets mean pooling."""
    folder = Path(folder)
    module_list = read_json(folder / "modules.json", required=False)
    if module_list is None:
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"{folder} is not a model folder: it has neither modules.json nor config.json")
        transformer = Transformer(folder)
        return [transformer, Pooling(transformer.config["hidden_size"])]
    if not isinstance(module_list, list):
        raise ModelLoadError(f"corrupt {folder / 'modules.json'}: expected a list of modules")
    modules = []
    for entry in module_list:
        class_name = str(entry.get("type", "")).rsplit(".", 1)[-1]
        if class_name not in MODULE_TYPES:
            raise ModelLoadError(
                f"unsupported module {entry.get('type')!r} in modules.json; supported: {sorted(MODULE_TYPES)}"
            )
        modules.append(MODULE_TYPES[class_name].from_folder(folder / entry.get("path", "")))
    return modules
