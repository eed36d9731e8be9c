"""``SparseEncoder``: sentence-transformers' SparseEncoder (SPLADE) without torch. A text becomes one weight per
vocabulary entry, almost all zero:

    text -> tokens -> encoder (minisbert.architectures) -> hidden (tokens, hidden)
         -> masked-language-model head -> logits (tokens, vocab)
         -> SpladePooling: log(1 + relu(logits)), max (or sum) over the tokens -> (vocab,)

Inference-free SPLADE routes queries through ``SparseStaticEmbedding`` instead (a fixed weight per vocabulary entry
present in the query) with a ``Router``; documents take the path above. Output: a ``scipy.sparse.csr_array``
(where sentence-transformers gives a torch sparse tensor), or a dense array with
``convert_to_sparse_tensor=False``. scipy is the optional extra ``sparse``.

The modules a folder may name: the fill-mask ``Transformer`` sentence-transformers 6 saves, the older
``MLMTransformer``, ``SpladePooling``, ``SparseStaticEmbedding``, ``Router``.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minisbert.files.loading import ModelLoadError, check_family, read_json, resolve_model_folder
from minisbert.architectures.checkpoint import Checkpoint
from minisbert.architectures.layers import activation, layer_norm, linear
from minisbert.modules import Transformer
from minisbert.families.sentence_transformer import (
    DEFAULT_PROMPTS,
    SentenceTransformer,
    batch_starts,
    check_encode_arguments,
    texts_from,
)
from minisbert.util.similarity import SIMILARITY_FUNCTIONS, similarity_function_name
from minisbert.tokenization import Tokenizer
from minisbert.files.weights import load_weights

logger = logging.getLogger(__name__)

SPARSE_INSTALL_HINT = "pip install 'minisbert[sparse]'"


def scipy_sparse():
    """scipy.sparse, or an ImportError naming the extra that installs it."""
    try:
        import scipy.sparse
    except ImportError:
        raise ImportError(f"sparse embeddings need scipy: {SPARSE_INSTALL_HINT}") from None
    return scipy.sparse


# ---------------------------------------------------------------------------------------------------------------
# The masked-language-model head: hidden states -> a logit per vocabulary entry, one tensor-name table per family.

# model_type -> where transformers' *ForMaskedLM keeps the head: dense, activation, LayerNorm, decoder (tied to the
# word embeddings unless saved) and its bias. "activation" None: the config's hidden_act.
MLM_HEADS = {
    "bert": {
        "dense": "cls.predictions.transform.dense",
        "norm": "cls.predictions.transform.LayerNorm",
        "decoder": "cls.predictions.decoder",
        "bias": "cls.predictions.bias",
        "activation": None,
    },
    "distilbert": {
        "dense": "vocab_transform",
        "norm": "vocab_layer_norm",
        "decoder": "vocab_projector",
        "bias": "vocab_projector.bias",
        "activation": None,
    },
    # RobertaLMHead and MPNetLMHead call the exact GELU whatever the config says.
    "roberta": {
        "dense": "lm_head.dense",
        "norm": "lm_head.layer_norm",
        "decoder": "lm_head.decoder",
        "bias": "lm_head.bias",
        "activation": "gelu",
    },
}
MLM_HEADS["xlm-roberta"] = MLM_HEADS["mpnet"] = MLM_HEADS["roberta"]


def load_mlm_head(tensors, config, word_embeddings):
    """The head's parameters: {"dense", "norm", "decoder": {"weight" (vocab, hidden), "bias" (vocab,)},
    "activation", "eps"}; the decoder weight is the word embedding table when the checkpoint ties them."""
    model_type = config["model_type"]
    if model_type not in MLM_HEADS:
        raise ModelLoadError(f"no masked-language-model head known for model_type {model_type!r}; "
                             f"supported: {sorted(MLM_HEADS)}")
    names = MLM_HEADS[model_type]
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    checkpoint = Checkpoint(tensors)
    decoder_weight = f"{names['decoder']}.weight"
    bias = names["bias"] if names["bias"] in checkpoint.tensors else f"{names['decoder']}.bias"
    head = {
        "dense": checkpoint.linear(names["dense"], hidden, hidden),
        "norm": checkpoint.norm(names["norm"], hidden),
        "decoder": {
            "weight": (
                checkpoint.take(decoder_weight, (vocab, hidden))
                if decoder_weight in checkpoint.tensors or not config.get("tie_word_embeddings", True)
                else word_embeddings
            ),
            "bias": checkpoint.take(bias, (vocab,)),
        },
        "activation": names["activation"] or config["hidden_act"],
        "eps": config["layer_norm_eps"],
    }
    checkpoint.check(f"{model_type} masked-language-model head")
    return head


def mlm_logits(head, hidden):
    # hidden (tokens, hidden) -> logits (tokens, vocab): dense, activation, LayerNorm, decoder
    x = activation(head["activation"])(linear(hidden, head["dense"]))
    x = layer_norm(x, head["norm"], head["eps"])
    return linear(x, head["decoder"])


class MaskedLanguageModel(Transformer):
    """A fill-mask Transformer: the encoder as a bi-encoder's Transformer runs it, plus the MLM head.

    A batch's logits (batch, seq, vocab) would take 625 MB at 32 x 160 x 30522, so this module does not make
    them: it leaves the hidden states in features["token_embeddings"] and the head in features["mlm_logits"],
    and SpladePooling applies the head to one text's tokens at a time.
    """

    def __init__(self, folder):
        super().__init__(folder)
        self.head = load_mlm_head(load_weights(Path(folder)), self.config, self.params["embeddings"]["word"])
        self.sentence_embedding_dimension = self.config["vocab_size"]

    def __call__(self, features, record=None):
        features = super().__call__(features, record=record)
        features["mlm_logits"] = self.logits
        return features

    def logits(self, hidden):
        return mlm_logits(self.head, hidden)


# ---------------------------------------------------------------------------------------------------------------
# SPLADE pooling

SPLADE_POOLING_STRATEGIES = ("max", "sum")
SPLADE_ACTIVATIONS = ("relu", "log1p_relu")


def splade_activation(x, activation_function):
    # log(1 + relu(x)); "log1p_relu" (OpenSearch's models) takes log1p once more
    x = np.log1p(np.maximum(x, 0))
    return np.log1p(x) if activation_function == "log1p_relu" else x


def splade_pool(logits, strategy, activation_function):
    # logits (tokens, vocab) of one text's real tokens -> (vocab,). The activation is monotone, so the max of the
    # activated logits is the activation of the max logit: max pooling activates vocab numbers, not tokens x vocab.
    if strategy == "max":
        return splade_activation(logits.max(axis=0), activation_function)
    return splade_activation(logits, activation_function).sum(axis=0)


class SpladePooling:
    """MLM logits -> features["sentence_embedding"] (batch, vocab), as sentence-transformers' SpladePooling; padding
    never counts (sentence-transformers zeroes its logits, which the ReLU then drops)."""

    def __init__(self, pooling_strategy="max", activation_function="relu"):
        if pooling_strategy not in SPLADE_POOLING_STRATEGIES:
            raise ModelLoadError(f"SpladePooling pooling_strategy must be one of {SPLADE_POOLING_STRATEGIES}, "
                                 f"got {pooling_strategy!r}")
        if activation_function not in SPLADE_ACTIVATIONS:
            raise ModelLoadError(f"SpladePooling activation_function must be one of {SPLADE_ACTIVATIONS}, "
                                 f"got {activation_function!r}")
        self.pooling_strategy = pooling_strategy
        self.activation_function = activation_function

    @classmethod
    def from_folder(cls, folder):
        config = read_json(Path(folder) / "config.json", required=False) or {}
        return cls(config.get("pooling_strategy", "max"), config.get("activation_function", "relu"))

    def __call__(self, features):
        if "mlm_logits" not in features:
            raise ModelLoadError("SpladePooling needs a fill-mask Transformer (an MLM head) before it")
        hidden, lengths = features["token_embeddings"], features["attention_mask"].sum(axis=1)  # (batch, seq, hidden)
        features["sentence_embedding"] = np.stack([
            splade_pool(features["mlm_logits"](tokens[:length]), self.pooling_strategy, self.activation_function)
            for tokens, length in zip(hidden, lengths)
        ])  # (batch, vocab)
        return features


# ---------------------------------------------------------------------------------------------------------------
# Inference-free queries: a fixed weight per vocabulary entry

NO_LENGTH_LIMIT = 2**31 - 1  # transformers' "no limit" (1e30) is larger than the tokenizers library accepts


class SparseStaticEmbedding:
    """Text -> features["sentence_embedding"] (batch, vocab): weight[t] for each vocabulary entry t among the
    text's tokens (tokenized without special tokens, as sentence-transformers does), 0 elsewhere."""

    def __init__(self, folder):
        folder = Path(folder)
        tokenizer_config = read_json(folder / "tokenizer_config.json", required=False) or {}
        max_length = tokenizer_config.get("model_max_length")
        if not isinstance(max_length, int) or not 0 < max_length < NO_LENGTH_LIMIT:
            max_length = NO_LENGTH_LIMIT
        self.tokenizer = Tokenizer.from_folder(folder, max_length)
        self.max_seq_length = max_length
        checkpoint = Checkpoint(load_weights(folder))
        size = self.tokenizer.backend.get_vocab_size(with_added_tokens=True)
        self.weight = checkpoint.take("weight", (size,))
        checkpoint.check(f"SparseStaticEmbedding in {folder}")
        self.sentence_embedding_dimension = size

    @classmethod
    def from_folder(cls, folder):
        return cls(folder)

    def tokenize(self, texts):
        return self.tokenizer(texts, add_special_tokens=False)

    def __call__(self, features):
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]  # (batch, seq)
        present = np.zeros((len(input_ids), len(self.weight)), dtype=np.float32)  # (batch, vocab)
        # A padding position writes 0 at the padding id, as torch's scatter of the attention mask does.
        present[np.arange(len(input_ids))[:, None], input_ids] = attention_mask
        features["sentence_embedding"] = present * self.weight
        return features


# ---------------------------------------------------------------------------------------------------------------
# Router and the module chain

class Router:
    """Sub-chains of modules chosen by task ("query", "document"), from router_config.json."""

    def __init__(self, folder):
        folder = Path(folder)
        config = read_json(folder / "router_config.json")
        parameters = config.get("parameters") or {}
        if parameters.get("route_mappings"):
            raise ModelLoadError(f"{folder / 'router_config.json'}: route_mappings are not supported by minisbert")
        types = config.get("types") or {}
        self.routes = {
            route: [module_class(types.get(name, ""), folder / "router_config.json")(folder / name) for name in names]
            for route, names in (config.get("structure") or {}).items()
        }
        if not self.routes or not all(self.routes.values()):
            raise ModelLoadError(f"{folder / 'router_config.json'} has an empty route: {list(self.routes)}")
        self.default_route = parameters.get("default_route")
        if self.default_route is None and parameters.get("allow_empty_key", True):
            self.default_route = next(iter(self.routes))

    @classmethod
    def from_folder(cls, folder):
        return cls(folder)

    def modules_for(self, task):
        route = task if task in self.routes else None
        if task is not None and route is None:
            raise ValueError(f"no route for task {task!r}; the model's routes are {list(self.routes)}")
        route = route or self.default_route
        if route is None:
            raise ValueError(f"no task given and the Router has no default route; routes: {list(self.routes)}")
        return self.routes[route]


def transformer_module(folder):
    """A Transformer entry of a SparseEncoder: the fill-mask one (sentence_bert_config.json says so)."""
    task = (read_json(Path(folder) / "sentence_bert_config.json", required=False) or {}).get("transformer_task")
    if task not in (None, "fill-mask"):
        raise ModelLoadError(f"{folder}: a SparseEncoder needs a fill-mask Transformer, this one is {task!r}")
    return MaskedLanguageModel(folder)


SPARSE_MODULE_TYPES = {
    "Transformer": transformer_module,
    "MLMTransformer": MaskedLanguageModel,
    "SpladePooling": SpladePooling.from_folder,
    "SparseStaticEmbedding": SparseStaticEmbedding,
    "Router": Router,
}
SPARSE_OUTPUT_MODULES = (SpladePooling, SparseStaticEmbedding)


def module_class(type_name, listed_in):
    class_name = str(type_name).rsplit(".", 1)[-1]
    if class_name not in SPARSE_MODULE_TYPES:
        raise ModelLoadError(
            f"unsupported module {type_name!r} in {listed_in} for a SparseEncoder; supported: "
            f"{sorted(SPARSE_MODULE_TYPES)}"
        )
    return SPARSE_MODULE_TYPES[class_name]


def load_sparse_modules(folder):
    """The chain of a SparseEncoder folder; a bare transformers *ForMaskedLM folder gets max SpladePooling."""
    module_list = read_json(folder / "modules.json", required=False)
    if module_list is None:
        architectures = (read_json(folder / "config.json").get("architectures") or [""])
        if not architectures[0].endswith("ForMaskedLM"):
            raise ModelLoadError(f"{folder} has no modules.json and is not a *ForMaskedLM model ({architectures})")
        return [MaskedLanguageModel(folder), SpladePooling("max")]
    if not isinstance(module_list, list):
        raise ModelLoadError(f"corrupt {folder / 'modules.json'}: expected a list of modules")
    modules = [
        module_class(entry.get("type", ""), folder / "modules.json")(folder / entry.get("path", ""))
        for entry in module_list
    ]
    if isinstance(modules[0], Router) and len(modules) > 1:
        raise ModelLoadError(f"{folder}: minisbert supports a Router only as the model's single module")
    chains = modules[0].routes.values() if isinstance(modules[0], Router) else [modules]
    for chain in chains:
        if not isinstance(chain[-1], SPARSE_OUTPUT_MODULES):
            raise ModelLoadError(f"{folder}: a SparseEncoder chain must end in SpladePooling or SparseStaticEmbedding, "
                                 f"this one ends in {type(chain[-1]).__name__}")
    return modules


def check_max_active_dims(max_active_dims):
    if max_active_dims is None:
        return None
    if isinstance(max_active_dims, bool) or not isinstance(max_active_dims, (int, np.integer)) or max_active_dims <= 0:
        raise ValueError(f"max_active_dims must be a positive integer, got {max_active_dims!r}")
    return int(max_active_dims)


def keep_max_active_dims(embeddings, max_active_dims):
    # embeddings (batch, vocab) -> the same with all but the max_active_dims largest |values| of each row zeroed
    if max_active_dims is None or max_active_dims >= embeddings.shape[1]:
        return embeddings
    kept = np.argpartition(-np.abs(embeddings), max_active_dims - 1, axis=1)[:, :max_active_dims]  # (batch, k)
    out = np.zeros_like(embeddings)
    rows = np.arange(len(embeddings))[:, None]
    out[rows, kept] = embeddings[rows, kept]
    return out


# ---------------------------------------------------------------------------------------------------------------
# The model

class SparseEncoder:
    def __init__(
        self,
        model_name_or_path=None,
        *,
        prompts=None,
        default_prompt_name=None,
        similarity_fn_name=None,
        max_active_dims=None,
        cache_folder=None,
    ):
        self.folder = resolve_model_folder(model_name_or_path, cache_folder)
        settings = read_json(self.folder / "config_sentence_transformers.json", required=False) or {}
        check_family(self.folder, settings, "SparseEncoder")
        self.modules = load_sparse_modules(self.folder)
        saved_prompts = {name: text or "" for name, text in (settings.get("prompts") or {}).items()}
        self.prompts = {**DEFAULT_PROMPTS, **saved_prompts, **(prompts or {})}
        self.default_prompt_name = default_prompt_name or settings.get("default_prompt_name")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(
                f"default prompt name {self.default_prompt_name!r} is not one of the prompts {list(self.prompts)}"
            )
        self.similarity_fn_name = similarity_function_name(
            similarity_fn_name or settings.get("similarity_fn_name") or "dot"
        )
        self.max_active_dims = check_max_active_dims(
            max_active_dims if max_active_dims is not None else settings.get("max_active_dims")
        )

    resolve_prompt = SentenceTransformer.resolve_prompt  # the same prompt rules as the bi-encoder

    def __repr__(self):
        return f"SparseEncoder({str(self.folder)!r}, modules={[type(m).__name__ for m in self.modules]})"

    def modules_for(self, task=None):
        """The chain of modules a text of ``task`` ("query", "document" or None) goes through."""
        if isinstance(self.modules[0], Router):
            return self.modules[0].modules_for(task)
        return self.modules

    @property
    def tokenizer(self):
        """The tokenizer of the default (document) chain: its vocabulary names the output dimensions."""
        return self.modules_for()[0].tokenizer

    @property
    def max_seq_length(self):
        return self.modules_for()[0].max_seq_length

    def get_sentence_embedding_dimension(self):
        return self.modules_for()[0].sentence_embedding_dimension

    def forward(self, texts, task=None, record=None):
        """One batch of texts through the chain for ``task``: the features dict, sentence_embedding (batch, vocab)."""
        modules = self.modules_for(task)
        features = modules[0].tokenize(texts)
        for module in modules:
            features = module(features, record=record) if isinstance(module, Transformer) else module(features)
        return features

    def encode(
        self,
        sentences,
        prompt_name=None,
        prompt=None,
        batch_size=32,
        show_progress_bar=None,
        convert_to_tensor=True,
        convert_to_sparse_tensor=True,
        max_active_dims=None,
        task=None,
    ):
        """Texts -> sparse embeddings: a csr_array (n, vocab) (a text: (vocab,)); with convert_to_sparse_tensor=False
        a dense float32 array; with convert_to_tensor=False a list of per-text rows."""
        is_single_text = isinstance(sentences, str)
        texts = texts_from(sentences)
        check_encode_arguments(batch_size, "sentence_embedding")
        if max_active_dims is None:
            max_active_dims = self.max_active_dims
        max_active_dims = check_max_active_dims(max_active_dims)
        prompt = self.resolve_prompt(prompt, prompt_name)
        if prompt:
            texts = [prompt + text for text in texts]
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        sparse = scipy_sparse() if convert_to_sparse_tensor else None

        order = np.argsort([-len(text) for text in texts], kind="stable")
        rows = [None] * len(texts)  # each text's (vocabulary ids, weights), or its dense row
        for start in batch_starts(len(texts), batch_size, show_progress_bar):
            indices = order[start : start + batch_size]
            embeddings = self.forward([texts[i] for i in indices], task=task)["sentence_embedding"]
            embeddings = keep_max_active_dims(embeddings.astype(np.float32, copy=False), max_active_dims)
            for index, row in zip(indices, embeddings):
                rows[index] = (np.flatnonzero(row), row[row != 0]) if sparse else row

        dimension = self.get_sentence_embedding_dimension()
        if sparse is None:
            embeddings = np.stack(rows) if rows else np.zeros((0, dimension), dtype=np.float32)
        else:
            embeddings = csr_from_rows(sparse, rows, dimension)
        if is_single_text:
            return embeddings[0]
        return embeddings if convert_to_tensor else [embeddings[i] for i in range(len(texts))]

    def encode_query(self, sentences, **options):
        """encode() for queries: the "query" prompt and the Router's query route."""
        return self.encode(sentences, **{"prompt_name": "query", "task": "query", **options})

    def encode_document(self, sentences, **options):
        """encode() for documents: the "document" prompt and the Router's document route."""
        return self.encode(sentences, **{"prompt_name": "document", "task": "document", **options})

    def decode(self, embeddings, top_k=None):
        """Sparse embeddings -> their (token, weight) pairs, heaviest first: a list for one vector (vocab,), a list
        of lists for (n, vocab); top_k keeps that many of each."""
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k <= 0):
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        matrix, is_vector = as_sparse_matrix(embeddings)
        results = []
        for row in range(matrix.shape[0]):
            ids, weights = row_entries(matrix, row)
            order = np.lexsort((ids, -weights))[:top_k]
            results.append([(self.tokenizer.backend.id_to_token(int(i)), float(w)) for i, w in
                            zip(ids[order], weights[order])])
        return results[0] if is_vector else results

    @staticmethod
    def sparsity(embeddings):
        """{"active_dims": mean non-zeros per row, "sparsity_ratio": 1 - active_dims / dimensions}."""
        matrix, _ = as_sparse_matrix(embeddings)
        if matrix.shape[0] == 0 or matrix.shape[1] == 0:
            return {"active_dims": 0.0, "sparsity_ratio": 1.0}
        active = float(np.mean(np.diff(matrix.indptr)))
        return {"active_dims": active, "sparsity_ratio": 1.0 - active / matrix.shape[1]}

    def similarity(self, embeddings1, embeddings2):
        """The model's similarity (dot by default) between every pair of rows: (n, vocab), (m, vocab) -> (n, m)."""
        if self.similarity_fn_name in ("dot", "cosine"):
            return sparse_similarity(embeddings1, embeddings2, normalize=self.similarity_fn_name == "cosine")
        return SIMILARITY_FUNCTIONS[self.similarity_fn_name][0](dense(embeddings1), dense(embeddings2))

    def similarity_pairwise(self, embeddings1, embeddings2):
        """The model's similarity between row i of each: (n,)."""
        return SIMILARITY_FUNCTIONS[self.similarity_fn_name][1](dense(embeddings1), dense(embeddings2))

    def trace(self, text, task=None, top_k=20):
        """Which vocabulary entries one text's SPLADE vector lights up, and which of its tokens lit each:
        a minisbert.families.sparse_encoder.SpladeTrace."""
        return splade_trace(self, text, task, top_k)


def csr_from_rows(sparse, rows, dimension):
    """Per-text (ids, weights) -> a csr_array (n, dimension) float32."""
    lengths = [len(ids) for ids, _ in rows]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = np.concatenate([ids for ids, _ in rows]).astype(np.int32) if rows else np.zeros(0, np.int32)
    data = np.concatenate([weights for _, weights in rows]) if rows else np.zeros(0, np.float32)
    return sparse.csr_array((data.astype(np.float32), indices, indptr), shape=(len(rows), dimension))


def as_sparse_matrix(embeddings):
    """A csr_array (rows, vocab) of a sparse or dense (vocab,) / (n, vocab) input, and whether it was one vector."""
    sparse = scipy_sparse()
    is_sparse = sparse.issparse(embeddings)
    ndim = embeddings.ndim if is_sparse else np.ndim(embeddings)
    if ndim not in (1, 2):
        raise ValueError(f"sparse embeddings must be 1-D (vocab,) or 2-D (n, vocab), got {ndim}-D")
    matrix = embeddings if is_sparse else np.asarray(embeddings, dtype=np.float32)
    if ndim == 1:
        matrix = matrix.reshape(1, -1)
    matrix = sparse.csr_array(matrix)
    matrix.sum_duplicates()
    return matrix, ndim == 1


def row_entries(matrix, row):
    """The non-zero (ids, weights) of a csr_array row."""
    span = slice(matrix.indptr[row], matrix.indptr[row + 1])
    ids, weights = matrix.indices[span], matrix.data[span]
    nonzero = weights != 0
    return ids[nonzero], weights[nonzero]


def dense(embeddings):
    """A sparse or dense (n, vocab) input as a dense float32 array."""
    matrix, _ = as_sparse_matrix(embeddings)
    return matrix.toarray()


def normalized_rows(matrix):
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return scipy_sparse().diags_array(1 / np.maximum(norms, 1e-12)) @ matrix


def sparse_similarity(embeddings1, embeddings2, normalize=False):
    """Dot products (cosine if normalize) of every row of one with every row of the other -> (n, m) dense, by the
    inverted-index kernel."""
    from minisbert.kernels.sparse import sparse_dot

    queries, _ = as_sparse_matrix(embeddings1)
    corpus, _ = as_sparse_matrix(embeddings2)
    check_same_vocabulary(queries, corpus)
    if normalize:
        queries, corpus = normalized_rows(queries).tocsr(), normalized_rows(corpus).tocsr()
    postings = corpus.tocsc()
    return sparse_dot(queries.indptr, queries.indices, queries.data, postings.indptr, postings.indices, postings.data,
                      corpus.shape[0])


def check_same_vocabulary(queries, corpus):
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"query embeddings have {queries.shape[1]} dimensions but corpus embeddings have "
                         f"{corpus.shape[1]}")


def inverted_index(corpus_embeddings):
    """The corpus (n, vocab) as a csc_array: column t lists the documents holding vocabulary entry t (a posting
    list). Building it costs about as much as a search of a few hundred queries: build it once for many searches."""
    corpus, _ = as_sparse_matrix(corpus_embeddings)
    return corpus.tocsc()


def sparse_search(query_embeddings, corpus_embeddings, top_k=10):
    """For each query, its top_k corpus rows by dot product, as sentence_transformers.util.semantic_search returns
    them: [[{"corpus_id", "score"}, ...] per query], best first (ties by corpus_id), over an inverted index of the
    corpus. corpus_embeddings: sparse or dense (n, vocab), or inverted_index(corpus) built once beforehand."""
    from minisbert.kernels.sparse import sparse_search as search_kernel
    from minisbert.util._search import check_count, search_results

    top_k = check_count(top_k, "top_k", 1)
    queries, _ = as_sparse_matrix(query_embeddings)
    is_index = scipy_sparse().issparse(corpus_embeddings) and corpus_embeddings.format == "csc"
    postings = corpus_embeddings if is_index else inverted_index(corpus_embeddings)
    check_same_vocabulary(queries, postings)
    scores, indices = search_kernel(queries.indptr, queries.indices, queries.data, postings.indptr, postings.indices,
                                    postings.data, postings.shape[0], top_k)
    return search_results(indices, scores)


# ---------------------------------------------------------------------------------------------------------------
# Trace: which vocabulary entries a text lights up, and which of its tokens lit each

@dataclass(frozen=True)
class SpladeTrace:
    text: str
    tokens: list  # the text's tokens as the model sees them (seq,)
    vocabulary: list  # the top_k heaviest vocabulary entries of the text's vector, heaviest first (top_k,)
    weights: np.ndarray  # (top_k,) their weights (= encode's output there)
    token_weights: np.ndarray  # (seq, top_k): what each token gives each entry (activated MLM logit, or static weight)
    embedding: np.ndarray  # (vocab,) the whole vector, dense

    @property
    def lit_by(self):
        """For each of the top entries, the token that gives it its largest contribution."""
        return [self.tokens[i] for i in self.token_weights.argmax(axis=0)] if len(self.tokens) else []


def per_token_weights(modules, features):
    # features of one text -> (seq, vocab): each token's contribution before pooling
    last = modules[-1]
    if isinstance(last, SparseStaticEmbedding):
        ids = features["input_ids"][0]  # (seq,)
        weights = np.zeros((len(ids), len(last.weight)), dtype=np.float32)
        weights[np.arange(len(ids)), ids] = last.weight[ids]
        return weights
    hidden = features["token_embeddings"][0, : int(features["attention_mask"][0].sum())]  # (seq, hidden)
    return splade_activation(features["mlm_logits"](hidden), last.activation_function)


def splade_trace(model, text, task=None, top_k=20):
    if not isinstance(text, str):
        raise TypeError(f"trace() takes one string, got {type(text).__name__}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    modules = model.modules_for(task)
    features = model.forward([text], task=task)
    embedding = features["sentence_embedding"][0]  # (vocab,)
    ids = np.flatnonzero(embedding)
    top = ids[np.lexsort((ids, -embedding[ids]))][:top_k]  # heaviest first
    tokenizer = modules[0].tokenizer
    add_special_tokens = not isinstance(modules[-1], SparseStaticEmbedding)
    return SpladeTrace(
        text=text,
        tokens=tokenizer.backend.encode(text, add_special_tokens=add_special_tokens).tokens,
        vocabulary=[tokenizer.backend.id_to_token(int(i)) for i in top],
        weights=embedding[top],
        token_weights=per_token_weights(modules, features)[:, top],
        embedding=embedding,
    )
