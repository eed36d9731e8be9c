"""Embedding in worker processes (Dask, Ray Data, Spark, a process pool): each process loads a model once, on
first use, and keeps it for every later batch; what travels to the workers is only the model's name and the
encode options, never its weights.

``Embedder(model, **encode_options)`` is that idea as a picklable callable: a batch of texts (a list, a pandas
Series, a NumPy array) -> embeddings (n, dim); a dict of columns (Ray Data) or a pandas DataFrame (Spark's
mapInPandas) -> the same with an "embedding" column added. minisbert.dask and the streaming CLI run it too.
"""

import inspect
import os
import threading

from minisbert.files.loading import DEFAULT_MODEL
from minisbert.families.sentence_transformer import QUANTIZE_OPTIONS, SentenceTransformer

# Options of SentenceTransformer.encode that a worker may be given: those that keep one (n, dim) array per
# batch, equal whatever the batches are (int8/uint8 calibrate on the batch itself, so they are refused).
BATCH_ENCODE_OPTIONS = ("batch_size", "normalize_embeddings", "prompt", "prompt_name", "truncate_dim", "precision")
BATCH_PRECISIONS = ("float32", "binary", "ubinary")

_process_models = {}  # (model name or path, quantize) -> SentenceTransformer, loaded in this process
_process_models_lock = threading.Lock()  # threads of one worker share the cache: one load per process


def model_name(model):
    """The model as a name or path string, which is what may be sent to workers."""
    if isinstance(model, SentenceTransformer):
        raise TypeError(
            f"pass the model's name or folder (e.g. {str(model.folder)!r}), not a loaded SentenceTransformer: "
            "each worker process loads it once itself, and the weights are never sent with the tasks"
        )
    model = DEFAULT_MODEL if model is None else model
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a model folder path or a hub id string, got {model!r}")
    return model


def check_batch_encode_options(options):
    """options as a dict for SentenceTransformer.encode, or a TypeError / ValueError naming the bad one."""
    accepted = inspect.signature(SentenceTransformer.encode).parameters
    for name in options:
        if name not in BATCH_ENCODE_OPTIONS:
            why = "is not an option of encode" if name not in accepted else "cannot be used batch by batch"
            raise TypeError(f"encode option {name!r} {why}; the options are {BATCH_ENCODE_OPTIONS}")
    precision = options.get("precision", "float32")
    if precision not in BATCH_PRECISIONS:
        raise ValueError(
            f"precision={precision!r} cannot be computed batch by batch (int8/uint8 buckets are calibrated on "
            f"the embeddings themselves): use one of {BATCH_PRECISIONS}, or quantize the float32 embeddings "
            "afterwards with minisbert.util.quantization.quantize_embeddings(embeddings, precision, ranges=...)"
        )
    return dict(options)


def process_model(model, quantize=None):
    """The SentenceTransformer for this model name or path (int8 linear layers if quantize="int8"), loaded the
    first time this process asks for it."""
    with _process_models_lock:
        if (model, quantize) not in _process_models:
            _process_models[model, quantize] = SentenceTransformer(model, quantize=quantize)
        return _process_models[model, quantize]


def texts_of(batch):
    """A list of str from a list, tuple, pandas Series or NumPy array of strings."""
    return batch.tolist() if hasattr(batch, "tolist") else list(batch)


class Embedder:
    """embedder = Embedder("all-MiniLM-L6-v2", normalize_embeddings=True); embedder(batch) -> embeddings.

    batch: a list / pandas Series / NumPy array of strings -> (n, dim) array; a dict of columns (Ray Data's
    batch format) or a pandas DataFrame -> a copy with an "embedding" column added ((n, dim) array in the dict,
    one array per row in the DataFrame), the texts read from column ``text_column``. quantize="int8": the
    model's linear layers in int8, as SentenceTransformer(model, quantize="int8")."""

    def __init__(self, model=None, text_column="text", quantize=None, **encode_options):
        if quantize not in QUANTIZE_OPTIONS:
            raise ValueError(f"quantize={quantize!r} is not one of {QUANTIZE_OPTIONS}")
        self.model = model_name(model)
        self.text_column = text_column
        self.quantize = quantize
        self.encode_options = check_batch_encode_options(encode_options)

    def __repr__(self):
        options = "".join(f", {name}={value!r}" for name, value in self.encode_options.items())
        quantize = f", quantize={self.quantize!r}" if self.quantize else ""
        return f"Embedder({self.model!r}, text_column={self.text_column!r}{quantize}{options})"

    def loaded_model(self):
        """This process's copy of the model."""
        return process_model(self.model, self.quantize)

    def encode(self, texts):
        """A list of strings -> (n, dim) embeddings with this process's copy of the model."""
        return self.loaded_model().encode(texts, show_progress_bar=False, **self.encode_options)

    def __call__(self, batch):
        if isinstance(batch, dict) or hasattr(batch, "columns"):
            if self.text_column not in batch:
                columns = list(batch.keys()) if isinstance(batch, dict) else list(batch.columns)
                raise ValueError(
                    f"the batch has no column {self.text_column!r} (its columns: {columns}); "
                    "pass Embedder(..., text_column=NAME)"
                )
            embeddings = self.encode(texts_of(batch[self.text_column]))  # (n, dim)
            if isinstance(batch, dict):
                return {**batch, "embedding": embeddings}
            return batch.assign(embedding=list(embeddings))
        if isinstance(batch, str):
            raise TypeError("Embedder maps a batch of texts; wrap a single text in a list")
        return self.encode(texts_of(batch))
