"""encode() gives sentence-transformers' numbers: same inputs, same options, compared element-wise.

Bounds: 1e-5 on un-normalised outputs, 1e-6 on normalised ones (all-MiniLM-L6-v2 ends with Normalize).
"""

import numpy as np
import pytest

from inputs import FEW_HARD_TEXTS, HARD_TEXTS, corpus_sentences


def max_difference(actual, expected):
    return float(np.abs(np.asarray(actual) - np.asarray(expected)).max())


@pytest.fixture(scope="module")
def reference_embeddings(reference_model):
    return reference_model.encode(HARD_TEXTS, batch_size=32)


def test_hard_inputs_match_reference(model, reference_embeddings):
    assert len(HARD_TEXTS) >= 50
    actual = model.encode(HARD_TEXTS, batch_size=32)
    assert actual.shape == reference_embeddings.shape == (len(HARD_TEXTS), 384)
    assert max_difference(actual, reference_embeddings) <= 1e-6


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_batch_size_does_not_change_embeddings(model, reference_embeddings, batch_size):
    actual = model.encode(HARD_TEXTS, batch_size=batch_size)
    assert max_difference(actual, reference_embeddings) <= 1e-6


def test_corpus_sentences_match_reference(model, reference_model):
    sentences = corpus_sentences(200)
    expected = reference_model.encode(sentences, batch_size=32)
    assert max_difference(model.encode(sentences, batch_size=32), expected) <= 1e-6


def test_long_texts_are_truncated_like_reference(model, reference_model):
    long_texts = [" ".join(corpus_sentences(40, start=i * 40)) for i in range(3)]
    assert all(len(model.tokenizer.tokens(text)) == model.max_seq_length for text in long_texts)
    expected = reference_model.encode(long_texts)
    assert max_difference(model.encode(long_texts), expected) <= 1e-6


def test_single_string_gives_a_vector(model, reference_model):
    actual = model.encode("A single sentence.")
    expected = reference_model.encode("A single sentence.")
    assert actual.shape == expected.shape == (384,)
    assert max_difference(actual, expected) <= 1e-6


def test_token_embeddings_match_reference(model, reference_model):
    texts = FEW_HARD_TEXTS
    expected = reference_model.encode(texts, output_value="token_embeddings")
    actual = model.encode(texts, output_value="token_embeddings")
    assert [a.shape for a in actual] == [tuple(e.shape) for e in expected]
    for a, e in zip(actual, expected):
        assert max_difference(a, e.numpy()) <= 1e-5  # un-normalised hidden states


def test_output_value_none_matches_reference(model, reference_model):
    texts = ["first text", "the second, longer text of the batch"]
    expected = reference_model.encode(texts, output_value=None)
    actual = model.encode(texts, output_value=None)
    for a, e in zip(actual, expected):
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            np.testing.assert_array_equal(a[name], e[name].numpy())
        # Rows at padding positions are never used (pooling masks them) and differ between attention
        # implementations; the real tokens' rows must match.
        real = a["attention_mask"] == 1
        assert max_difference(a["token_embeddings"][real], e["token_embeddings"].numpy()[real]) <= 1e-5
        assert max_difference(a["sentence_embedding"], e["sentence_embedding"].numpy()) <= 1e-6


def test_convert_to_numpy_false_gives_a_list_of_vectors(model, reference_model):
    texts = ["one", "two words"]
    expected = reference_model.encode(texts, convert_to_numpy=False)
    actual = model.encode(texts, convert_to_numpy=False)
    assert isinstance(actual, list) and len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert max_difference(a, e.numpy()) <= 1e-6


def test_prompt_matches_reference(model, reference_model):
    texts = ["What is the capital of France?", "Paris"]
    expected = reference_model.encode(texts, prompt="query: ")
    assert max_difference(model.encode(texts, prompt="query: "), expected) <= 1e-6


def test_prompt_name_matches_reference(model, reference_model):
    texts = ["What is the capital of France?"]
    expected = reference_model.encode(texts, prompt_name="query")
    assert max_difference(model.encode(texts, prompt_name="query"), expected) <= 1e-6


QUERIES = ["What is the capital of France?", "how do I bake bread"]
DOCUMENTS = ["Paris is the capital and largest city of France.", "Bread is made of flour, water, salt and yeast."]


def test_encode_query_and_encode_document_match_reference(model, reference_model):
    assert max_difference(model.encode_query(QUERIES), reference_model.encode_query(QUERIES)) <= 1e-6
    assert max_difference(model.encode_document(DOCUMENTS), reference_model.encode_document(DOCUMENTS)) <= 1e-6


@pytest.fixture(scope="module")
def prompted_models(default_model_folder):
    """(minisbert, sentence-transformers) models with query and document prompts (all-MiniLM-L6-v2's are empty)."""
    from sentence_transformers import SentenceTransformer as ReferenceSentenceTransformer

    from minisbert import SentenceTransformer

    prompts = {"query": "query: ", "document": "passage: "}
    return (SentenceTransformer(default_model_folder, prompts=prompts),
            ReferenceSentenceTransformer(str(default_model_folder), device="cpu", prompts=prompts))


@pytest.mark.parametrize("options", [{}, {"prompt_name": None}, {"prompt": "q: "}, {"prompt_name": "document"}],
                         ids=["task-prompt", "prompt_name-None", "prompt", "prompt_name"])
def test_encode_query_and_encode_document_choose_prompts_like_reference(prompted_models, options):
    """Each method puts its task's prompt in front unless the call names a prompt, as sentence-transformers does."""
    model, reference = prompted_models
    queries, documents = model.encode_query(QUERIES, **options), model.encode_document(DOCUMENTS, **options)
    assert max_difference(queries, reference.encode_query(QUERIES, **options)) <= 1e-6
    assert max_difference(documents, reference.encode_document(DOCUMENTS, **options)) <= 1e-6
    if not options:  # the prompts are in use: without them the embeddings differ
        assert max_difference(queries, model.encode(QUERIES)) > 1e-3
        assert max_difference(documents, model.encode(DOCUMENTS)) > 1e-3


@pytest.mark.parametrize("similarity_fn_name", ["cosine", "dot", "euclidean", "manhattan"])
def test_similarity_and_similarity_pairwise_match_reference(default_model_folder, reference_model, similarity_fn_name):
    from minisbert import SentenceTransformer

    model = SentenceTransformer(default_model_folder, similarity_fn_name=similarity_fn_name)
    queries = reference_model.encode(QUERIES)
    documents = reference_model.encode(DOCUMENTS) * 3  # not unit length: dot and cosine differ
    previous = reference_model.similarity_fn_name
    reference_model.similarity_fn_name = similarity_fn_name
    try:
        expected_pairwise = reference_model.similarity_pairwise(queries, documents).numpy()
        expected = reference_model.similarity(queries, documents).numpy()
    finally:
        reference_model.similarity_fn_name = previous
    actual_pairwise = model.similarity_pairwise(queries, documents)
    assert actual_pairwise.shape == expected_pairwise.shape == (len(QUERIES),)
    np.testing.assert_allclose(actual_pairwise, expected_pairwise, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.similarity(queries, documents), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.diag(model.similarity(queries, documents)), actual_pairwise, rtol=1e-5, atol=1e-6)


def test_normalize_embeddings_matches_reference(model, reference_model):
    texts = ["normalised twice is still unit length", "🙂"]
    expected = reference_model.encode(texts, normalize_embeddings=True)
    assert max_difference(model.encode(texts, normalize_embeddings=True), expected) <= 1e-6


def test_truncate_dim_matches_reference(model, reference_model):
    texts = ["a text", "another text"]
    expected = reference_model.encode(texts, truncate_dim=64)
    actual = model.encode(texts, truncate_dim=64)
    assert actual.shape == (2, 64)
    assert max_difference(actual, expected) <= 1e-6


def test_tokenization_matches_reference(model, reference_model):
    texts = HARD_TEXTS[:30]
    expected = reference_model.tokenize(texts)
    actual = model.tokenize(texts)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(actual[name], expected[name].numpy())


def test_model_settings_match_reference(model, reference_model):
    assert model.max_seq_length == reference_model.max_seq_length
    assert model.get_sentence_embedding_dimension() == reference_model.get_embedding_dimension()
    assert model.similarity_fn_name == reference_model.similarity_fn_name
    assert model.prompts == reference_model.prompts


def test_max_seq_length_set_after_loading_truncates_as_the_reference(default_model_folder):
    from sentence_transformers import SentenceTransformer as ReferenceSentenceTransformer

    from minisbert import SentenceTransformer

    model = SentenceTransformer(default_model_folder)  # not the shared fixtures: the setting stays on the model
    reference = ReferenceSentenceTransformer(str(default_model_folder), device="cpu")
    model.max_seq_length, reference.max_seq_length = np.int64(16), 16  # a NumPy integer taken as an int
    texts = ["word " * 50, "a short text", HARD_TEXTS[0]]
    assert model.tokenize(texts)["input_ids"].shape[1] == 16
    assert max_difference(model.encode(texts), reference.encode(texts)) <= 1e-6
    with pytest.raises(ValueError, match="max_seq_length must be a positive whole number, got 0"):
        model.max_seq_length = 0


def test_similarity_fn_name_set_after_loading_is_used_as_by_the_reference(model, default_model_folder):
    from sentence_transformers import SentenceTransformer as ReferenceSentenceTransformer

    from minisbert import SentenceTransformer

    fresh = SentenceTransformer(default_model_folder)  # not the shared fixtures: the setting stays on the model
    reference = ReferenceSentenceTransformer(str(default_model_folder), device="cpu")
    embeddings = model.encode(HARD_TEXTS[:4])
    for name in ("dot", "euclidean"):
        fresh.similarity_fn_name = reference.similarity_fn_name = name
        assert fresh.similarity_fn_name == name
        expected = reference.similarity(embeddings, embeddings).numpy()
        assert max_difference(fresh.similarity(embeddings, embeddings), expected) <= 1e-5
    with pytest.raises(ValueError, match="unknown similarity function 'bogus'"):
        fresh.similarity_fn_name = "bogus"


def test_plain_transformers_folder_gets_mean_pooling_like_reference(default_model_folder, tmp_path):
    """Without modules.json, sentence-transformers wraps the model in mean pooling (no Normalize), with the
    tokenizer's model_max_length (512 here) as the limit."""
    import shutil

    from sentence_transformers import SentenceTransformer as ReferenceSentenceTransformer

    from minisbert import SentenceTransformer

    folder = tmp_path / "plain"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(default_model_folder / name, folder / name)
    (folder / "model.safetensors").symlink_to(default_model_folder / "model.safetensors")
    texts = ["a plain transformers folder", "Long text: " + "word " * 600]
    reference = ReferenceSentenceTransformer(str(folder), device="cpu")
    model = SentenceTransformer(folder)
    assert model.max_seq_length == reference.max_seq_length == 512
    assert max_difference(model.encode(texts), reference.encode(texts)) <= 1e-5  # not normalised


def test_progress_bar_does_not_change_the_result(model, capsys):
    texts = ["with a progress bar", "and another text"]
    with_bar = model.encode(texts, show_progress_bar=True, batch_size=1)
    assert "Batches" in capsys.readouterr().err
    np.testing.assert_array_equal(with_bar, model.encode(texts, batch_size=1))
