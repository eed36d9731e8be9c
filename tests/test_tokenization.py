"""minisbert.tokenization beyond tokenizer.json (which every parity test reads): a folder with only vocab.txt (and
tokenizer_config.json) tokenizes as transformers' BertTokenizer does, honouring do_lower_case; a whole model folder
without tokenizer.json matches sentence-transformers, the real all-MiniLM-L6-v2's token for token."""

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inputs import HARD_TEXTS
from tiny_models import bundled_folder, max_relative_difference

from minisbert import SentenceTransformer
from minisbert.tokenization import Tokenizer


def vocab_only_folder(folder, tokenizer_config):
    folder.mkdir()
    shutil.copy(bundled_folder() / "vocab.txt", folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", **tokenizer_config}))
    return folder


@pytest.mark.parametrize(
    "tokenizer_config",
    [{}, {"do_lower_case": False}, {"do_lower_case": True, "strip_accents": False}, {"tokenize_chinese_chars": False}],
    ids=["defaults", "cased", "lowercase_keep_accents", "no_chinese_split"],
)
def test_vocab_only_tokenizer_matches_bert_tokenizer(tmp_path, tokenizer_config):
    from transformers import AutoTokenizer

    folder = vocab_only_folder(tmp_path / "tokenizer", tokenizer_config)
    reference = AutoTokenizer.from_pretrained(folder)
    tokenizer = Tokenizer.from_folder(folder, max_seq_length=64)
    for text in HARD_TEXTS:
        expected = reference(text, truncation=True, max_length=64)["input_ids"]
        assert tokenizer([text])["input_ids"][0].tolist() == expected, text


def test_model_folder_without_tokenizer_json_matches_reference(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer as ReferenceModel

    folder, _, _ = tiny_model("distilbert", pooling_mode="mean")
    copy = tmp_path / "vocab_only"
    shutil.copytree(folder, copy)
    (copy / "tokenizer.json").unlink()
    shutil.copy(bundled_folder() / "vocab.txt", copy / "vocab.txt")  # transformers 5 saves tokenizer.json only
    expected = ReferenceModel(str(copy), device="cpu").encode(HARD_TEXTS)
    actual = SentenceTransformer(copy).encode(HARD_TEXTS)
    assert max_relative_difference(actual, expected) <= 1e-5


def test_non_wordpiece_vocab_only_folder_is_refused(tmp_path):
    folder = vocab_only_folder(tmp_path / "tokenizer", {"tokenizer_class": "XLNetTokenizer"})
    with pytest.raises(ValueError, match="XLNetTokenizer"):
        Tokenizer.from_folder(folder, max_seq_length=64)


def test_the_real_models_tokenizer_from_vocab_txt_matches_its_tokenizer_json(model, model_copy):
    (model_copy / "tokenizer.json").unlink()
    rebuilt = SentenceTransformer(model_copy)
    for text in HARD_TEXTS:
        assert rebuilt.tokenizer.tokens(text) == model.tokenizer.tokens(text), text
    np.testing.assert_array_equal(rebuilt.encode(HARD_TEXTS), model.encode(HARD_TEXTS))


def test_a_vocab_txt_that_is_not_utf8_is_a_load_error_naming_it(tmp_path):
    from minisbert.files.loading import ModelLoadError

    folder = vocab_only_folder(tmp_path / "tokenizer", {})
    (folder / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\ncaf\xe9\n")
    with pytest.raises(ModelLoadError, match=r"vocab.txt is not UTF-8 text \(byte 15\)"):
        Tokenizer.from_folder(folder, max_seq_length=64)


def long_pair_texts(seed, words):
    """Two long texts of HARD_TEXTS' words, spaces, runs of whitespace and words too long for WordPiece."""
    rng = np.random.default_rng(seed)
    pieces = " ".join(HARD_TEXTS).split() + ["x" * 150, "\n\n\t ", "é" * 3]
    return tuple(" ".join(rng.choice(pieces, words)) for _ in range(2))


@pytest.mark.parametrize("architecture", ["bert", "roberta", "xlm-roberta"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_a_pair_of_long_texts_is_cut_before_tokenizing_and_gives_the_same_tokens(architecture, side):
    from tiny_models import tokenizer_and_config

    reference, _ = tokenizer_and_config(architecture)
    backend = (reference.backend_tokenizer if reference else Tokenizer.from_folder(bundled_folder(), 64).backend)
    pad = backend.id_to_token(0 if architecture == "bert" else 1)
    tokenizer = Tokenizer(backend, 64, pad, truncation_side=side)
    pairs = [long_pair_texts(seed, words) for seed, words in enumerate([300, 600, 1000])] + [("a " * 3000, "b")]
    expected = [encoding.ids for encoding in backend.encode_batch(pairs)]  # the library on the whole texts
    assert tokenizer(pairs)["input_ids"].tolist() == expected
    assert all(len(tokenizer.bounded_pair(pair)[0]) < len(pair[0]) for pair in pairs[:3])  # cut, not given whole
    cut = tokenizer.bounded_pair(("word " * 100_000, "text " * 100_000))  # both 500 KB: a product of 10^10
    assert max(map(len, cut)) < 20 * 64 * 8


@pytest.fixture(scope="module")
def short_tokenizers():
    """(minisbert Tokenizer truncating to 16 tokens, its backend) for WordPiece and byte-level BPE, both sides."""
    from tiny_models import tokenizer_and_config

    wordpiece = Tokenizer.from_folder(bundled_folder(), 16).backend
    byte_level = tokenizer_and_config("roberta")[0].backend_tokenizer
    return [(Tokenizer(backend, 16, pad, truncation_side=side), backend)
            for backend, pad in ((wordpiece, "[PAD]"), (byte_level, "<pad>")) for side in ("right", "left")]


WORDS_AND_ODD_CHARACTERS = st.text(st.sampled_from(list("ab xyz\t\n.,é\u0301中文😀\u200b-")) | st.characters(), min_size=130,
                                   max_size=700)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=WORDS_AND_ODD_CHARACTERS, second=WORDS_AND_ODD_CHARACTERS)
def test_cutting_a_long_pair_never_changes_its_tokens(short_tokenizers, first, second):
    for tokenizer, backend in short_tokenizers:
        pair = (first, second)
        try:
            expected = backend.encode(*pair).ids
        except Exception:  # a lone surrogate: refused before tokenizing, tested elsewhere
            return
        assert backend.encode(*tokenizer.bounded_pair(pair)).ids == expected
