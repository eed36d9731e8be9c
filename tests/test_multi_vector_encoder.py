"""MultiVectorEncoder against sentence-transformers' MultiVectorEncoder on tiny random ColBERT models: BERT,
RoBERTa and DistilBERT encoders; query expansion fixed and min, attended or not, or none; the punctuation skiplist;
prompts; with and without Normalize. Hard inputs at several batch sizes.

Bounds: each text's scored tokens equal in number; vectors within 1e-5 of the largest absolute value (1e-6 after
Normalize would hold too, but the unnormalized variant shares the bound); MaxSim scores within 1e-5 relative.
"""

import json
import re
import shutil

import numpy as np
import pytest
from inputs import HARD_TEXTS
from tiny_models import build_colbert


@pytest.fixture(scope="session")
def colbert(tmp_path_factory):
    """colbert(**options) -> (minisbert MultiVectorEncoder, sentence-transformers MultiVectorEncoder)."""
    from sentence_transformers import MultiVectorEncoder as ReferenceMultiVectorEncoder

    from minisbert import MultiVectorEncoder

    cache = {}

    def build(**options):
        key = repr(sorted(options.items()))
        if key not in cache:
            folder = build_colbert(tmp_path_factory.mktemp("colbert") / "model", **options)
            cache[key] = MultiVectorEncoder(folder), ReferenceMultiVectorEncoder(str(folder), device="cpu")
        return cache[key]

    return build


def assert_same_token_vectors(actual, expected):
    assert len(actual) == len(expected)
    for index, (mine, theirs) in enumerate(zip(actual, expected)):
        theirs = theirs.numpy() if hasattr(theirs, "numpy") else theirs
        assert mine.shape == theirs.shape, f"text {index}: {mine.shape} scored tokens vs {theirs.shape}"
        assert mine.dtype == np.float32
        if theirs.size:
            assert np.abs(mine - theirs).max() <= 1e-5 * max(np.abs(theirs).max(), 1e-30), f"text {index}"


COLBERT_VARIANTS = [
    {},
    {"attend": True},
    {"expansion": "min", "query_length": 20},
    {"expansion": None},
    {"architecture": "roberta"},
    {"architecture": "distilbert"},
    {"skiplist": False, "normalize": False},
    {"prompts": {"query": "[unused0] ", "document": "[unused1] "}},
]


@pytest.mark.parametrize(
    "options", COLBERT_VARIANTS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "default"
)
@pytest.mark.parametrize("method", ["encode_query", "encode_document", "encode"])
def test_token_vectors_match_reference(colbert, options, method):
    model, reference = colbert(**options)
    actual = getattr(model, method)(HARD_TEXTS, batch_size=7)
    expected = getattr(reference, method)(HARD_TEXTS, batch_size=7, convert_to_numpy=True)
    assert_same_token_vectors(actual, expected)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batch_size_does_not_change_the_vectors(colbert, batch_size):
    model, reference = colbert()
    for method in ("encode_query", "encode_document"):
        expected = getattr(reference, method)(HARD_TEXTS, batch_size=16, convert_to_numpy=True)
        assert_same_token_vectors(getattr(model, method)(HARD_TEXTS, batch_size=batch_size), expected)


def test_query_expansion_scores_a_fixed_number_of_tokens(colbert):
    model, _ = colbert()
    queries = model.encode_query(["a", "What is the capital of France?", "word " * 100])
    assert [len(query) for query in queries] == [12, 12, 12]
    documents = model.encode_document(["a, b. c!", "word " * 100])
    assert len(documents[0]) == 5  # [CLS] a b c [SEP]: the punctuation is skipped
    assert len(documents[1]) == 40


def test_single_text_and_normalize_option(colbert):
    model, reference = colbert(normalize=False)
    single = model.encode_document("The weather is lovely today.", normalize_embeddings=True)
    expected = reference.encode_document("The weather is lovely today.", normalize_embeddings=True,
                                         convert_to_numpy=True)
    assert_same_token_vectors([single], [expected])
    np.testing.assert_allclose(np.linalg.norm(single, axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize("function", ["maxsim", "meanmaxsim"])
def test_similarity_matches_reference(colbert, function):
    import torch

    model, reference = colbert(similarity_fn_name=function)
    assert model.similarity_fn_name == function
    queries = model.encode_query(HARD_TEXTS[:8])
    documents = model.encode_document(HARD_TEXTS)
    expected = reference.similarity([torch.from_numpy(q) for q in queries], [torch.from_numpy(d) for d in documents])
    np.testing.assert_allclose(model.similarity(queries, documents), expected.numpy(), rtol=1e-5)
    pairs = reference.similarity_pairwise(
        [torch.from_numpy(q) for q in queries], [torch.from_numpy(d) for d in documents[:8]]
    )
    np.testing.assert_allclose(model.similarity_pairwise(queries, documents[:8]), pairs.numpy(), rtol=1e-5)


def test_trace_names_each_query_tokens_match(colbert):
    model, _ = colbert()
    query, document = "What is the capital of France?", "Paris is the capital and most populous city of France."
    trace = model.trace(query, document)
    queries, documents = model.encode_query([query]), model.encode_document([document])
    assert len(trace.query_tokens) == len(queries[0]) and len(trace.document_tokens) == len(documents[0])
    assert trace.query_tokens[:3] == ["[CLS]", "what", "is"] and trace.query_tokens[-1] == "[MASK]"
    assert "," not in trace.document_tokens and trace.document_tokens[-1] == "[SEP]"
    assert trace.score == pytest.approx(float(model.similarity(queries, documents)[0, 0]), rel=1e-6)
    assert sum(similarity for _, _, similarity in trace.matches) == pytest.approx(trace.score, rel=1e-5)
    assert ("capital", "capital") in [(q, d) for q, d, _ in trace.matches]


def test_multi_vector_search_ranks_by_maxsim(colbert):
    from minisbert import util

    model, _ = colbert()
    queries, documents = model.encode_query(HARD_TEXTS[:6]), model.encode_document(HARD_TEXTS)
    hits = util.multi_vector_search(queries, documents, top_k=5, corpus_chunk_size=7)
    scores = util.maxsim(queries, documents)
    for row, query_hits in zip(scores, hits):
        order = np.argsort(-row, kind="stable")[:5]
        assert [hit["corpus_id"] for hit in query_hits] == order.tolist()
        np.testing.assert_allclose([hit["score"] for hit in query_hits], row[order], rtol=1e-6)


# ------------------------------------------------------------------------------------------------ bad input


def test_a_bi_encoder_is_refused(tiny_model):
    from minisbert import MultiVectorEncoder
    from minisbert.files.loading import ModelLoadError

    folder, _, _ = tiny_model("bert")
    with pytest.raises(ModelLoadError, match="is a SentenceTransformer model.*not a MultiVectorEncoder"):
        MultiVectorEncoder(folder)


def test_a_colbert_model_is_refused_by_the_other_families(colbert):
    from minisbert import SentenceTransformer, SparseEncoder
    from minisbert.files.loading import ModelLoadError

    model, _ = colbert()
    with pytest.raises(ModelLoadError, match="is a MultiVectorEncoder model.*not a SparseEncoder"):
        SparseEncoder(model.folder)
    with pytest.raises(ModelLoadError, match="is a MultiVectorEncoder model.*not a SentenceTransformer"):
        SentenceTransformer(model.folder)


def model_copy_with(folder, tmp_path, relative_path, change):
    """A copy of a model folder with one JSON file changed: ``change`` maps its JSON to the new (None: deleted)."""
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    path = copy / relative_path
    config = change(json.loads(path.read_text()))
    if config is None:
        path.unlink()
    else:
        path.write_text(config if isinstance(config, str) else json.dumps(config))
    return copy


BAD_COLBERT_SETTINGS = [  # (file, change, the message naming the file, key and value)
    ("2_MultiVectorMask/config.json", {"skiplist_words": 5}, "'skiplist_words' must be a list of strings, not 5"),
    ("2_MultiVectorMask/config.json", {"skiplist_words": [1, 2]}, "'skiplist_words' must be a list of strings, not [1, 2]"),
    ("2_MultiVectorMask/config.json", {"keep_only_token_ids": "abc"}, "'keep_only_token_ids' must be a list of token ids, not 'abc'"),
    ("2_MultiVectorMask/config.json", {"keep_only_token_ids": [-1]}, "'keep_only_token_ids' must be token ids from 0 to"),
    ("2_MultiVectorMask/config.json", {"keep_only_token_ids": [10**9]}, "not 1000000000"),
    ("sentence_bert_config.json", {"document_length": "x"}, "'document_length' must be a whole number from 1"),
    ("sentence_bert_config.json", {"query_length": 0}, "'query_length' must be a whole number from 1"),
    ("config_sentence_transformers.json", {"document_length": -1}, "'document_length' must be a whole number from 1"),
    ("config_sentence_transformers.json", {"skiplist_words": "abc"}, "'skiplist_words' must be a list of strings"),
    ("config_sentence_transformers.json", {"prompts": ["a"]}, "'prompts' must be an object of strings (or null), not ['a']"),
]


@pytest.mark.parametrize("relative_path, changes, message", BAD_COLBERT_SETTINGS, ids=lambda v: str(v)[:40])
def test_bad_colbert_settings_are_refused_naming_file_key_and_value(colbert, tmp_path, relative_path, changes, message):
    from minisbert import MultiVectorEncoder
    from minisbert.files.loading import ConfigError

    model, _ = colbert()
    copy = model_copy_with(model.folder, tmp_path, relative_path, lambda config: {**config, **changes})
    with pytest.raises(ConfigError, match=re.escape(relative_path) + ".*" + re.escape(message)):
        MultiVectorEncoder(copy)


@pytest.mark.parametrize("top_k", [0, -2])
def test_search_top_k_must_be_positive(colbert, top_k):
    from minisbert import util

    model, _ = colbert()
    vectors = model.encode_document(["a", "b"])
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        util.multi_vector_search(vectors, vectors, top_k=top_k)


def test_unknown_output_value_is_refused(colbert):
    model, _ = colbert()
    with pytest.raises(ValueError, match="output_value must be 'token_embeddings'"):
        model.encode(["a"], output_value="sentence_embedding")


def test_trace_plot(colbert, tmp_path):
    from minisbert.inspection import plots

    model, _ = colbert()
    trace = model.trace("What is the capital of France?", "Paris is the capital and most populous city of France.")
    data = plots.plot_maxsim_trace(trace, tmp_path / "maxsim.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_sparse_and_multi_vector_encoders_import_no_torch(colbert, tmp_path_factory):
    """Both new families, loaded and run in a fresh interpreter, pull in no torch (tests/test_torch_free.py's
    check, for the modules the default model does not reach)."""
    import subprocess
    import sys

    from tiny_models import build_splade

    splade_folder = build_splade(tmp_path_factory.mktemp("torch-free") / "splade", inference_free=True)
    model, _ = colbert()
    check = f"""
import sys
from minisbert import MultiVectorEncoder, SparseEncoder, util
from minisbert.inspection import plots
sparse = SparseEncoder({str(splade_folder)!r})
vectors = sparse.encode_document(["a sentence", "another one"])
sparse.similarity(sparse.encode_query(["a query"]), vectors)
sparse.decode(vectors, top_k=3)
colbert = MultiVectorEncoder({str(model.folder)!r})
colbert.similarity(colbert.encode_query(["a query"]), colbert.encode_document(["a sentence"]))
colbert.trace("a query", "a sentence")
heavy = sorted({{name.split(".")[0] for name in sys.modules}} & {{"torch", "transformers", "sentence_transformers"}})
print("imported:", heavy)
"""
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "imported: []" in result.stdout


@pytest.mark.parametrize("options", [{}, {"attend": True, "skiplist_words": ["!", "?"]}], ids=["default", "attend"])
def test_pylate_v3_folders_load_as_sentence_transformers_loads_them(tmp_path, options):
    from sentence_transformers import MultiVectorEncoder as ReferenceMultiVectorEncoder
    from tiny_models import build_pylate_colbert

    from minisbert import MultiVectorEncoder

    folder = build_pylate_colbert(tmp_path / "pylate", **options)
    model, reference = MultiVectorEncoder(folder), ReferenceMultiVectorEncoder(str(folder), device="cpu")
    assert model.prompts["query"] == reference.prompts["query"] == "[unused0]"
    assert model.transformer.tokenizer.tokens("[unused0]a")[1] == "[unused0]"  # one token, as PyLate inserted it
    for method in ("encode_query", "encode_document"):
        expected = getattr(reference, method)(HARD_TEXTS, batch_size=16, convert_to_numpy=True)
        assert_same_token_vectors(getattr(model, method)(HARD_TEXTS, batch_size=7), expected)
    assert len(model.encode_query("a")) == 16


def test_stanford_colbert_folders_load_as_sentence_transformers_loads_them(tmp_path):
    from sentence_transformers import MultiVectorEncoder as ReferenceMultiVectorEncoder
    from tiny_models import build_stanford_colbert

    from minisbert import MultiVectorEncoder

    folder = build_stanford_colbert(tmp_path / "stanford")
    model, reference = MultiVectorEncoder(folder), ReferenceMultiVectorEncoder(str(folder), device="cpu")
    assert model.prompts["query"] == reference.prompts["query"] == "[unused0] "
    assert model.get_sentence_embedding_dimension() == 16
    for method in ("encode_query", "encode_document"):
        expected = getattr(reference, method)(HARD_TEXTS, batch_size=16, convert_to_numpy=True)
        assert_same_token_vectors(getattr(model, method)(HARD_TEXTS, batch_size=7), expected)
    assert len(model.encode_query("a")) == 12
