"""``SentenceTransformer``: the user-facing class, with sentence-transformers' interface. It only wires the
other rooms together: loading finds the folder, modules.json gives the chain of modules (tokenize ->
forward pass -> pooling -> ...), and encode runs batches of texts through that chain.
"""

import numpy as np

from minisbert.architectures.fast_encoder import quantize_linear_layers
from minisbert.families._encoding import (
    Encoder, check_batch_size, in_batches, read_settings, run_modules, saved_prompts, texts_from,
)
from minisbert.files.loading import check_family, is_integer, resolve_model_folder
from minisbert.inspection.trace import trace
from minisbert.kernels.similarity import normalize_rows
from minisbert.modules import Transformer, load_modules
from minisbert.util.quantization import check_precision, quantize_embeddings
from minisbert.util.similarity import SIMILARITY_FUNCTIONS, similarity_function_name

__all__ = ["QUANTIZE_OPTIONS", "SentenceTransformer"]

OUTPUT_VALUES = ("sentence_embedding", "token_embeddings", None)
# quantize=: None (float32) or "int8": the encoder's linear layers in int8
# (minisbert.architectures.fast_encoder.quantized_linear)
QUANTIZE_OPTIONS = (None, "int8")


class SentenceTransformer(Encoder):
    """A bi-encoder: text -> one embedding (sentence-transformers' SentenceTransformer)."""

    def __init__(
        self,
        model_name_or_path=None,
        *,
        prompts=None,
        default_prompt_name=None,
        similarity_fn_name=None,
        truncate_dim=None,
        cache_folder=None,
        quantize=None,
    ):
        if quantize not in QUANTIZE_OPTIONS:
            raise ValueError(f"quantize={quantize!r} is not one of {QUANTIZE_OPTIONS}")
        self.folder = resolve_model_folder(model_name_or_path, cache_folder)
        check_family(self.folder, "SentenceTransformer")
        self.modules = load_modules(self.folder)
        settings = read_settings(self.folder)
        if quantize == "int8":
            quantize_transformers(self.modules)
        self.set_prompts(saved_prompts(settings), prompts, default_prompt_name or settings.get("default_prompt_name"))
        self.similarity_fn_name = similarity_fn_name or settings.get("similarity_fn_name") or "cosine"
        check_truncate_dim(truncate_dim)
        self.truncate_dim = truncate_dim

    @property
    def transformer(self):
        return next(module for module in self.modules if isinstance(module, Transformer))

    @property
    def similarity_fn_name(self):
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, name):
        """The function similarity() and similarity_pairwise() use, checked when set (sentence-transformers' setter)."""
        self._similarity_fn_name = similarity_function_name(name)

    @property
    def max_seq_length(self):
        return self.transformer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value):
        """Texts are truncated to ``value`` tokens from the next call on, as sentence-transformers' setter."""
        self.transformer.max_seq_length = value

    def get_sentence_embedding_dimension(self):
        dimensions = [m.sentence_embedding_dimension for m in self.modules if hasattr(m, "sentence_embedding_dimension")]
        dimension = dimensions[-1] if dimensions else None
        if self.truncate_dim is not None and dimension is not None:
            return min(dimension, self.truncate_dim)
        return dimension

    def tokenize(self, texts):
        return self.transformer.tokenize(texts)

    def forward(self, texts, record=None, prompt_length=None):
        """One batch of texts through every module: the features dict, sentence_embedding (batch, dim) included.
        ``prompt_length``: the token count of a prompt the texts start with, for pooling that leaves it out."""
        features = self.tokenize(texts)
        if prompt_length is not None:
            features["prompt_length"] = prompt_length
        return run_modules(self.modules, features, record)

    def encode(
        self,
        sentences,
        prompt_name=None,
        prompt=None,
        batch_size=32,
        show_progress_bar=None,
        output_value="sentence_embedding",
        convert_to_numpy=True,
        normalize_embeddings=False,
        truncate_dim=None,
        precision="float32",
    ):
        """Embeds a text (-> (dim,)) or a list of texts (-> (n, dim) float32), as sentence-transformers does.
        precision "int8", "uint8", "binary" or "ubinary" quantizes the (n, dim) array (minisbert.util.quantization)."""
        is_single_text = isinstance(sentences, str)
        texts = texts_from(sentences)
        quantize = precision is not None and check_precision(precision) != "float32"
        if quantize and not (output_value == "sentence_embedding" and convert_to_numpy):
            raise ValueError(f"precision={precision!r} needs output_value='sentence_embedding', convert_to_numpy=True")
        prompt = self.resolve_prompt(prompt, prompt_name)
        truncate_dim = truncate_dim if truncate_dim is not None else self.truncate_dim
        check_encode_arguments(batch_size, output_value, truncate_dim)
        prompt_length = None
        if prompt:
            texts = [prompt + text for text in texts]
            prompt_length = self.tokenizer.prompt_length(prompt)

        # Each distinct text once (10,000 empty strings are one forward pass), when the result is one array.
        # Each batch's outputs go straight to their texts' places: nothing per corpus is kept but the result.
        returns_array = output_value == "sentence_embedding" and convert_to_numpy
        texts, rows = distinct(texts) if returns_array else (texts, None)
        embeddings, results = None, [None] * len(texts)
        for indices, batch in in_batches(texts, batch_size, show_progress_bar):
            features = self.forward(batch, prompt_length=prompt_length)
            if truncate_dim is not None:
                features["sentence_embedding"] = features["sentence_embedding"][:, :truncate_dim]
            outputs = per_text_outputs(features, output_value, normalize_embeddings)
            if returns_array:
                if embeddings is None:
                    embeddings = np.empty((len(texts), len(outputs[0])), dtype=outputs[0].dtype)
                embeddings[indices] = outputs
            else:
                for index, output in zip(indices, outputs):
                    results[index] = output

        if returns_array:
            if embeddings is None:  # no text: the width a text would have had
                dimension = self.get_sentence_embedding_dimension()
                if truncate_dim is not None:
                    dimension = min(dimension, truncate_dim)
                embeddings = np.empty((0, dimension), dtype=np.float32)
            elif len(texts) < len(rows):
                embeddings = embeddings[rows]
            if quantize:
                embeddings = quantize_embeddings(embeddings, precision)
            return embeddings[0] if is_single_text else embeddings
        return results[0] if is_single_text else results

    def trace(self, text):
        """One text's every intermediate value (tokens, each layer's hidden states and attention maps, the
        pooled and final embedding) from the forward pass encode runs: a minisbert.inspection.trace.Trace."""
        return trace(self, text)

    def encode_query(self, sentences, **options):
        """encode() with the model's "query" prompt (empty unless the model defines one)."""
        return self.encode(sentences, **self.task_options("query", options))

    def encode_document(self, sentences, **options):
        """encode() with the model's "document" prompt (empty unless the model defines one)."""
        return self.encode(sentences, **self.task_options("document", options))

    def similarity(self, embeddings1, embeddings2):
        """The model's similarity function between every pair of rows: (n, dim), (m, dim) -> (n, m)."""
        return SIMILARITY_FUNCTIONS[self.similarity_fn_name][0](embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        """The model's similarity function between row i of each: (n, dim), (n, dim) -> (n,)."""
        return SIMILARITY_FUNCTIONS[self.similarity_fn_name][1](embeddings1, embeddings2)


def distinct(texts):
    """(each distinct text once, in first-seen order; rows (n,): each text's place among them)."""
    places = {}
    rows = np.array([places.setdefault(text, len(places)) for text in texts], dtype=np.int64)
    return list(places), rows


def check_encode_arguments(batch_size, output_value, truncate_dim):
    check_batch_size(batch_size)
    if output_value not in OUTPUT_VALUES:
        raise ValueError(f"output_value must be one of {OUTPUT_VALUES}, got {output_value!r}")
    check_truncate_dim(truncate_dim)


def check_truncate_dim(truncate_dim):
    if truncate_dim is not None:
        if not is_integer(truncate_dim):
            raise TypeError(f"truncate_dim must be a positive integer or None, got {truncate_dim!r}")
        if truncate_dim < 1:
            raise ValueError(f"truncate_dim must be a positive integer or None, got {truncate_dim}")


def per_text_outputs(features, output_value, normalize_embeddings):
    """A batch's features -> one output per text, in the form encode() returns for output_value."""
    if output_value == "sentence_embedding":
        embeddings = features["sentence_embedding"]
        if normalize_embeddings:
            embeddings = normalize_rows(embeddings)
        return list(embeddings)
    if output_value == "token_embeddings":
        # Each text's token embeddings up to its last real token, as sentence-transformers trims them (with left
        # padding, the padding in front is kept, as there).
        mask = features["attention_mask"]
        lengths = mask.shape[1] - np.argmax(mask[:, ::-1] != 0, axis=1)
        return [tokens[:length] for tokens, length in zip(features["token_embeddings"], lengths)]
    count = len(features["input_ids"])
    # Arrays are split per text; values for the whole batch (prompt_length) are given to each text as they are.
    return [
        {
            name: value[i] if isinstance(value, np.ndarray) and value.ndim and len(value) == count else value
            for name, value in features.items()
        }
        for i in range(count)
    ]


def quantize_transformers(modules):
    """quantize="int8": each Transformer module's encoder layers get int8 weights (quantize_linear_layers)."""
    for module in modules:
        if isinstance(module, Transformer):
            if "layers" not in module.params:
                raise ValueError(f"quantize='int8' does not support model_type {module.config.get('model_type')!r}")
            quantize_linear_layers(module.params["layers"])
