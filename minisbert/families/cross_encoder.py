"""``CrossEncoder``: sentence-transformers' reranker family. A (query, document) pair is read as one sequence
by the tokenizer's pair template ([CLS] query [SEP] document [SEP], token types 0 then 1, longest-first
truncation to the model's max length), the encoder runs over it (minisbert.architectures), and the architecture's
classification head (minisbert.architectures.heads) turns the first token's vector into logits; an activation
(sigmoid for one label, as saved otherwise) turns them into scores. ``rank`` sorts documents by score.
"""

import logging
from dataclasses import dataclass

import numpy as np

from minisbert.architectures.fast_encoder import one_blas_thread_while_split
from minisbert.architectures.heads import classification_head, head_for, load_head, num_labels
from minisbert.architectures.layers import softmax
from minisbert.families._encoding import (
    Encoder, check_batch_size, in_batches, read_settings, saved_prompts,
)
from minisbert.files.loading import ModelLoadError, check_family, is_positive_integer, read_config, resolve_model_folder
from minisbert.files.weights import load_weights
from minisbert.modules import Transformer, read_module_list
from minisbert.modules.dense import DENSE_ACTIVATIONS

__all__ = ["CrossEncoder", "CrossEncoderTrace"]

logger = logging.getLogger(__name__)


class CrossEncoder(Encoder):
    """A reranker: a (query, document) pair -> a score (sentence-transformers' CrossEncoder)."""

    default_prompts = {}  # sentence-transformers gives a CrossEncoder no prompts of its own

    def __init__(
        self,
        model_name_or_path,
        *,
        max_length=None,
        activation_fn=None,
        prompts=None,
        default_prompt_name=None,
        cache_folder=None,
    ):
        self.folder = resolve_model_folder(model_name_or_path, cache_folder)
        check_cross_encoder_folder(self.folder)
        self.transformer = Transformer(self.folder)
        if max_length is not None:
            self.tokenizer.set_max_length(checked_pair_length(self.tokenizer, "max_length", max_length))
        self.head = load_head(load_weights(self.folder), self.config)
        self.num_labels = num_labels(self.config)
        settings = read_settings(self.folder)
        if activation_fn is None:
            activation_fn = saved_activation(self.folder, settings, self.config, self.num_labels)
        self.activation_fn = callable_activation(activation_fn)
        self.set_prompts(saved_prompts(settings), prompts, default_prompt_name or settings.get("default_prompt_name"))

    def __repr__(self):
        return f"CrossEncoder({str(self.folder)!r}, model_type={self.config['model_type']!r}, num_labels={self.num_labels})"

    @property
    def config(self):
        return self.transformer.config

    @property
    def max_seq_length(self):
        return self.tokenizer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value):
        """Pairs are truncated to ``value`` tokens from the next call on, as sentence-transformers' setter."""
        self.tokenizer.set_max_length(checked_pair_length(self.tokenizer, "max_seq_length", value))

    def forward(self, pairs, record=None):
        """One batch of (text, text) pairs -> features: the tokenizer's arrays, token_embeddings, pooled (batch,
        hidden) the vector the classifier reads, logits (batch, num_labels). token_embeddings holds every token,
        (batch, seq, hidden), when ``record`` asks for the intermediate states (trace); else only the first
        token's, (batch, 1, hidden), when that is all the head reads, and the last layer computes no other."""
        first_token_only = record is None and self.head["pooling"] == "cls"
        features = self.tokenizer(pairs)
        with one_blas_thread_while_split(features["attention_mask"]):
            features = self.transformer(features, record=record, first_token_only=first_token_only)
            features["pooled"], features["logits"] = classification_head(
                self.head, features["token_embeddings"], features["attention_mask"]
            )
        return features

    def predict(
        self,
        inputs,
        prompt_name=None,
        prompt=None,
        batch_size=32,
        show_progress_bar=None,
        activation_fn=None,
        apply_softmax=False,
        convert_to_numpy=True,
    ):
        """Scores of (text, text) pairs: (n,) for a one-label model, (n, num_labels) otherwise; a single pair
        gives a scalar or (num_labels,). The activation (the model's unless given: any callable on a (batch,
        num_labels) array) is applied to each batch's logits; apply_softmax then normalises several labels."""
        is_single_pair = single_pair(inputs)
        pairs = text_pairs([np.asarray(inputs).tolist()] if is_single_pair else inputs)
        check_batch_size(batch_size)
        prompt = self.resolve_prompt(prompt, prompt_name)
        if prompt:  # in front of each pair's first text
            pairs = [(prompt + first, second) for first, second in pairs]
        activation_fn = self.activation_fn if activation_fn is None else callable_activation(activation_fn)

        batches, places = [], []
        for indices, batch in in_batches(pairs, batch_size, show_progress_bar, length=pair_length):
            logits = self.forward(batch)["logits"]  # (batch, num_labels)
            scores = activation_fn(logits)
            check_activation_output(scores, logits)
            if self.num_labels == 1 and scores.ndim > 1:
                scores = scores[..., 0]  # (batch,)
            if apply_softmax and scores.ndim > 1:
                scores = softmax(scores)
            batches.append(np.asarray(scores))
            places.append(indices)
        if batches:  # each batch's scores back to their pairs' places
            scores = np.concatenate(batches)[np.argsort(np.concatenate(places))]
        else:
            scores = np.empty((0,) if self.num_labels == 1 else (0, self.num_labels), dtype=np.float32)
        if not convert_to_numpy:
            scores = list(scores)
        return scores[0] if is_single_pair else scores

    def rank(
        self,
        query,
        documents,
        top_k=None,
        return_documents=False,
        prompt_name=None,
        prompt=None,
        batch_size=32,
        show_progress_bar=None,
        activation_fn=None,
    ):
        """The documents sorted by their score with the query, best first: [{"corpus_id", "score"(, "text")}],
        equal scores in document order; the top_k best only, if given. One-label models only."""
        if self.num_labels != 1:
            raise ValueError(
                f"CrossEncoder.rank() only works for models with num_labels=1; this model has {self.num_labels} "
                "labels. Use predict() with (query, document) pairs instead."
            )
        if top_k is not None and not is_positive_integer(top_k):
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
        documents = rank_documents(query, documents)
        scores = self.predict(
            [(query, document) for document in documents],
            prompt_name=prompt_name,
            prompt=prompt,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            activation_fn=activation_fn,
        )
        best_first = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:top_k]
        results = [{"corpus_id": int(i), "score": float(scores[i])} for i in best_first]
        if return_documents:
            for result in results:
                result["text"] = documents[result["corpus_id"]]
        return results

    def trace(self, query, document):
        """One pair's every intermediate value, from word pieces to scores: a CrossEncoderTrace."""
        (pair,) = text_pairs([(query, document)])
        record = {}
        features = self.forward([pair], record=record)
        encoding = self.tokenizer.backend.encode(*pair, add_special_tokens=True)  # as in forward (truncated)
        return CrossEncoderTrace(
            query=query,
            document=document,
            tokens=encoding.tokens,
            segments=np.array([-1 if segment is None else segment for segment in encoding.sequence_ids]),
            input_ids=features["input_ids"][0],
            token_type_ids=features["token_type_ids"][0],
            hidden_states=np.stack(record["hidden_states"])[:, 0],
            attentions=np.stack(record["attentions"])[:, 0],
            pooled=features["pooled"][0],
            logits=features["logits"][0],
            scores=np.asarray(self.activation_fn(features["logits"]))[0],
        )


@dataclass(frozen=True)
class CrossEncoderTrace:
    query: str
    document: str
    tokens: list  # the word pieces of the pair template, special tokens included (seq,)
    segments: np.ndarray  # (seq,) int: 0 for the query's pieces, 1 for the document's, -1 for special tokens
    input_ids: np.ndarray  # (seq,) int64
    token_type_ids: np.ndarray  # (seq,) int64: 0 for the query's segment, 1 for the document's (BERT)
    hidden_states: np.ndarray  # (num_layers + 1, seq, hidden): [0] the embeddings output, [i] layer i's output
    attentions: np.ndarray  # (num_layers, heads, seq, seq): softmax probabilities, row = query, column = key
    pooled: np.ndarray  # (hidden,): the head's dense layer and activation (and norm) on the first token (or the
    # mean of the tokens, for a ModernBERT head that pools so): what the classifier reads
    logits: np.ndarray  # (num_labels,): the classifier's output
    scores: np.ndarray  # (num_labels,): logits through the model's activation (what predict returns)

    @property
    def first_token(self):
        """(hidden,): the last layer's vector of the first token ([CLS] / <s>), the head's input (but for a
        ModernBERT head that pools the mean)."""
        return self.hidden_states[-1, 0]

    @property
    def num_layers(self):
        return len(self.attentions)

    @property
    def first_token_attention(self):
        """(num_layers, seq): how the first token, the one the head reads, spreads its attention over the pair's
        tokens in each layer (mean over heads)."""
        return self.attentions[:, :, 0, :].mean(axis=1)


def checked_pair_length(tokenizer, name, value):
    """value, a pair's token count (``name`` the setting's), or a ValueError: not a positive integer, or no room
    left for text beside the pair's special tokens (the tokenizers library would then not truncate at all)."""
    if not is_positive_integer(value):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    special = tokenizer.backend.num_special_tokens_to_add(is_pair=True)
    if value <= special:
        raise ValueError(f"{name} {value} leaves no room for text: a pair takes {special} special tokens")
    return value


def single_pair(inputs):
    """Whether predict's input is one pair rather than a list of pairs, as sentence-transformers decides it:
    a non-empty list or tuple whose first item is not itself a list or tuple (a 1-d array of strings too)."""
    if isinstance(inputs, np.ndarray):
        return inputs.size > 0 and inputs.ndim < 2
    if isinstance(inputs, (list, tuple)):
        return len(inputs) > 0 and not isinstance(inputs[0], (list, tuple))
    if isinstance(inputs, str):
        raise TypeError(
            f"predict() takes a (text, text) pair or a list of pairs, not a single string: {inputs!r:.60}"
        )
    return False


def callable_activation(activation_fn):
    """activation_fn, or a TypeError if it is not a function (a name such as "sigmoid" is not taken)."""
    if not callable(activation_fn):
        raise TypeError(f"activation_fn must be a function of a NumPy array (or None), got {activation_fn!r:.40}")
    return activation_fn


def check_activation_output(scores, logits):
    """A TypeError unless activation_fn gave an array of the logits' shape (or (batch,) for one label)."""
    shape = getattr(scores, "shape", None)
    if shape not in (logits.shape, logits.shape[:1] if logits.shape[1] == 1 else logits.shape):
        raise TypeError(f"activation_fn must return an array of the logits' shape {logits.shape}, got "
                        f"{type(scores).__name__} of shape {shape}")


def pair_length(pair):
    return len(pair[0]) + len(pair[1])


def text_pairs(inputs):
    """The list of (str, str) pairs to score, or an error naming the first item that is not one."""
    if inputs is None or isinstance(inputs, (str, bytes, dict)) or not hasattr(inputs, "__iter__"):
        raise TypeError(f"predict() takes a (text, text) pair or a list of pairs, got {type(inputs).__name__}")
    pairs = inputs.tolist() if isinstance(inputs, np.ndarray) else list(inputs)
    for index, pair in enumerate(pairs):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(text, str) for text in pair)):
            raise TypeError(f"input {index} is not a (text, text) pair: {pair!r:.80}")
    return [tuple(pair) for pair in pairs]


def rank_documents(query, documents):
    if not isinstance(query, str):
        raise TypeError(f"rank() takes the query as a string, got {type(query).__name__}")
    if isinstance(documents, (str, bytes)) or not hasattr(documents, "__iter__"):
        raise TypeError(f"rank() takes the documents as a list of strings, got {type(documents).__name__}")
    documents = list(documents)
    for index, document in enumerate(documents):
        if not isinstance(document, str):
            raise TypeError(f"document {index} is not a string: {document!r:.60}")
    return documents


def check_cross_encoder_folder(folder):
    """A clear error unless the folder holds a cross-encoder: a CrossEncoder save (modules.json with model_type
    CrossEncoder) or a transformers *ForSequenceClassification folder, as older CrossEncoders were saved."""
    check_family(folder, "CrossEncoder")
    entries = read_module_list(folder)
    if entries is not None:  # a CrossEncoder save: the classification model alone, at the folder's root
        types = [type_name.rsplit(".", 1)[-1] for type_name, _ in entries]
        if types != ["Transformer"] or entries[0][1] != folder:
            raise ModelLoadError(
                f"{folder / 'modules.json'} chains {types}: minisbert's CrossEncoder reads one "
                "Transformer module (a *ForSequenceClassification model) at the folder's root"
            )
    config = read_config(folder / "config.json", {})
    architectures = config.get("architectures") or []
    if architectures and not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise ModelLoadError(
            f"{folder / 'config.json'} names the architecture {architectures[0]}, not a *ForSequenceClassification "
            "model: a CrossEncoder needs a sequence classification head"
        )
    head_for(config.get("model_type"))


def saved_activation(folder, settings, config, labels):
    """The activation sentence-transformers picks for a saved model: activation_fn in
    config_sentence_transformers.json, else in config.json (sentence_transformers.activation_fn, or the
    pre-4.0 sbert_ce_default_activation_function); a path outside torch is not trusted (warning) and skipped;
    else sigmoid for one label and identity for several."""
    nested = config.get("sentence_transformers")
    if isinstance(nested, dict) and "activation_fn" in nested:
        older = ("config.json", "sentence_transformers.activation_fn", nested["activation_fn"])
    else:
        older = ("config.json", "sbert_ce_default_activation_function", config.get("sbert_ce_default_activation_function"))
    for file, key, path in [("config_sentence_transformers.json", "activation_fn", settings.get("activation_fn")), older]:
        if path is None:
            continue
        if not (isinstance(path, str) and path.startswith("torch.")):
            logger.warning("activation %r in %s is not a torch class: using the default activation", path, file)
            continue
        name = path.rsplit(".", 1)[-1]
        if name not in DENSE_ACTIVATIONS:  # torch activation class name -> the NumPy function
            raise ModelLoadError(
                f"{folder / file}: {key} {path!r} is not supported; minisbert has {sorted(DENSE_ACTIVATIONS)}"
            )
        return DENSE_ACTIVATIONS[name]
    return DENSE_ACTIVATIONS["Sigmoid"] if labels == 1 else DENSE_ACTIVATIONS["Identity"]
