"""``SparseEncoder``: sentence-transformers' SparseEncoder (SPLADE) without torch. A text becomes one weight per
vocabulary entry, almost all zero:

    text -> tokens -> encoder (minisbert.architectures) -> hidden (tokens, hidden)
         -> masked-language-model head -> logits (tokens, vocab)          (modules/masked_language_model.py)
         -> SpladePooling: log(1 + relu(logits)), max (or sum) over the tokens -> (vocab,)   (modules/splade_pooling.py)

Inference-free SPLADE routes queries through ``SparseStaticEmbedding`` instead (a fixed weight per vocabulary entry
present in the query) with a ``Router``; documents take the path above. Output: a ``scipy.sparse.csr_array``
(where sentence-transformers gives a torch sparse tensor), or a dense array with
``convert_to_sparse_tensor=False``. scipy is the optional extra ``sparse``.

The modules a folder may name: the fill-mask ``Transformer`` sentence-transformers 6 saves, the older
``MLMTransformer``, ``SpladePooling``, ``SparseStaticEmbedding``, ``Router``. Here too: search over sparse
embeddings (sparse_search, inverted_index) and the trace of a text's vector (SpladeTrace).
"""

from dataclasses import dataclass

import numpy as np

from minisbert.families._encoding import (
    Encoder, check_batch_size, in_batches, read_settings, run_modules, saved_prompts, texts_from,
)
from minisbert.files.loading import ModelLoadError, check_family, is_positive_integer, read_config, resolve_model_folder
from minisbert.modules import (
    MaskedLanguageModel, Router, SparseStaticEmbedding, SpladePooling, module_loader, read_module_list,
)
from minisbert.modules.masked_language_model import fill_mask_transformer
from minisbert.modules.splade_pooling import splade_activation
from minisbert.util.similarity import SIMILARITY_FUNCTIONS, similarity_function_name

__all__ = ["SparseEncoder", "SpladeTrace", "inverted_index", "sparse_search"]

SPARSE_INSTALL_HINT = "pip install 'minisbert[sparse]'"


def scipy_sparse():
    """scipy.sparse, or an ImportError naming the extra that installs it."""
    try:
        import scipy.sparse
    except ImportError:
        raise ImportError(f"sparse embeddings need scipy: {SPARSE_INSTALL_HINT}") from None
    return scipy.sparse


# ---------------------------------------------------------------------------------------------------------------
# The module chain

def load_sparse_module(type_name, folder, listed_in):
    """A module of a SparseEncoder folder (modules.json or a Router's router_config.json lists it)."""
    return module_loader(type_name, SPARSE_MODULE_TYPES, listed_in, "SparseEncoder")(folder)


def load_router(folder):
    """A Router whose routes hold SparseEncoder modules."""
    return Router.from_folder(folder, load_sparse_module)


SPARSE_MODULE_TYPES = {
    "Transformer": fill_mask_transformer,
    "MLMTransformer": MaskedLanguageModel.from_folder,
    "SpladePooling": SpladePooling.from_folder,
    "SparseStaticEmbedding": SparseStaticEmbedding.from_folder,
    "Router": load_router,
}
SPARSE_OUTPUT_MODULES = (SpladePooling, SparseStaticEmbedding)


def load_sparse_modules(folder):
    """The chain of a SparseEncoder folder; a bare transformers *ForMaskedLM folder gets max SpladePooling."""
    entries = read_module_list(folder)
    if entries is None:
        architectures = (read_config(folder / "config.json", {}).get("architectures") or [""])
        if not architectures[0].endswith("ForMaskedLM"):
            raise ModelLoadError(f"{folder} has no modules.json and is not a *ForMaskedLM model ({architectures})")
        return [MaskedLanguageModel(folder), SpladePooling("max")]
    modules = [load_sparse_module(type_name, path, folder / "modules.json") for type_name, path in entries]
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
    if not is_positive_integer(max_active_dims):
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

class SparseEncoder(Encoder):
    """Text -> one weight per vocabulary entry (sentence-transformers' SparseEncoder)."""

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
        settings = read_settings(self.folder)
        check_family(self.folder, "SparseEncoder")
        self.modules = load_sparse_modules(self.folder)
        self.set_prompts(saved_prompts(settings), prompts, default_prompt_name or settings.get("default_prompt_name"))
        self.similarity_fn_name = similarity_function_name(
            similarity_fn_name or settings.get("similarity_fn_name") or "dot"
        )
        self.max_active_dims = check_max_active_dims(
            max_active_dims if max_active_dims is not None else settings.get("max_active_dims")
        )

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
        return run_modules(modules, modules[0].tokenize(texts), record)

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
        check_batch_size(batch_size)
        if max_active_dims is None:
            max_active_dims = self.max_active_dims
        max_active_dims = check_max_active_dims(max_active_dims)
        prompt = self.resolve_prompt(prompt, prompt_name)
        if prompt:
            texts = [prompt + text for text in texts]
        sparse = scipy_sparse() if convert_to_sparse_tensor else None

        rows = [None] * len(texts)  # each text's (vocabulary ids, weights), or its dense row
        for indices, batch in in_batches(texts, batch_size, show_progress_bar):
            embeddings = self.forward(batch, task=task)["sentence_embedding"]
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
        return self.encode(sentences, **{"task": "query", **self.task_options("query", options)})

    def encode_document(self, sentences, **options):
        """encode() for documents: the "document" prompt and the Router's document route."""
        return self.encode(sentences, **{"task": "document", **self.task_options("document", options)})

    def decode(self, embeddings, top_k=None):
        """Sparse embeddings -> their (token, weight) pairs, heaviest first: a list for one vector (vocab,), a list
        of lists for (n, vocab); top_k keeps that many of each."""
        if top_k is not None and not is_positive_integer(top_k):
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        matrix, is_vector = as_sparse_matrix(embeddings)
        if matrix.shape[1] != self.get_sentence_embedding_dimension():
            raise ValueError(f"embeddings of {matrix.shape[1]} dimensions cannot be decoded by a model of "
                             f"{self.get_sentence_embedding_dimension()} (its vocabulary)")
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
    refuse_non_finite(corpus, "corpus")
    return corpus.tocsc()


def refuse_non_finite(matrix, name):
    """A ValueError naming the first rows of a csr_array holding NaN or inf (their scores have no rank)."""
    bad = ~np.isfinite(matrix.data)
    if bad.any():
        rows = np.unique(np.searchsorted(matrix.indptr, np.flatnonzero(bad), side="right") - 1)[:5].tolist()
        raise ValueError(f"{name} embeddings hold NaN or inf values, so their scores cannot be ranked: rows {rows} "
                         "(first five)")


def sparse_search(query_embeddings, corpus_embeddings, top_k=10):
    """For each query, its top_k corpus rows by dot product, as sentence_transformers.util.semantic_search returns
    them: [[{"corpus_id", "score"}, ...] per query], best first (ties by corpus_id), over an inverted index of the
    corpus. corpus_embeddings: sparse or dense (n, vocab), or inverted_index(corpus) built once beforehand."""
    from minisbert.kernels.sparse import sparse_search as search_kernel
    from minisbert.util._search import check_count, search_results

    top_k = check_count(top_k, "top_k", 1)
    queries, _ = as_sparse_matrix(query_embeddings)
    refuse_non_finite(queries, "query")
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
    if not is_positive_integer(top_k):
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
