"""What the four families share (private): the base class ``Encoder`` (a model folder's prompts and the prompt a
call uses), the checks of encode's inputs, and the batching loop every family runs:

    texts -> longest first -> batches of batch_size -> forward (the family's) -> each output to its text's place
"""

import logging

import numpy as np

from minisbert.architectures.fast_encoder import one_blas_thread_while_split
from minisbert.files.loading import FLAG, POSITIVE_SIZE, TEXT, TEXT_BY_NAME, TEXTS, is_integer, read_config
from minisbert.modules import Transformer

logger = logging.getLogger(__name__)

# sentence-transformers gives a SentenceTransformer, SparseEncoder and MultiVectorEncoder these (empty) prompts, a
# CrossEncoder none; a model's config may fill them in.
DEFAULT_PROMPTS = {"query": "", "document": ""}
# The prompt encode_query / encode_document use when given none, as sentence-transformers picks it: the first of
# these names among the model's prompts.
TASK_PROMPT_NAMES = {"query": ("query",), "document": ("document", "passage", "corpus")}
# The keys of config_sentence_transformers.json every family reads (a family may read more of its keys).
SETTINGS_CHECKS = {"prompts": TEXT_BY_NAME, "default_prompt_name": TEXT, "similarity_fn_name": TEXT, "model_type": TEXT,
                   # PyLate's ColBERT settings (minisbert.MultiVectorEncoder)
                   "skiplist_words": TEXTS, "query_length": POSITIVE_SIZE, "document_length": POSITIVE_SIZE,
                   "query_prefix": TEXT, "document_prefix": TEXT, "do_query_expansion": FLAG,
                   "attend_to_expansion_tokens": FLAG, "attend_to_mask_tokens": FLAG}


class Encoder:
    """The base of the four families: ``folder``, ``modules``, ``transformer`` (the module that tokenizes), ``prompts``
    and ``default_prompt_name``."""

    default_prompts = DEFAULT_PROMPTS

    @property
    def tokenizer(self):
        return self.transformer.tokenizer

    def __repr__(self):
        return f"{type(self).__name__}({str(self.folder)!r}, modules={[type(m).__name__ for m in self.modules]})"

    def set_prompts(self, saved_prompts, prompts, default_prompt_name):
        """The model's prompts: the family's defaults, then the saved ones, then the caller's."""
        if prompts is not None and not (isinstance(prompts, dict) and all(
                isinstance(name, str) and isinstance(text, str) for name, text in prompts.items())):
            raise TypeError(f"prompts must be a dict of prompt names to strings, got {prompts!r:.60}")
        self.prompts = {**self.default_prompts, **saved_prompts, **(prompts or {})}
        self.default_prompt_name = default_prompt_name
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(
                f"default prompt name {self.default_prompt_name!r} is not one of the prompts {list(self.prompts)}"
            )

    def resolve_prompt(self, prompt, prompt_name):
        """The prompt a call puts in front of its texts: ``prompt``, else the named one, else the default, else None."""
        if prompt is not None:
            if not isinstance(prompt, str):
                raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
            return prompt
        if prompt_name is not None:
            if not isinstance(prompt_name, str):
                raise TypeError(f"prompt_name must be a string, got {type(prompt_name).__name__}")
            if prompt_name not in self.prompts:
                raise ValueError(f"prompt name {prompt_name!r} not found; the model's prompts are {list(self.prompts)}")
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts[self.default_prompt_name]
        return None

    def task_options(self, task, options):
        """encode()'s options for encode_query / encode_document: the task's prompt unless a prompt is given."""
        if options.get("prompt_name") is None and options.get("prompt") is None:
            names = [name for name in TASK_PROMPT_NAMES[task] if name in self.prompts]
            options = {**options, "prompt_name": names[0] if names else None}
        return options


def read_settings(folder):
    """A model folder's config_sentence_transformers.json, checked; {} if it has none."""
    return read_config(folder / "config_sentence_transformers.json", SETTINGS_CHECKS, required=False) or {}


def saved_prompts(settings):
    """config_sentence_transformers.json's prompts (a null prompt is the empty one)."""
    return {name: text or "" for name, text in (settings.get("prompts") or {}).items()}


def texts_from(sentences):
    """The list of texts to encode, or a TypeError naming what is wrong with the input."""
    if isinstance(sentences, str):
        return [sentences]
    if (sentences is None or isinstance(sentences, (bytes, dict)) or not hasattr(sentences, "__iter__")
            or getattr(sentences, "ndim", None) == 0):  # a 0-d NumPy array has __iter__ but cannot be iterated
        kind = "a 0-d array" if getattr(sentences, "ndim", None) == 0 else type(sentences).__name__
        raise TypeError(f"encode() takes a string or a list of strings, got {kind}")
    texts = list(sentences)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            kind = "a nested list" if isinstance(text, (list, tuple)) else type(text).__name__
            raise TypeError(f"encode() takes a string or a list of strings; item {index} is {kind}: {text!r:.60}")
    return texts


def check_batch_size(batch_size):
    if not is_integer(batch_size):
        raise TypeError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")


def in_batches(items, batch_size, show_progress_bar, length=len):
    """(indices (batch,), items) of each batch: the items longest first (by ``length``, ties in input order), so
    that each batch holds items of similar length and pads little. A tqdm bar "Batches" if show_progress_bar
    (None: if logging shows INFO)."""
    order = np.argsort([-length(item) for item in items], kind="stable")
    starts = range(0, len(items), batch_size)
    if show_progress_bar is None:
        show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
    if show_progress_bar:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="Batches")
    for start in starts:
        indices = order[start : start + batch_size]
        yield indices, [items[i] for i in indices]


def run_modules(modules, features, record=None):
    """features through each module in turn; the Transformer (the forward pass) records into ``record`` if given
    (minisbert.inspection.trace). numpy's BLAS stays at one thread throughout when the batch runs in groups
    (fast_encoder.one_blas_thread_while_split)."""
    with one_blas_thread_while_split(features["attention_mask"]):
        for module in modules:
            features = module(features, record=record) if isinstance(module, Transformer) else module(features)
    return features
