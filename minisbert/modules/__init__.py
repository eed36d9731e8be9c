"""The modules a sentence-transformers model chains, as listed in its modules.json, one file per kind. Each reads
and extends a ``features`` dict of NumPy arrays, as sentence-transformers' modules do with tensors, and is built
from its folder by ``from_folder``.

    transformer.py                   Transformer: text -> token ids -> forward pass -> token_embeddings
    pooling.py                       Pooling: token_embeddings -> sentence_embedding
    dense.py                         Dense (a linear layer and activation), TokenProjection (Stanford ColBERT's)
    normalize.py                     Normalize: an embedding scaled to unit length
    masked_language_model.py         MaskedLanguageModel: the fill-mask Transformer of a SparseEncoder
    splade_pooling.py                SpladePooling: MLM logits -> one weight per vocabulary entry
    sparse_static_embedding.py       SparseStaticEmbedding: inference-free SPLADE's query weights
    router.py                        Router: a sub-chain of modules per task
    late_interaction_transformer.py  LateInteractionTransformer: a MultiVectorEncoder's Transformer
    multi_vector_mask.py             MultiVectorMask: which token vectors MaxSim scores

Here: reading modules.json (read_module_list, module_loader) and a SentenceTransformer's chain (MODULE_TYPES,
load_modules); the other families name their own types (minisbert.families). May import the data path below it
(tokenization, architectures), reading files (minisbert.files), kernels; never the families, side rooms or CLI.
"""

from pathlib import Path

from minisbert.files.loading import ConfigError, ModelLoadError, read_json
from minisbert.modules.dense import Dense, TokenProjection
from minisbert.modules.late_interaction_transformer import LateInteractionTransformer
from minisbert.modules.masked_language_model import MaskedLanguageModel
from minisbert.modules.multi_vector_mask import MultiVectorMask
from minisbert.modules.normalize import Normalize
from minisbert.modules.pooling import Pooling
from minisbert.modules.router import Router
from minisbert.modules.sparse_static_embedding import SparseStaticEmbedding
from minisbert.modules.splade_pooling import SpladePooling
from minisbert.modules.transformer import Transformer

__all__ = [
    "Dense", "LateInteractionTransformer", "MaskedLanguageModel", "MultiVectorMask", "Normalize", "Pooling", "Router",
    "SparseStaticEmbedding", "SpladePooling", "TokenProjection", "Transformer",
    "MODULE_TYPES", "load_modules", "module_loader", "read_module_list",
]

# modules.json names a module by its class path; old and new sentence-transformers spell it differently, so a type
# is known by its class name. A SentenceTransformer's types, each with what builds it from its folder:
MODULE_TYPES = {
    "Transformer": Transformer.from_folder,
    "Pooling": Pooling.from_folder,
    "Dense": Dense.from_folder,
    "Normalize": Normalize.from_folder,
}


def read_module_list(folder):
    """modules.json's entries, checked: [(type, the module's folder)] in order; None if the folder has none."""
    path = folder / "modules.json"
    module_list = read_json(path, required=False)
    if module_list is None:
        return None
    if not isinstance(module_list, list):
        found = type(module_list).__name__
        raise ConfigError(f"corrupt model file {path}: expected a list of modules, found a {found}")
    entries = []
    for number, entry in enumerate(module_list):
        if not (isinstance(entry, dict) and isinstance(entry.get("type"), str)):
            raise ConfigError(f"corrupt model file {path}: module {number} must be an object with a 'type' string")
        module_path = entry.get("path", "")
        if not isinstance(module_path, str) or Path(module_path).is_absolute() or ".." in Path(module_path).parts:
            raise ConfigError(
                f"corrupt model file {path}: module {number} has the path {module_path!r:.80}, not a folder inside "
                "the model"
            )
        entries.append((entry["type"], folder / module_path))
    return entries


def module_loader(type_name, module_types, listed_in, family="SentenceTransformer"):
    """What builds a module of ``type_name`` (a class path) among a family's ``module_types``, or an error."""
    class_name = type_name.rsplit(".", 1)[-1]
    if class_name not in module_types:
        raise ModelLoadError(
            f"unsupported module {type_name!r} in {listed_in} for a {family}; supported: {sorted(module_types)}"
        )
    return module_types[class_name]


def load_modules(folder):
    """A SentenceTransformer's chain of modules; a bare transformers folder gets mean pooling."""
    folder = Path(folder)
    entries = read_module_list(folder)
    if entries is None:
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"{folder} is not a model folder: it has neither modules.json nor config.json")
        transformer = Transformer(folder)
        return [transformer, Pooling(transformer.config["hidden_size"])]
    types = [type_name.rsplit(".", 1)[-1] for type_name, _ in entries]
    if types[:1] != ["Transformer"] or types.count("Transformer") != 1:
        raise ConfigError(f"corrupt model file {folder / 'modules.json'}: a SentenceTransformer's modules must start "
                          f"with its one Transformer (then Pooling, Dense, Normalize), not {types}")
    return [
        module_loader(type_name, MODULE_TYPES, folder / "modules.json")(path) for type_name, path in entries
    ]
