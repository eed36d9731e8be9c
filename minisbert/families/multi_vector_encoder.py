"""``MultiVectorEncoder``: sentence-transformers' MultiVectorEncoder (ColBERT, late interaction) without torch. A
text becomes one vector per scored token:

    text -> tokens (query_length / document_length; queries expanded with [MASK] tokens to a fixed length)
         -> encoder (minisbert.architectures) -> token embeddings (batch, seq, hidden)
         -> Dense projection -> MultiVectorMask (which tokens are scored: skiplist, expansion) -> Normalize
         -> a (scored tokens, dim) array per text

Queries and documents are scored by MaxSim (minisbert.util.maxsim). The modules are the ones a
sentence-transformers 6 MultiVectorEncoder folder lists: Transformer (with its query_length, document_length and
query_expansion), Dense and Normalize on token embeddings (minisbert.modules), MultiVectorMask.
"""

import logging
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import AddedToken
from tokenizers import Tokenizer as BackendTokenizer

from minisbert import util
from minisbert.files.loading import ModelLoadError, check_family, read_json, resolve_model_folder
from minisbert.architectures.checkpoint import Checkpoint
from minisbert.modules import Dense, Normalize, Transformer
from minisbert.families.sentence_transformer import (
    DEFAULT_PROMPTS,
    SentenceTransformer,
    batch_starts,
    check_encode_arguments,
    texts_from,
)
from minisbert.tokenization import Tokenizer, special_token_text
from minisbert.files.weights import load_weights

logger = logging.getLogger(__name__)

SIMILARITY_FUNCTIONS = {"maxsim": (util.maxsim, util.maxsim_pairwise),
                        "meanmaxsim": (util.mean_maxsim, util.mean_maxsim_pairwise)}
EXPANSION_STRATEGIES = ("fixed", "min")


def query_expansion_config(expansion, folder):
    """sentence_bert_config.json's query_expansion, checked, with sentence-transformers' defaults; or None."""
    if expansion is None:
        return None
    where = f"{folder / 'sentence_bert_config.json'}: query_expansion"
    unknown = set(expansion) - {"strategy", "attend", "token", "length"}
    if unknown:
        raise ModelLoadError(f"{where} has unknown keys {sorted(unknown)}")
    if expansion.get("strategy") not in EXPANSION_STRATEGIES:
        raise ModelLoadError(
            f"{where} strategy must be one of {EXPANSION_STRATEGIES}, got {expansion.get('strategy')!r}"
        )
    length = expansion.get("length")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ModelLoadError(f"{where} needs 'length', a positive integer, got {length!r}")
    return {"strategy": expansion["strategy"], "attend": bool(expansion.get("attend", False)),
            "token": expansion.get("token"), "length": length}


def tokenizer_with(tokenizer, max_length, pad_to=None):
    """A copy of a Tokenizer truncating at max_length, padding to pad_to tokens (else to the longest text)."""
    backend = BackendTokenizer.from_str(tokenizer.backend.to_str())
    copy = Tokenizer(backend, max_length, tokenizer.backend.padding["pad_token"])
    if pad_to is not None:
        backend.enable_padding(pad_id=tokenizer.backend.padding["pad_id"],
                               pad_token=tokenizer.backend.padding["pad_token"], length=pad_to, direction="right")
    return copy


class LateInteractionTransformer(Transformer):
    """A Transformer that tokenizes queries and documents to their own lengths and expands queries: the pad
    positions up to the expansion length become [MASK] (or the configured token), which the encoder sees (and,
    with ``attend``, other tokens attend to) and MaxSim scores."""

    def __init__(self, folder, defaults=None, prefixes=None):
        """defaults: settings an older save keeps elsewhere (sentence_bert_config.json wins); prefixes: PyLate's
        query / document prefixes, which may need to become special tokens (legacy_prefix_tokens)."""
        super().__init__(folder)
        folder = Path(folder)
        config = {**(defaults or {}), **(read_json(folder / "sentence_bert_config.json", required=False) or {})}
        prefix_tokens = legacy_prefix_tokens(self.tokenizer, prefixes or {})
        if prefix_tokens:
            self.tokenizer.backend.add_special_tokens(
                [AddedToken(token, special=True, normalized=False) for token in prefix_tokens]
            )
        task = config.get("transformer_task", "feature-extraction")
        if task != "feature-extraction":
            raise ModelLoadError(f"{folder}: a MultiVectorEncoder needs a feature-extraction Transformer, not {task!r}")
        self.query_length, self.document_length = config.get("query_length"), config.get("document_length")
        self.query_expansion = query_expansion_config(config.get("query_expansion"), folder)
        self.tokenizers = {"document": tokenizer_with(self.tokenizer, self.document_length or self.max_seq_length)}
        expansion = self.query_expansion
        if expansion is None:
            self.tokenizers["query"] = tokenizer_with(self.tokenizer, self.query_length or self.max_seq_length)
        else:
            if self.query_length is not None and self.query_length < expansion["length"]:
                raise ModelLoadError(f"{folder}: query_length {self.query_length} is below the query expansion "
                                     f"length {expansion['length']}")
            fixed = expansion["strategy"] == "fixed"
            max_length = expansion["length"] if fixed else max(self.query_length or self.max_seq_length,
                                                               expansion["length"])
            pad_to = expansion["length"] if fixed else None
            self.tokenizers["query"] = tokenizer_with(self.tokenizer, max_length, pad_to)
            self.expansion_id = self.expansion_token_id(folder, expansion["token"])

    def expansion_token_id(self, folder, token):
        """The id queries are expanded with: the configured token, else the tokenizer's mask token, else its eos."""
        if token is None:
            tokenizer_config = {  # older saves name the special tokens in special_tokens_map.json only
                **(read_json(Path(folder) / "special_tokens_map.json", required=False) or {}),
                **(read_json(Path(folder) / "tokenizer_config.json", required=False) or {}),
            }
            candidates = [special_token_text(tokenizer_config.get(key)) for key in ("mask_token", "eos_token")]
            token = next((t for t in candidates if t and self.tokenizer.backend.token_to_id(t) is not None), None)
            if token is None:
                raise ModelLoadError(f"{folder}: query expansion needs a token; the tokenizer has no mask or eos token")
        token_id = self.tokenizer.backend.token_to_id(token)
        if token_id is None:
            raise ModelLoadError(f"{folder}: the query expansion token {token!r} is not in the tokenizer's vocabulary")
        return token_id

    def tokenize(self, texts, task=None):
        features = self.tokenizers.get(task, self.tokenizer)(texts)  # no task: the model's max_seq_length
        if task == "query" and self.query_expansion is not None:
            features = expand_query(features, self.query_expansion, self.expansion_id)
        return features

    def __call__(self, features, record=None):
        # With expansion tokens that no token attends to (attend=False), the encoder must still compute their
        # outputs; the reference path computes every position, the fast path only the attended ones.
        if "query_expansion_positions" in features and not self.query_expansion["attend"] and record is None:
            record = {}
        return super().__call__(features, record=record)


def expand_query(features, expansion, expansion_id):
    # features of a query batch (batch, seq) -> the same widened to the expansion length if shorter, with the
    # padding positions before that length turned into expansion tokens (features["query_expansion_positions"])
    length = expansion["length"]
    width = features["input_ids"].shape[1]
    if width < length:  # 'min': batch-longest padding may be narrower than the floor
        features = {name: np.pad(value, ((0, 0), (0, length - width))) for name, value in features.items()}
    input_ids, attention_mask = features["input_ids"], features["attention_mask"]
    positions = (attention_mask == 0) & (np.arange(input_ids.shape[1]) < length)[None, :]  # (batch, seq)
    features["input_ids"] = np.where(positions, expansion_id, input_ids)
    features["query_expansion_positions"] = positions
    if expansion["attend"]:
        features["attention_mask"] = np.where(positions, 1, attention_mask)
    return features


class MultiVectorMask:
    """features["scoring_mask"] (batch, seq): which tokens MaxSim scores. Real tokens, plus a query's expansion
    positions; the skiplist's tokens (punctuation, for ColBERT) dropped for the skiplist's tasks (documents by
    default); for documents, only keep_only_token_ids if given."""

    def __init__(self, config, tokenizer):
        tasks = config.get("skiplist_tasks") or ["document"]
        self.skiplist_tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        self.keep_only_token_ids = config.get("keep_only_token_ids")
        words = config.get("skiplist_words") or []
        ids = [tokenizer.backend.token_to_id(word) for word in words]
        unknown = [word for word, token_id in zip(words, ids) if token_id is None]
        if unknown:  # sentence-transformers drops them too (rather than skipping every [UNK])
            logger.warning("skiplist words %s are not single tokens of the vocabulary: not skipped", unknown)
        self.skiplist_ids = np.array([token_id for token_id in ids if token_id is not None], dtype=np.int64)

    def __call__(self, features, task=None):
        input_ids = features["input_ids"]
        mask = features["attention_mask"].astype(bool)  # (batch, seq)
        if task == "query" and "query_expansion_positions" in features:
            mask |= features["query_expansion_positions"]
        if (task or "document") in self.skiplist_tasks and len(self.skiplist_ids):
            mask &= ~np.isin(input_ids, self.skiplist_ids)
        if task != "query" and self.keep_only_token_ids:
            mask &= np.isin(input_ids, self.keep_only_token_ids)
        features["scoring_mask"] = mask
        return features


# ---------------------------------------------------------------------------------------------------------------
# Older saves: PyLate v3 (config_sentence_transformers.json's model_type "ColBERT") kept the lengths, expansion,
# prefixes and skiplist in config_sentence_transformers.json and listed only [Transformer, Dense]; sentence-
# transformers translates them on load, and so does minisbert.

PYLATE_KEYS = ("query_length", "document_length", "query_expansion", "do_query_expansion", "attend_to_expansion_tokens",
               "attend_to_mask_tokens", "query_prefix", "document_prefix", "skiplist_words")


def legacy_prompts(settings):
    """The prompts, with query_prefix / document_prefix (PyLate) put in front; and those prefixes."""
    prompts = {name: text or "" for name, text in (settings.get("prompts") or {}).items()}
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


def legacy_prefix_tokens(tokenizer, prefixes):
    """The prefixes (or their first word) the vocabulary holds but the tokenizer splits ("[unused0]" -> "[",
    "unused", ...): PyLate inserted them as one token, so they become special tokens, as sentence-transformers
    registers them."""
    vocabulary = tokenizer.backend.get_vocab(with_added_tokens=True)
    tokens = []
    for value in prefixes.values():
        if not value or not value.split():
            continue
        for prefix in (value, value.split(None, 1)[0]):
            if prefix not in vocabulary:
                continue
            if tokenizer.backend.encode(prefix, add_special_tokens=False).tokens != [prefix]:
                tokens.append(prefix)
            break
    return tokens


def load_multi_vector_modules(folder, settings):
    """The chain of a MultiVectorEncoder folder: Transformer, Dense, MultiVectorMask, Normalize (a PyLate v3
    folder's [Transformer, Dense] get the MultiVectorMask and Normalize PyLate applied inline)."""
    module_list = read_json(folder / "modules.json", required=False)
    if not isinstance(module_list, list) or not module_list:
        raise ModelLoadError(f"{folder} has no modules.json listing a MultiVectorEncoder's modules")
    _, prefixes = legacy_prompts(settings)
    modules = []
    for entry in module_list:
        class_name = str(entry.get("type", "")).rsplit(".", 1)[-1]
        path = folder / entry.get("path", "")
        if class_name == "Transformer" and not modules:
            modules.append(LateInteractionTransformer(path, legacy_transformer_settings(settings), prefixes))
        elif class_name == "MultiVectorMask" and modules:
            config = read_json(path / "config.json", required=False) or {}
            modules.append(MultiVectorMask(config, modules[0].tokenizer))
        elif class_name == "Dense" and modules:
            dense = Dense.from_folder(path)
            if "module_input_name" not in read_json(path / "config.json"):  # PyLate's Dense: on token embeddings
                dense.input_name = dense.output_name = "token_embeddings"
            modules.append(dense)
        elif class_name == "Normalize" and modules:
            modules.append(Normalize.from_folder(path))
        else:
            raise ModelLoadError(f"unsupported module {entry.get('type')!r} in {folder / 'modules.json'} for a "
                                 f"MultiVectorEncoder; supported: a Transformer, then Dense, MultiVectorMask, "
                                 f"Normalize")
    if settings.get("model_type") == "ColBERT":
        skiplist = settings.get("skiplist_words")
        mask_config = {"skiplist_words": list(string.punctuation) if skiplist is None else skiplist}
        modules += [MultiVectorMask(mask_config, modules[0].tokenizer), Normalize("token_embeddings")]
    for module in modules:
        if isinstance(module, (Dense, Normalize)) and module.input_name != "token_embeddings":
            raise ModelLoadError(f"{folder}: a MultiVectorEncoder's {type(module).__name__} must act on "
                                 f"token_embeddings, not {module.input_name}")
    return modules


class TokenProjection:
    """Stanford ColBERT's projection: linear.weight (out, in), no bias, stored beside the encoder's weights."""

    def __init__(self, weight):
        self.weight = weight  # (out_features, in_features)
        self.out_features = weight.shape[0]

    def __call__(self, features):
        features["token_embeddings"] = features["token_embeddings"] @ self.weight.T  # (batch, seq, out_features)
        return features


def is_stanford_colbert(folder):
    config = read_json(folder / "config.json", required=False) or {}
    return not (folder / "modules.json").is_file() and "HF_ColBERT" in (config.get("architectures") or [])


def stanford_colbert_modules(folder):
    """Stanford-NLP ColBERT (config.json's architectures ["HF_ColBERT"], e.g. colbert-ir/colbertv2.0): no
    modules.json; settings in artifact.metadata; [Q] / [D] markers ([unused0] / [unused1]) as prompts, one token
    each; queries always [MASK]-expanded. Returns the modules and the prompts, as sentence-transformers builds them."""
    metadata = read_json(folder / "artifact.metadata", required=False) or {}
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


class MultiVectorEncoder:
    def __init__(self, model_name_or_path=None, *, prompts=None, default_prompt_name=None, similarity_fn_name=None,
                 cache_folder=None):
        self.folder = resolve_model_folder(model_name_or_path, cache_folder)
        settings = read_json(self.folder / "config_sentence_transformers.json", required=False) or {}
        if settings.get("model_type") != "ColBERT":  # PyLate v3's name for it
            check_family(self.folder, settings, "MultiVectorEncoder")
        if is_stanford_colbert(self.folder):
            self.modules, saved_prompts = stanford_colbert_modules(self.folder)
        else:
            self.modules = load_multi_vector_modules(self.folder, settings)
            saved_prompts, _ = legacy_prompts(settings)
        self.prompts = {**DEFAULT_PROMPTS, **saved_prompts, **(prompts or {})}
        self.default_prompt_name = default_prompt_name or settings.get("default_prompt_name")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(
                f"default prompt name {self.default_prompt_name!r} is not one of the prompts {list(self.prompts)}"
            )
        saved_similarity = settings.get("similarity_fn_name")
        name = similarity_fn_name or (saved_similarity if saved_similarity in SIMILARITY_FUNCTIONS else "maxsim")
        if name not in SIMILARITY_FUNCTIONS:
            raise ValueError(f"a MultiVectorEncoder scores by {sorted(SIMILARITY_FUNCTIONS)}, not {name!r}")
        self.similarity_fn_name = name

    resolve_prompt = SentenceTransformer.resolve_prompt  # the same prompt rules as the bi-encoder

    def __repr__(self):
        return f"MultiVectorEncoder({str(self.folder)!r}, modules={[type(m).__name__ for m in self.modules]})"

    @property
    def transformer(self):
        return self.modules[0]

    @property
    def tokenizer(self):
        return self.transformer.tokenizer

    def get_sentence_embedding_dimension(self):
        dense = [module.out_features for module in self.modules if isinstance(module, (Dense, TokenProjection))]
        return dense[-1] if dense else self.transformer.config["hidden_size"]

    def forward(self, texts, task=None, record=None):
        """One batch through the modules: features with token_embeddings (batch, seq, dim) and scoring_mask."""
        features = self.transformer.tokenize(texts, task=task)
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
        check_encode_arguments(batch_size, "token_embeddings")
        if output_value != "token_embeddings":
            raise ValueError(f"output_value must be 'token_embeddings' for a MultiVectorEncoder, got {output_value!r}")
        prompt = self.resolve_prompt(prompt, prompt_name)
        if prompt:
            texts = [prompt + text for text in texts]
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        order = np.argsort([-len(text) for text in texts], kind="stable")
        results = [None] * len(texts)
        for start in batch_starts(len(texts), batch_size, show_progress_bar):
            indices = order[start : start + batch_size]
            features = self.forward([texts[i] for i in indices], task=task)
            for index, tokens, mask in zip(indices, features["token_embeddings"], features["scoring_mask"]):
                vectors = tokens[mask].astype(np.float32, copy=False)  # (scored tokens, dim)
                if normalize_embeddings and len(vectors):
                    vectors = util.normalize_embeddings(vectors)
                results[index] = vectors
        return results[0] if is_single_text else results

    def encode_query(self, sentences, **options):
        """encode() for queries: the "query" prompt, query_length and query expansion."""
        return self.encode(sentences, **{"prompt_name": "query", "task": "query", **options})

    def encode_document(self, sentences, **options):
        """encode() for documents: the "document" prompt, document_length and the skiplist."""
        return self.encode(sentences, **{"prompt_name": "document", "task": "document", **options})

    def similarity(self, embeddings1, embeddings2, **options):
        """MaxSim (or MeanMaxSim) of every query with every document -> (n, m)."""
        return SIMILARITY_FUNCTIONS[self.similarity_fn_name][0](embeddings1, embeddings2, **options)

    def similarity_pairwise(self, embeddings1, embeddings2, **options):
        """MaxSim (or MeanMaxSim) of query i with document i -> (n,)."""
        return SIMILARITY_FUNCTIONS[self.similarity_fn_name][1](embeddings1, embeddings2, **options)

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
