"""minisbert.CrossEncoder against sentence_transformers.CrossEncoder on tiny random *ForSequenceClassification
models of every head (tests/tiny_models.build_cross_encoder), one and three labels: the pair tokenization,
logits and scores on hard pairs (empty, many scripts, emoji, long enough that longest-first truncation cuts one
or both texts) at several batch sizes, the activation each picks, rank's order, and clear errors for bad input.

Bounds: 1e-5 relative on logits and scores (float32 all along; measured differences are below 1e-6).
"""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from inputs import HARD_TEXTS
from sentence_transformers import CrossEncoder as ReferenceCrossEncoder
from tiny_models import CROSS_ENCODER_ARCHITECTURES, max_relative_difference

from minisbert import CrossEncoder
from minisbert.files.loading import ModelLoadError

LONG_QUERY = "Long query: " + "how do rerankers truncate a pair of long texts " * 30
LONG_DOCUMENT = "word " * 400
PAIRS = list(zip(HARD_TEXTS, HARD_TEXTS[7:] + HARD_TEXTS[:7])) + [
    (LONG_QUERY, LONG_DOCUMENT),  # both truncated, the longer first
    (LONG_QUERY, ""),
    ("", LONG_DOCUMENT),
    ("a short query", LONG_DOCUMENT),
    ("", ""),
    ("🤗", "emoji 🚀👍🏽 and 👨‍👩‍👧‍👦"),
]
QUERY = "What is the capital of France?"
# Repeated documents score exactly alike: rank must keep them in document order.
DOCUMENTS = HARD_TEXTS[:20] + [HARD_TEXTS[3], "Paris is the capital of France.", HARD_TEXTS[0], ""]
# Without repeats, nor texts all tokenizers read alike ("", " ", "\t\n"): their scores differ by noise only.
DISTINCT_DOCUMENTS = list({" ".join(document.split()): document for document in DOCUMENTS}.values())
LABELS = (1, 3)


def identity(scores):
    return scores


@pytest.fixture(params=CROSS_ENCODER_ARCHITECTURES)
def architecture(request):
    return request.param


@pytest.mark.parametrize("num_labels", LABELS)
def test_pair_tokenization_matches_reference(tiny_cross_encoder, architecture, num_labels):
    _, model, reference = tiny_cross_encoder(architecture, num_labels)
    actual = model.tokenizer(PAIRS)
    expected = reference.preprocess(PAIRS)
    assert model.max_seq_length == reference.max_seq_length
    assert actual["input_ids"].shape[1] == model.max_seq_length  # the long pairs hit the limit
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        if name in expected:  # RoBERTa-like tokenizers give none: the model then uses zeros, as minisbert's
            np.testing.assert_array_equal(actual[name], expected[name].numpy(), err_msg=name)
        else:
            assert not actual[name].any()


@pytest.mark.parametrize("num_labels", LABELS)
def test_logits_match_reference(tiny_cross_encoder, architecture, num_labels):
    _, model, reference = tiny_cross_encoder(architecture, num_labels)
    expected = reference.predict(PAIRS, activation_fn=torch.nn.Identity())
    actual = model.predict(PAIRS, activation_fn=identity)
    assert actual.shape == expected.shape == ((len(PAIRS),) if num_labels == 1 else (len(PAIRS), num_labels))
    assert actual.dtype == np.float32
    assert max_relative_difference(actual, expected) <= 1e-5


@pytest.mark.parametrize("num_labels", LABELS)
def test_default_scores_match_reference_at_every_batch_size(tiny_cross_encoder, architecture, num_labels):
    _, model, reference = tiny_cross_encoder(architecture, num_labels)
    expected = reference.predict(PAIRS)
    for batch_size in (1, 5, 32, 100):
        assert max_relative_difference(model.predict(PAIRS, batch_size=batch_size), expected) <= 1e-5, batch_size


def test_left_padded_tokenizer_gives_the_reference_logits(tiny_cross_encoder, architecture, tmp_path):
    # transformers' heads read the first column, padding when the tokenizer pads on the left: minisbert
    # then computes that padding token's vector too, as transformers does
    folder, _, _ = tiny_cross_encoder(architecture)
    left_padded = tmp_path / architecture
    shutil.copytree(folder, left_padded)
    tokenizer_config = left_padded / "tokenizer_config.json"
    tokenizer_config.write_text(json.dumps({**json.loads(tokenizer_config.read_text()), "padding_side": "left"}))
    reference = ReferenceCrossEncoder(str(left_padded), device="cpu")
    assert reference.tokenizer.padding_side == "left"
    expected = reference.predict(PAIRS, activation_fn=torch.nn.Identity())
    actual = CrossEncoder(left_padded).predict(PAIRS, activation_fn=identity)
    assert max_relative_difference(actual, expected) <= 1e-5


def test_default_activation_is_sigmoid_for_one_label_identity_for_several(tiny_cross_encoder):
    _, one, _ = tiny_cross_encoder("bert", 1)
    _, three, _ = tiny_cross_encoder("bert", 3)
    logits = one.predict(PAIRS[:5], activation_fn=identity)
    np.testing.assert_allclose(one.predict(PAIRS[:5]), 1 / (1 + np.exp(-logits)), rtol=1e-6)
    np.testing.assert_array_equal(three.predict(PAIRS[:5]), three.predict(PAIRS[:5], activation_fn=identity))


def test_apply_softmax_matches_reference(tiny_cross_encoder):
    _, model, reference = tiny_cross_encoder("roberta", 3)
    expected = reference.predict(PAIRS, apply_softmax=True)
    actual = model.predict(PAIRS, apply_softmax=True)
    np.testing.assert_allclose(actual.sum(axis=1), 1, rtol=1e-6)
    assert max_relative_difference(actual, expected) <= 1e-5
    # one label: softmax is not applied (it would make every score 1)
    _, one, reference_one = tiny_cross_encoder("roberta", 1)
    assert max_relative_difference(one.predict(PAIRS, apply_softmax=True), reference_one.predict(PAIRS)) <= 1e-5


@pytest.mark.parametrize("num_labels", LABELS)
def test_custom_activation_matches_reference(tiny_cross_encoder, num_labels):
    _, model, reference = tiny_cross_encoder("mpnet", num_labels)
    expected = reference.predict(PAIRS, activation_fn=torch.nn.Tanh())
    actual = model.predict(PAIRS, activation_fn=np.tanh)
    assert max_relative_difference(actual, expected) <= 1e-5


@pytest.mark.parametrize("legacy", [False, True], ids=["saved", "legacy-config"])
def test_saved_activation_is_used(tiny_cross_encoder, legacy):
    # CrossEncoder.save writes activation_fn to config_sentence_transformers.json; older versions wrote
    # sbert_ce_default_activation_function into config.json. Identity here instead of the default sigmoid.
    folder, model, reference = tiny_cross_encoder("bert", 1, torch.nn.Identity(), legacy)
    assert (folder / "modules.json").is_file() != legacy
    assert isinstance(reference.activation_fn, torch.nn.Identity)
    scores = model.predict(PAIRS)
    np.testing.assert_array_equal(scores, model.predict(PAIRS, activation_fn=identity))
    assert max_relative_difference(scores, reference.predict(PAIRS)) <= 1e-5


def test_legacy_folder_without_activation_defaults_to_sigmoid(tiny_cross_encoder):
    _, model, reference = tiny_cross_encoder("distilbert", 1, None, True)
    assert isinstance(reference.activation_fn, torch.nn.Sigmoid)
    assert max_relative_difference(model.predict(PAIRS), reference.predict(PAIRS)) <= 1e-5


def test_constructor_activation_and_max_length_match_reference(tiny_cross_encoder):
    from sentence_transformers import CrossEncoder as ReferenceCrossEncoder

    folder, _, _ = tiny_cross_encoder("xlm-roberta", 1)
    model = CrossEncoder(folder, max_length=24, activation_fn=np.tanh)
    reference = ReferenceCrossEncoder(str(folder), device="cpu", max_length=24, activation_fn=torch.nn.Tanh())
    assert model.tokenizer(PAIRS)["input_ids"].shape[1] == 24
    assert max_relative_difference(model.predict(PAIRS), reference.predict(PAIRS)) <= 1e-5


def test_prompt_goes_before_the_first_text_as_in_reference(tiny_cross_encoder):
    _, model, reference = tiny_cross_encoder("bert", 1)
    expected = reference.predict(PAIRS, prompt="query: ", activation_fn=torch.nn.Identity())
    actual = model.predict(PAIRS, prompt="query: ", activation_fn=identity)
    assert max_relative_difference(actual, expected) <= 1e-5
    assert not np.allclose(actual, model.predict(PAIRS, activation_fn=identity))


@pytest.mark.parametrize("num_labels", LABELS)
def test_single_pair_gives_a_scalar_or_one_row(tiny_cross_encoder, num_labels):
    _, model, reference = tiny_cross_encoder("bert", num_labels)
    for pair in [("a query", "a document"), ["a query", "a document"], np.array(["a query", "a document"])]:
        actual = model.predict(pair)
        expected = reference.predict(pair)
        assert np.shape(actual) == np.shape(expected) == (() if num_labels == 1 else (num_labels,))
        assert max_relative_difference(actual, expected) <= 1e-5
    assert max_relative_difference(model.predict(np.array(PAIRS[:4])), reference.predict(PAIRS[:4])) <= 1e-5


def test_convert_to_numpy_false_gives_a_list(tiny_cross_encoder):
    _, model, _ = tiny_cross_encoder("bert", 3)
    scores = model.predict(PAIRS[:4], convert_to_numpy=False)
    assert isinstance(scores, list) and len(scores) == 4
    np.testing.assert_array_equal(np.stack(scores), model.predict(PAIRS[:4]))


def test_no_pairs_give_an_empty_array(tiny_cross_encoder):
    _, one, _ = tiny_cross_encoder("bert", 1)
    _, three, _ = tiny_cross_encoder("bert", 3)
    assert one.predict([]).shape == (0,)
    assert three.predict([]).shape == (0, 3)
    assert one.rank("query", []) == []


def rank_without_text(results):
    return [(result["corpus_id"], result.get("text")) for result in results]


def assert_same_ranking(actual, expected, tolerance=1e-5):
    """The same documents, each score within tolerance of the reference's, and in an order that sorts the
    reference's scores: documents whose scores differ by more than the tolerance come in the same order (some
    tokenizers make different texts identical, e.g. XLM-R's "" and " ", and float32 noise then orders them)."""
    reference_scores = {result["corpus_id"]: result["score"] for result in expected}
    assert sorted(reference_scores) == sorted(result["corpus_id"] for result in actual)
    scale = max(abs(score) for score in reference_scores.values())
    for result in actual:
        assert abs(result["score"] - reference_scores[result["corpus_id"]]) <= tolerance * scale
    ordered = [reference_scores[result["corpus_id"]] for result in actual]
    assert all(before >= after - tolerance * scale for before, after in zip(ordered, ordered[1:]))


@pytest.mark.parametrize("architecture", ["bert", "xlm-roberta"])
def test_rank_order_matches_reference(tiny_cross_encoder, architecture):
    _, model, reference = tiny_cross_encoder(architecture, 1)
    expected = reference.rank(QUERY, DISTINCT_DOCUMENTS, batch_size=6)
    actual = model.rank(QUERY, DISTINCT_DOCUMENTS, batch_size=6)
    assert_same_ranking(actual, expected)
    assert all(isinstance(result["score"], float) for result in actual)


def test_rank_keeps_ties_in_document_order_as_reference(tiny_cross_encoder):
    # Scores rounded to one decimal tie often (identical texts alone may differ in the last bit: each batch's
    # shapes change the order of float32 sums, in torch as in minisbert).
    _, model, reference = tiny_cross_encoder("bert", 1)
    expected = reference.rank(QUERY, DOCUMENTS, activation_fn=lambda x: torch.round(x, decimals=1))
    actual = model.rank(QUERY, DOCUMENTS, activation_fn=lambda x: np.round(x, 1))
    scores = [result["score"] for result in actual]
    assert len(set(scores)) < len(scores) - 3  # several ties
    assert rank_without_text(actual) == rank_without_text(expected)
    for before, after in zip(actual, actual[1:]):
        if before["score"] == after["score"]:
            assert before["corpus_id"] < after["corpus_id"]


def test_rank_top_k_and_return_documents_match_reference(tiny_cross_encoder):
    _, model, reference = tiny_cross_encoder("mpnet", 1)
    documents = DISTINCT_DOCUMENTS
    for top_k in (1, 5, len(documents) + 3):
        expected = reference.rank(QUERY, documents, top_k=top_k, return_documents=True, activation_fn=torch.nn.Identity())
        actual = model.rank(QUERY, documents, top_k=top_k, return_documents=True, activation_fn=identity)
        assert len(actual) == min(top_k, len(documents))
        assert_same_ranking(actual, expected)
        assert all(result["text"] == documents[result["corpus_id"]] for result in actual)


# Bad input: a clear error naming the problem.


@pytest.mark.parametrize(
    "inputs, message",
    [
        ("just one string", "not a single string"),
        (("one", "two", "three"), "input 0 is not a \\(text, text\\) pair"),
        ([("a", "b"), ("only one",)], "input 1 is not a \\(text, text\\) pair"),
        ([("a", "b"), ("a", 3)], "input 1 is not a \\(text, text\\) pair"),
        ([["a", ["b"]]], "input 0 is not"),
        (None, "got NoneType"),
        (42, "got int"),
    ],
)
def test_a_pair_that_is_not_a_pair_is_a_clear_error(tiny_cross_encoder, inputs, message):
    _, model, _ = tiny_cross_encoder("bert", 1)
    with pytest.raises(TypeError, match=message):
        model.predict(inputs)


@pytest.mark.parametrize("top_k", [0, -1, 2.5, True])
def test_top_k_must_be_positive(tiny_cross_encoder, top_k):
    _, model, _ = tiny_cross_encoder("bert", 1)
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        model.rank(QUERY, DOCUMENTS, top_k=top_k)


def test_rank_needs_one_label_as_in_reference(tiny_cross_encoder):
    _, model, reference = tiny_cross_encoder("bert", 3)
    with pytest.raises(ValueError, match="num_labels=1"):
        reference.rank(QUERY, DOCUMENTS)
    with pytest.raises(ValueError, match="num_labels=1; this model has 3 labels"):
        model.rank(QUERY, DOCUMENTS)


@pytest.mark.parametrize(
    "query, documents, message",
    [(QUERY, "one string, not a list", "documents as a list of strings"), (QUERY, ["ok", None], "document 1"),
     (["a list"], ["ok"], "query as a string")],
)
def test_rank_bad_query_or_documents(tiny_cross_encoder, query, documents, message):
    _, model, _ = tiny_cross_encoder("bert", 1)
    with pytest.raises(TypeError, match=message):
        model.rank(query, documents)


@pytest.mark.parametrize("batch_size", [0, -3, "8"])
def test_bad_batch_size(tiny_cross_encoder, batch_size):
    _, model, _ = tiny_cross_encoder("bert", 1)
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        model.predict(PAIRS, batch_size=batch_size)


def test_a_bi_encoder_folder_is_a_family_error(tiny_model):
    folder, _, _ = tiny_model("bert")
    with pytest.raises(ModelLoadError, match="is a SentenceTransformer model.*not a CrossEncoder"):
        CrossEncoder(folder)


def test_a_transformers_folder_without_classification_head_is_an_error(tiny_model):
    folder, _, _ = tiny_model("bert")
    encoder_only = folder.parent / f"{folder.name}-transformers"  # BertModel, as saved by transformers
    with pytest.raises(ModelLoadError, match="BertModel, not a \\*ForSequenceClassification"):
        CrossEncoder(encoder_only)


def test_unsupported_saved_activation_names_file_and_key(tiny_cross_encoder, tmp_path):
    import json
    import shutil

    folder, _, _ = tiny_cross_encoder("bert", 1)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    settings = json.loads((copy / "config_sentence_transformers.json").read_text())
    settings["activation_fn"] = "torch.nn.modules.activation.Hardshrink"
    (copy / "config_sentence_transformers.json").write_text(json.dumps(settings))
    with pytest.raises(ModelLoadError, match="config_sentence_transformers.json: activation_fn .*Hardshrink"):
        CrossEncoder(copy)


def test_predict_and_rank_import_no_torch(tiny_cross_encoder):
    import subprocess
    import sys

    folder, _, _ = tiny_cross_encoder("xlm-roberta", 1)
    check = (
        "import sys, minisbert\n"
        f"model = minisbert.CrossEncoder({str(folder)!r})\n"
        "model.predict([('a query', 'a document')]); model.rank('a query', ['one', 'two'])\n"
        "heavy = sorted({name.split('.')[0] for name in sys.modules} & {'torch', 'transformers', 'sentence_transformers'})\n"
        "print('imported:', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "imported: []" in result.stdout


def test_a_cross_encoder_with_more_modules_is_refused(tiny_cross_encoder, tmp_path):
    # e.g. a Dense module writing the scores: minisbert would silently skip it, so it refuses the folder
    import json
    import shutil

    folder, _, _ = tiny_cross_encoder("bert", 1)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    modules = json.loads((copy / "modules.json").read_text())
    modules.append({"idx": 1, "name": "1", "path": "1_Dense", "type": "sentence_transformers.base.modules.Dense"})
    (copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelLoadError, match="modules.json chains \\['Transformer', 'Dense'\\]"):
        CrossEncoder(copy)


@pytest.mark.parametrize(
    "max_length, message",
    [(0, "must be a positive integer"), (-5, "must be a positive integer"), (2.5, "must be a positive integer"),
     (3, "max_length 3 leaves no room for text: a pair takes 3 special tokens")],
)
def test_bad_max_length(tiny_cross_encoder, max_length, message):
    folder, _, _ = tiny_cross_encoder("bert", 1)
    with pytest.raises(ValueError, match=message):
        CrossEncoder(folder, max_length=max_length)
    assert CrossEncoder(folder, max_length=4).tokenizer([("a b c", "d e f")])["input_ids"].shape == (1, 4)


def test_saved_default_prompt_is_applied_as_in_reference(tiny_cross_encoder, tmp_path):
    import json
    import shutil

    from sentence_transformers import CrossEncoder as ReferenceCrossEncoder

    folder, _, _ = tiny_cross_encoder("bert", 1)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    settings = json.loads((copy / "config_sentence_transformers.json").read_text())
    settings.update(prompts={"query": "query: ", "none": None}, default_prompt_name="query")
    (copy / "config_sentence_transformers.json").write_text(json.dumps(settings))
    model, reference = CrossEncoder(copy), ReferenceCrossEncoder(str(copy), device="cpu")
    assert model.prompts == {"query": "query: ", "none": ""}
    identity_torch = torch.nn.Identity()
    assert max_relative_difference(model.predict(PAIRS, activation_fn=identity),
                                   reference.predict(PAIRS, activation_fn=identity_torch)) <= 1e-5
    np.testing.assert_array_equal(model.predict(PAIRS, activation_fn=identity),
                                  model.predict(PAIRS, prompt="query: ", activation_fn=identity))


def test_v4_config_activation_is_used_as_in_reference(tiny_cross_encoder, tmp_path):
    # sentence-transformers 4 and 5 saved a CrossEncoder as a transformers folder whose config.json holds
    # {"sentence_transformers": {"activation_fn": ...}}
    import json
    import shutil

    from sentence_transformers import CrossEncoder as ReferenceCrossEncoder

    folder, _, _ = tiny_cross_encoder("roberta", 1, None, True)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    config["sentence_transformers"] = {"activation_fn": "torch.nn.modules.activation.Tanh", "version": "4.0.1"}
    (copy / "config.json").write_text(json.dumps(config))
    model, reference = CrossEncoder(copy), ReferenceCrossEncoder(str(copy), device="cpu")
    assert isinstance(reference.activation_fn, torch.nn.Tanh)
    np.testing.assert_array_equal(model.predict(PAIRS), np.tanh(model.predict(PAIRS, activation_fn=identity)))
    assert max_relative_difference(model.predict(PAIRS), reference.predict(PAIRS)) <= 1e-5


@pytest.mark.parametrize(
    "tokenizer_class",
    ["BertTokenizer", "BertTokenizerFast", "ElectraTokenizer", "DebertaV2Tokenizer", "DebertaTokenizer",
     "DistilBertTokenizer", "RobertaTokenizer", "XLMRobertaTokenizer", "MPNetTokenizer", "TokenizersBackend",
     "PreTrainedTokenizerFast", "T5Tokenizer", "Qwen2Tokenizer", "GemmaTokenizer", "CamembertTokenizer"],
)
def test_token_types_are_passed_as_transformers_passes_them(tokenizer_class):
    # A pair's second text has token type 1 in the template; the model sees it only if the tokenizer class
    # returns token_type_ids (else transformers passes none and the model uses zeros).
    import transformers

    from minisbert.tokenization import returns_token_type_ids

    expected = "token_type_ids" in getattr(transformers, tokenizer_class).model_input_names
    assert returns_token_type_ids({"tokenizer_class": tokenizer_class}) == expected
    assert returns_token_type_ids({"tokenizer_class": tokenizer_class, "model_input_names": ["input_ids"]}) is False
    assert returns_token_type_ids({}) is True  # no tokenizer_config.json: an old BERT folder, BertTokenizer


@pytest.mark.parametrize("content, message", [
    ("null", "config.json: holds null"),
    ("[" * 100_000 + "]" * 100_000, "config.json: JSON nested too deeply"),
])
def test_a_config_json_holding_null_or_nested_too_deeply_is_refused(tiny_cross_encoder, tmp_path, content, message):
    import shutil

    folder, _, _ = tiny_cross_encoder("bert")
    shutil.copytree(folder, tmp_path / "model")
    (tmp_path / "model" / "config.json").write_text(content)
    with pytest.raises(ModelLoadError, match=message):
        CrossEncoder(tmp_path / "model")


def test_a_cross_encoder_given_to_the_bi_encoder_and_its_commands_says_what_it_is(tiny_cross_encoder, tmp_path):
    from minisbert import SentenceTransformer
    from minisbert.cli import main as cli

    folder, _, _ = tiny_cross_encoder("bert")
    message = "is a CrossEncoder model (config_sentence_transformers.json, modules.json), not a SentenceTransformer"
    with pytest.raises(ModelLoadError, match=re.escape(message)):
        SentenceTransformer(folder)
    for command in (["encode", "-m", str(folder), "hi"], ["explain", "-m", str(folder), "-o", str(tmp_path / "out"), "hi"]):
        with pytest.raises(SystemExit) as exit_:
            cli(command)
        assert message in str(exit_.value)
    assert not (tmp_path / "out").exists()


def test_max_seq_length_set_after_loading_truncates_pairs_as_the_reference(tiny_cross_encoder):
    folder, _, _ = tiny_cross_encoder("bert")
    model, reference = CrossEncoder(folder), ReferenceCrossEncoder(str(folder), device="cpu")
    model.max_seq_length, reference.max_seq_length = np.int64(12), 12  # a NumPy integer taken as an int
    assert model.tokenizer(PAIRS)["input_ids"].shape[1] == 12
    assert max_relative_difference(model.predict(PAIRS), reference.predict(PAIRS)) <= 1e-5
    with pytest.raises(ValueError, match="max_seq_length 3 leaves no room for text: a pair takes 3 special tokens"):
        model.max_seq_length = 3
