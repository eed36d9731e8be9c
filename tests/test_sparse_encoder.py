"""SparseEncoder against sentence-transformers' SparseEncoder on tiny random SPLADE models of every MLM head
(BERT, DistilBERT, RoBERTa, XLM-RoBERTa, MPNet), max and sum pooling, log1p_relu, the legacy MLMTransformer
folder and inference-free SPLADE (a Router with SparseStaticEmbedding queries), on the hard inputs.

Bounds: values within 1e-5 of the largest value (float32 logits from different matmul orders). Non-zero sets are
equal except where the reference's value itself is below 1e-6 of the largest: a logit within float32 rounding
of 0 may land on either side of the ReLU (with sum pooling, over every token x vocabulary entry, that happens).
"""

import numpy as np
import pytest
from inputs import HARD_TEXTS
from tiny_models import build_splade

scipy_sparse = pytest.importorskip("scipy.sparse")

REFERENCE_BATCH_SIZE = 8  # the reference's (batch, seq, vocab) logits: keep them small
ZERO_BAND = 1e-6


@pytest.fixture(scope="session")
def splade(tmp_path_factory):
    """splade(**options) -> (minisbert SparseEncoder, sentence-transformers SparseEncoder), built once each."""
    from sentence_transformers import SparseEncoder as ReferenceSparseEncoder

    from minisbert import SparseEncoder

    cache = {}

    def build(**options):
        key = repr(sorted(options.items()))
        if key not in cache:
            folder = build_splade(tmp_path_factory.mktemp("splade") / "model", **options)
            cache[key] = SparseEncoder(folder), ReferenceSparseEncoder(str(folder), device="cpu")
        return cache[key]

    return build


@pytest.fixture(scope="session")
def reference_encodings():
    """The reference's dense encodings, computed once per (model, method, texts)."""
    cache = {}

    def encode(reference, method, texts, **options):
        key = (id(reference), method, tuple(texts), repr(sorted(options.items())))
        if key not in cache:
            encoded = getattr(reference, method)(texts, batch_size=REFERENCE_BATCH_SIZE, **options)
            cache[key] = encoded.to_dense().numpy()
        return cache[key]

    return encode


def assert_same_sparse(actual, expected):
    """actual (csr_array or dense), expected dense (n, vocab): same non-zero set (outside the zero band), values
    within 1e-5 of the largest."""
    actual = actual.toarray() if scipy_sparse.issparse(actual) else np.asarray(actual)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1e-30)
    differing = (actual != 0) != (expected != 0)
    assert np.all(np.abs(expected[differing]) <= ZERO_BAND * scale), "non-zero sets differ beyond the zero band"
    assert np.all(np.abs(actual[differing]) <= ZERO_BAND * scale)
    assert np.abs(actual - expected).max() <= 1e-5 * scale


SPLADE_VARIANTS = [
    {"architecture": "bert"},
    {"architecture": "distilbert"},
    {"architecture": "roberta"},
    {"architecture": "xlm-roberta"},
    {"architecture": "mpnet"},
    {"architecture": "bert", "pooling_strategy": "sum"},
    {"architecture": "bert", "activation_function": "log1p_relu"},
    {"architecture": "bert", "legacy": True},
]


@pytest.mark.parametrize("options", SPLADE_VARIANTS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_encode_matches_reference_on_hard_texts(splade, reference_encodings, options):
    model, reference = splade(**options)
    expected = reference_encodings(reference, "encode", HARD_TEXTS)
    actual = model.encode(HARD_TEXTS, batch_size=7)
    assert isinstance(actual, scipy_sparse.csr_array) and actual.dtype == np.float32
    assert_same_sparse(actual, expected)
    active = (expected != 0).mean()
    assert 0.001 < active < 0.5, f"the tiny model should be sparse but not empty, {active:.3f} active"


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batch_size_does_not_change_the_vectors(splade, reference_encodings, batch_size):
    model, reference = splade(architecture="bert")
    assert_same_sparse(model.encode(HARD_TEXTS, batch_size=batch_size),
                       reference_encodings(reference, "encode", HARD_TEXTS))


def test_dense_output_and_single_text(splade, reference_encodings):
    model, reference = splade(architecture="bert")
    expected = reference_encodings(reference, "encode", HARD_TEXTS)
    dense = model.encode(HARD_TEXTS, convert_to_sparse_tensor=False)
    assert isinstance(dense, np.ndarray) and dense.shape == expected.shape
    assert_same_sparse(dense, expected)
    single = model.encode(HARD_TEXTS[0])
    assert single.shape == (expected.shape[1],)
    assert_same_sparse(single.toarray()[None], expected[:1])
    rows = model.encode(HARD_TEXTS[:3], convert_to_tensor=False)
    assert len(rows) == 3 and all(row.shape == (expected.shape[1],) for row in rows)


def test_empty_list_gives_zero_rows(splade):
    model, _ = splade(architecture="bert")
    assert model.encode([]).shape == (0, model.get_sentence_embedding_dimension())


@pytest.mark.parametrize("max_active_dims", [1, 5, 64])
def test_max_active_dims(splade, reference_encodings, max_active_dims):
    model, reference = splade(architecture="bert")
    expected = reference_encodings(reference, "encode", HARD_TEXTS, max_active_dims=max_active_dims)
    actual = model.encode(HARD_TEXTS, max_active_dims=max_active_dims)
    assert_same_sparse(actual, expected)
    assert np.diff(actual.indptr).max() <= max_active_dims


def test_max_active_dims_saved_in_the_model(splade, reference_encodings):
    model, reference = splade(architecture="bert", max_active_dims=7)
    assert model.max_active_dims == reference.max_active_dims == 7
    assert_same_sparse(model.encode(HARD_TEXTS), reference_encodings(reference, "encode", HARD_TEXTS))


@pytest.mark.parametrize("method", ["encode_query", "encode_document", "encode"])
def test_inference_free_routes(splade, reference_encodings, method):
    model, reference = splade(architecture="bert", inference_free=True)
    assert_same_sparse(getattr(model, method)(HARD_TEXTS, batch_size=5),
                       reference_encodings(reference, method, HARD_TEXTS))


def test_query_and_document_routes_differ(splade):
    model, _ = splade(architecture="bert", inference_free=True)
    query, document = model.encode_query("the weather"), model.encode_document("the weather")
    assert query.nnz == 2  # the static route: one entry per word piece, no special tokens
    assert document.nnz > query.nnz


def test_decode_matches_reference(splade, reference_encodings):
    import torch

    # Both decode the same vectors (the reference's): encode's parity is tested above, and weights equal to 1e-5
    # may swap places in a list sorted by weight.
    model, reference = splade(architecture="bert")
    expected = reference_encodings(reference, "encode", HARD_TEXTS[:5])
    embeddings = scipy_sparse.csr_array(expected)
    for top_k in (None, 1, 10):
        actual = model.decode(embeddings, top_k=top_k)
        assert actual == reference.decode(torch.from_numpy(expected).to_sparse(), top_k=top_k)
    assert model.decode(embeddings[0], top_k=3) == actual[0][:3]
    assert model.decode(expected[1]) == reference.decode(torch.from_numpy(expected[1]))


def test_sparsity_matches_reference(splade, reference_encodings):
    import torch

    model, reference = splade(architecture="bert")
    expected = reference_encodings(reference, "encode", HARD_TEXTS)
    actual = model.sparsity(model.encode(HARD_TEXTS))
    wanted = reference.sparsity(torch.from_numpy(expected))
    assert actual["active_dims"] == pytest.approx(wanted["active_dims"], rel=1e-3)
    assert actual["sparsity_ratio"] == pytest.approx(wanted["sparsity_ratio"], rel=1e-5)


@pytest.mark.parametrize("function", ["dot", "cosine"])
def test_similarity_matches_reference(splade, reference_encodings, function):
    import torch

    model, reference = splade(architecture="bert")
    expected = reference_encodings(reference, "encode", HARD_TEXTS)
    embeddings = model.encode(HARD_TEXTS)
    model.similarity_fn_name, reference.similarity_fn_name = function, function
    try:
        wanted = reference.similarity(torch.from_numpy(expected), torch.from_numpy(expected)).numpy()
        actual = model.similarity(embeddings, embeddings)
    finally:
        model.similarity_fn_name, reference.similarity_fn_name = "dot", "dot"
    np.testing.assert_allclose(actual, wanted, rtol=1e-5, atol=1e-5 * np.abs(wanted).max())


def test_trace_shows_what_lit_each_entry(splade):
    model, _ = splade(architecture="bert")
    text = "The weather is lovely today."
    trace = model.trace(text, top_k=8)
    vector = model.encode(text, convert_to_sparse_tensor=False)
    assert trace.vocabulary == [token for token, _ in model.decode(vector, top_k=8)]
    np.testing.assert_allclose(trace.weights, np.sort(vector)[::-1][:8], rtol=1e-6)
    # max pooling: each entry's weight is its largest per-token contribution
    np.testing.assert_allclose(trace.token_weights.max(axis=0), trace.weights, rtol=1e-5)
    assert trace.tokens[0] == "[CLS]" and len(trace.lit_by) == 8 and set(trace.lit_by) <= set(trace.tokens)


def test_trace_of_a_static_query(splade):
    model, _ = splade(architecture="bert", inference_free=True)
    trace = model.trace("weather weather lovely", task="query")
    assert trace.tokens == ["weather", "weather", "lovely"]
    assert sorted(trace.vocabulary) == ["lovely", "weather"]
    assert set(trace.lit_by) == {"weather", "lovely"}


def test_sparse_search_matches_dense_search(splade):
    from minisbert import util
    from minisbert.families.sparse_encoder import sparse_search

    model, _ = splade(architecture="bert")
    corpus = model.encode_document(HARD_TEXTS)
    queries = model.encode_query(HARD_TEXTS[:6])
    found = sparse_search(queries, corpus, top_k=5)
    wanted = util.semantic_search(queries.toarray(), corpus.toarray(), top_k=5, score_function=util.dot_score)
    for got, want in zip(found, wanted):
        assert [hit["corpus_id"] for hit in got] == [hit["corpus_id"] for hit in want]
        np.testing.assert_allclose([hit["score"] for hit in got], [hit["score"] for hit in want], rtol=1e-5)


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_max_active_dims_must_be_positive(splade, value):
    model, _ = splade(architecture="bert")
    with pytest.raises(ValueError, match="max_active_dims must be a positive integer"):
        model.encode(["a"], max_active_dims=value)


@pytest.mark.parametrize("value", [0, -1])
def test_decode_top_k_must_be_positive(splade, value):
    model, _ = splade(architecture="bert")
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        model.decode(model.encode(["a"]), top_k=value)


def test_a_bi_encoder_is_refused(tiny_model):
    from minisbert import SparseEncoder
    from minisbert.files.loading import ModelLoadError

    folder, _, _ = tiny_model("bert")
    with pytest.raises(ModelLoadError, match="is a SentenceTransformer model.*not a SparseEncoder"):
        SparseEncoder(folder)


@pytest.mark.parametrize("content, message", [
    ("[]", "1_SpladePooling/config.json: expected a JSON object, found a list"),
    ("null", "1_SpladePooling/config.json: holds null"),
    (None, "missing model file: .*1_SpladePooling/config.json"),
    ('{"pooling_strategy": "max", "embedding_dimension": -1}',
     "1_SpladePooling/config.json: 'embedding_dimension' must be a whole number from 1 to 16777216, not -1"),
    ('{"pooling_strategy": "max", "embedding_dimension": "30522"}', "'embedding_dimension' must be a whole number"),
])
def test_a_bad_splade_pooling_config_is_refused(splade, tmp_path, content, message):
    import shutil

    from minisbert import SparseEncoder
    from minisbert.files.loading import ModelLoadError

    model, _ = splade()
    copy = tmp_path / "model"
    shutil.copytree(model.folder, copy)
    (copy / "1_SpladePooling" / "config.json").unlink()
    if content is not None:
        (copy / "1_SpladePooling" / "config.json").write_text(content)
    with pytest.raises(ModelLoadError, match=message):
        SparseEncoder(copy)


def test_config_json_holding_null_is_refused(splade, tmp_path):
    import shutil

    from minisbert import SparseEncoder
    from minisbert.files.loading import ModelLoadError

    model, _ = splade()
    shutil.copytree(model.folder, tmp_path / "model")
    (tmp_path / "model" / "config.json").write_text("null")
    with pytest.raises(ModelLoadError, match="config.json: holds null"):
        SparseEncoder(tmp_path / "model")


def test_an_unknown_task_names_the_routes(splade):
    model, _ = splade(architecture="bert", inference_free=True)
    with pytest.raises(ValueError, match="no route for task 'passage'.*query.*document"):
        model.encode(["a"], task="passage")


# ------------------------------------------------------------------------------------------------ command line


def test_cli_encode_sparse_prints_top_tokens_and_saves_npz(splade, tmp_path):
    import json
    import subprocess
    import sys

    model, _ = splade(architecture="bert", inference_free=True)
    texts = ["The weather is lovely today.", "He drove to the stadium."]
    command = [sys.executable, "-m", "minisbert", "encode", "--sparse", "--model", str(model.folder), "-k", "4"]
    result = subprocess.run([*command, *texts], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["sentence"] for line in lines] == texts
    for line, expected in zip(lines, model.decode(model.encode_document(texts), top_k=4)):
        assert [token for token, _ in line["tokens"]] == [token for token, _ in expected]
        np.testing.assert_allclose([w for _, w in line["tokens"]], [w for _, w in expected], atol=1e-5)
    result = subprocess.run([*command, "--query", texts[1]], capture_output=True, text=True, timeout=300)
    assert [token for token, _ in json.loads(result.stdout)["tokens"]] == [
        token for token, _ in model.decode(model.encode_query(texts[1]), top_k=4)
    ]
    output = tmp_path / "vectors.npz"
    result = subprocess.run([*command, "--output", str(output), *texts], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    saved = scipy_sparse.load_npz(output)
    assert_same_sparse(saved, model.encode_document(texts).toarray())


def test_trace_plot(splade, tmp_path):
    from minisbert.inspection import plots

    model, _ = splade(architecture="bert")
    path = plots.plot_splade_trace(model.trace("The weather is lovely today.", top_k=12), tmp_path / "splade.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_a_fill_mask_module_without_its_head_names_the_missing_tensors(tiny_model, tmp_path):
    import json
    import shutil

    from minisbert import SparseEncoder
    from minisbert.architectures.checkpoint import CheckpointError

    folder, _, _ = tiny_model("bert")
    broken = tmp_path / "no-head"
    shutil.copytree(folder, broken)
    (broken / "config_sentence_transformers.json").write_text(json.dumps({"model_type": "SparseEncoder"}))
    (broken / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.sparse_encoder.models.SpladePooling"},
    ]))
    with pytest.raises(CheckpointError, match="missing tensor 'cls.predictions.transform.dense.weight'"):
        SparseEncoder(broken)


def test_minisbert_imports_without_scipy_and_names_the_extra(splade):
    """scipy is the optional extra 'sparse': import minisbert and dense output work without it; sparse output says
    what to install."""
    import subprocess
    import sys

    model, _ = splade(architecture="bert")
    check = f"""
import sys
sys.modules["scipy"] = None  # as if scipy were not installed
import minisbert
model = minisbert.SparseEncoder({str(model.folder)!r})
print(model.encode(["a text"], convert_to_sparse_tensor=False).shape)
try:
    model.encode(["a text"])
except ImportError as error:
    print("ImportError:", error)
"""
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"(1, {model.get_sentence_embedding_dimension()})" in result.stdout
    assert "ImportError: sparse embeddings need scipy: pip install 'minisbert[sparse]'" in result.stdout
