"""``MultiVectorEncoder``: sentence-transformers' MultiVectorEncoder (ColBERT, late interaction) without torch. A
text becomes one vector per scored token:

    text -> tokens (query_length / document_length; queries expanded with [MASK] tokens to a fixed length)
         -> encoder (minisbert.architectures) -> token embeddings (batch, seq, hidden)
         -> Dense projection -> MultiVectorMask (which tokens are scored: skiplist, expansion) -> Normalize
         -> a (scored tokens, dim) array per text

Queries and documents are scored by MaxSim (minisbert.util.maxsim). The modules are the ones a
sentence-transformers 6 MultiVectorEncoder folder lists: Transformer (minisbert.modules.LateInteractionTransformer,
with its query_length, document_length and query_expansion), Dense and Normalize on token embeddings,
MultiVectorMask. Here too: how older saves (PyLate v3, Stanford ColBERT) are read, and the trace of a MaxSim score.
"""

import string
from dataclasses import dataclass

import numpy as np

from minisbert import util
from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.fast_encoder import one_blas_thread_while_split
from minisbert.families._encoding import (
    Encoder, check_batch_size, in_batches, read_settings, saved_prompts, texts_from,
)
from minisbert.files.loading import ModelLoadError, check_family, read_config, resolve_model_folder
from minisbert.files.weights import load_weights
from minisbert.modules import (
    Dense, LateInteractionTransformer, MultiVectorMask, Normalize, TokenProjection, Transformer, read_module_list,
)

__all__ = ["MaxSimTrace", "MultiVectorEncoder"]

MAXSIM_FUNCTIONS = {"maxsim": (util.maxsim, util.maxsim_pairwise),
                    "meanmaxsim": (util.mean_maxsim, util.mean_maxsim_pairwise)}


# Older saves: PyLate v3 (config_sentence_transformers.json's model_type "ColBERT") kept the lengths, expansion,
# prefixes and skiplist in config_sentence_transformers.json and listed only [Transformer, Dense]; sentence-
# transformers translates them on load, and so does minisbert.

PYLATE_KEYS = ("query_length", "document_length", "query_expansion", "do_query_expansion", "attend_to_expansion_tokens",
               "attend_to_mask_tokens", "query_prefix", "document_prefix", "skiplist_words")


def legacy_prompts(settings):
    """The prompts, with query_prefix / document_prefix (PyLate) put in front; and those prefixes."""
    prompts = saved_prompts(settings)
    prefixes = {}
    for key, name in (("query_prefix", "query"), ("document_prefix", "document")):
        if key in settings:
            prefixes[name] = settings[key] or ""
            prompts[name] = prefixes[name] + prompts.get(name, "").removeprefix(prefixes[name])
    return prompts, prefixes


def legacy_transformer_settings(settings):
    """PyLate's lengths and query expansion as the Transformer's sentence_bert_config.json would hold them."""
    knobs = {key: settings[key] for key in ("query_length", "document_length") if settings.get(key) is not None}
    if "query_expansion" in settings:
        knobs["query_expansion"] = settings["query_expansion"]
    elif any(key in settings for key in PYLATE_KEYS):  # PyLate expanded queries unless told not to
        if settings.get("do_query_expansion") is False:
            knobs["query_expansion"] = None
        else:
            attend = settings.get("attend_to_expansion_tokens", settings.get("attend_to_mask_tokens"))
            length = knobs.pop("query_length", None) or 32
            knobs["query_expansion"] = {"strategy": "fixed", "attend": bool(attend), "length": length}
    return knobs


def load_multi_vector_modules(folder, settings):
    """The chain of a MultiVectorEncoder folder: Transformer, Dense, MultiVectorMask, Normalize (a PyLate v3
    folder's [Transformer, Dense] get the MultiVectorMask and Normalize PyLate applied inline)."""
    entries = read_module_list(folder)
    if not entries:
        raise ModelLoadError(f"{folder} has no modules.json listing a MultiVectorEncoder's modules")
    _, prefixes = legacy_prompts(settings)
    modules = []
    for type_name, path in entries:
        class_name = type_name.rsplit(".", 1)[-1]
        if class_name == "Transformer" and not modules:
            modules.append(LateInteractionTransformer(path, legacy_transformer_settings(settings), prefixes))
        elif class_name == "MultiVectorMask" and modules:
            config_path = path / "config.json"
            config = read_config(config_path, MultiVectorMask.CONFIG_CHECKS, required=False) or {}
            modules.append(MultiVectorMask(config, modules[0].tokenizer, config_path))
        elif class_name == "Dense" and modules:
            dense = Dense.from_folder(path)
            if "module_input_name" not in read_config(path / "config.json", {}):  # PyLate's Dense: on token embeddings
                dense.input_name = dense.output_name = "token_embeddings"
            modules.append(dense)
        elif class_name == "Normalize" and modules:
            modules.append(Normalize.from_folder(path))
        else:
            raise ModelLoadError(f"unsupported module {type_name!r} in {folder / 'modules.json'} for a "
                                 f"MultiVectorEncoder; supported: a Transformer, then Dense, MultiVectorMask, "
                                 f"Normalize")
    if settings.get("model_type") == "ColBERT":
        skiplist = settings.get("skiplist_words")
        mask_config = {"skiplist_words": list(string.punctuation) if skiplist is None else skiplist}
        settings_path = folder / "config_sentence_transformers.json"
        modules += [MultiVectorMask(mask_config, modules[0].tokenizer, settings_path), Normalize("token_embeddings")]
    for module in modules:
        if isinstance(module, (Dense, Normalize)) and module.input_name != "token_embeddings":
            raise ModelLoadError(f"{folder}: a MultiVectorEncoder's {type(module).__name__} must act on "
                                 f"token_embeddings, not {module.input_name}")
    return modules


def is_stanford_colbert(folder):
    config = read_config(folder / "config.json", {}, required=False) or {}
    return not (folder / "modules.json").is_file() and "HF_ColBERT" in (config.get("architectures") or [])


def stanford_colbert_modules(folder):
    """Stanford-NLP ColBERT (config.json's architectures ["HF_ColBERT"], e.g. colbert-ir/colbertv2.0): no
    modules.json; settings in artifact.metadata; [Q] / [D] markers ([unused0] / [unused1]) as prompts, one token
    each; queries always [MASK]-expanded. Returns the modules and the prompts, as sentence-transformers builds them."""
    metadata = read_config(folder / "artifact.metadata", {}, required=False) or {}
    prefixes = {"query": (metadata.get("query_token_id") or "[unused0]") + " ",
                "document": (metadata.get("doc_token_id") or "[unused1]") + " "}
    defaults = {"query_expansion": {"strategy": "fixed", "attend": bool(metadata.get("attend_to_mask_tokens")),
                                    "length": metadata.get("query_maxlen") or 32}}
    if metadata.get("doc_maxlen") is not None:
        defaults["document_length"] = metadata["doc_maxlen"]
    transformer = LateInteractionTransformer(folder, defaults, prefixes)
    weight = Checkpoint(load_weights(folder)).tensors.get("linear.weight")
    if weight is None or np.ndim(weight) != 2 or weight.shape[1] != transformer.config["hidden_size"]:
        raise ModelLoadError(f"{folder}: a Stanford ColBERT checkpoint needs linear.weight (dim, "
                             f"{transformer.config['hidden_size']}) beside the encoder's weights")
    skiplist = list(string.punctuation) if metadata.get("mask_punctuation", True) else []
    modules = [
        transformer,
        TokenProjection(np.asarray(weight, dtype=np.float32)),
        MultiVectorMask({"skiplist_words": skiplist}, transformer.tokenizer),
        Normalize("token_embeddings"),
    ]
    return modules, prefixes


class MultiVectorEncoder(Encoder):
    """Text -> one vector per scored token, scored by MaxSim (sentence-transformers' MultiVectorEncoder)."""

    def __init__(self, model_name_or_path=None, *, prompts=None, default_prompt_name=None, similarity_fn_name=None,
                 cache_folder=None):
        self.folder = resolve_model_folder(model_name_or_path, cache_folder)
        settings = read_settings(self.folder)
        check_family(self.folder, "MultiVectorEncoder")
        if is_stanford_colbert(self.folder):
            self.modules, folder_prompts = stanford_colbert_modules(self.folder)
        else:
            self.modules = load_multi_vector_modules(self.folder, settings)
            folder_prompts, _ = legacy_prompts(settings)
        self.set_prompts(folder_prompts, prompts, default_prompt_name or settings.get("default_prompt_name"))
        saved_similarity = settings.get("similarity_fn_name")
        name = similarity_fn_name or (saved_similarity if saved_similarity in MAXSIM_FUNCTIONS else "maxsim")
        if name not in MAXSIM_FUNCTIONS:
            raise ValueError(f"a MultiVectorEncoder scores by {sorted(MAXSIM_FUNCTIONS)}, not {name!r}")
        self.similarity_fn_name = name

    @property
    def transformer(self):
        return self.modules[0]

    def get_sentence_embedding_dimension(self):
        dense = [module.out_features for module in self.modules if isinstance(module, (Dense, TokenProjection))]
        return dense[-1] if dense else self.transformer.config["hidden_size"]

    def forward(self, texts, task=None, record=None):
        """One batch through the modules: features with token_embeddings (batch, seq, dim) and scoring_mask."""
        features = self.transformer.tokenize(texts, task=task)
        with one_blas_thread_while_split(features["attention_mask"]):
            for module in self.modules:
                if isinstance(module, Transformer):
                    features = module(features, record=record)
                elif isinstance(module, MultiVectorMask):
                    features = module(features, task=task)
                else:
                    features = module(features)
        features.setdefault("scoring_mask", features["attention_mask"].astype(bool))
        return features

    def encode(self, sentences, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None,
               output_value="token_embeddings", convert_to_numpy=True, normalize_embeddings=False, task=None):
        """Texts -> a list of (scored tokens, dim) float32 arrays (one text: one array). The output is always
        NumPy (convert_to_numpy is accepted for sentence-transformers' signature)."""
        is_single_text = isinstance(sentences, str)
        texts = texts_from(sentences)
        check_batch_size(batch_size)
        if output_value != "token_embeddings":
            raise ValueError(f"output_value must be 'token_embeddings' for a MultiVectorEncoder, got {output_value!r}")
        prompt = self.resolve_prompt(prompt, prompt_name)
        if prompt:
            texts = [prompt + text for text in texts]
        results = [None] * len(texts)
        for indices, batch in in_batches(texts, batch_size, show_progress_bar):
            features = self.forward(batch, task=task)
            for index, tokens, mask in zip(indices, features["token_embeddings"], features["scoring_mask"]):
                vectors = tokens[mask].astype(np.float32, copy=False)  # (scored tokens, dim)
                if normalize_embeddings and len(vectors):
                    vectors = util.normalize_embeddings(vectors)
                results[index] = vectors
        return results[0] if is_single_text else results

    def encode_query(self, sentences, **options):
        """encode() for queries: the "query" prompt, query_length and query expansion."""
        return self.encode(sentences, **{"task": "query", **self.task_options("query", options)})

    def encode_document(self, sentences, **options):
        """encode() for documents: the "document" prompt, document_length and the skiplist."""
        return self.encode(sentences, **{"task": "document", **self.task_options("document", options)})

    def similarity(self, embeddings1, embeddings2, **options):
        """MaxSim (or MeanMaxSim) of every query with every document -> (n, m)."""
        return MAXSIM_FUNCTIONS[self.similarity_fn_name][0](embeddings1, embeddings2, **options)

    def similarity_pairwise(self, embeddings1, embeddings2, **options):
        """MaxSim (or MeanMaxSim) of query i with document i -> (n,)."""
        return MAXSIM_FUNCTIONS[self.similarity_fn_name][1](embeddings1, embeddings2, **options)

    def trace(self, query, document):
        """Which document token each query token matches in MaxSim: a minisbert.families.multi_vector_encoder.MaxSimTrace."""
        return maxsim_trace(self, query, document)


@dataclass(frozen=True)
class MaxSimTrace:
    query_tokens: list  # the query's scored tokens (s,)
    document_tokens: list  # the document's scored tokens (t,)
    similarities: np.ndarray  # (s, t): dot product of each query token with each document token
    score: float  # MaxSim: the sum over query tokens of their best match (= model.similarity)

    @property
    def matches(self):
        """For each query token, the document token it matches best: [(query token, document token, similarity)]."""
        if not self.document_tokens:
            return []
        best = self.similarities.argmax(axis=1)
        return [(q, self.document_tokens[j], float(self.similarities[i, j]))
                for i, (q, j) in enumerate(zip(self.query_tokens, best))]


def scored_tokens_of(model, text, task):
    # one text as encode_query / encode_document sees it -> its scored tokens as strings (expansion positions show
    # as the expansion token), their vectors (s, dim)
    features = model.forward([(model.prompts.get(task) or "") + text], task=task)
    mask = features["scoring_mask"][0]
    tokens = [model.tokenizer.backend.id_to_token(int(i)) for i in features["input_ids"][0][mask]]
    return tokens, features["token_embeddings"][0][mask].astype(np.float32, copy=False)


def maxsim_trace(model, query, document):
    for name, text in (("query", query), ("document", document)):
        if not isinstance(text, str):
            raise TypeError(f"trace() takes a query and a document string; the {name} is {type(text).__name__}")
    query_tokens, query_vectors = scored_tokens_of(model, query, "query")
    document_tokens, document_vectors = scored_tokens_of(model, document, "document")
    similarities = query_vectors @ document_vectors.T  # (s, t)
    score = float(model.similarity([query_vectors], [document_vectors])[0, 0])
    return MaxSimTrace(query_tokens, document_tokens, similarities, score)
