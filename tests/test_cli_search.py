"""``minisbert search`` (results as semantic_search gives them; embeddings cached beside the corpus and
recomputed when the file changes) and ``minisbert evaluate`` (the evaluator's numbers on a CSV/TSV of pairs)."""

import numpy as np
import pytest

from minisbert import cli
from minisbert.evaluation import EmbeddingSimilarityEvaluator, read_pairs

CORPUS = ["A man is eating food.", "", "A man is riding a horse.", "Ein Mann isst Brot. 🍞", "A monkey plays drums."]


@pytest.fixture
def run(monkeypatch, model, default_model_folder, capsys):
    """Runs the CLI with the session's model (no second load) and returns what it printed."""
    monkeypatch.setattr(cli, "load_model", lambda arguments: model)

    def run_cli(*argv):
        cli.main([*argv, "--model", str(default_model_folder)])
        return capsys.readouterr()

    return run_cli


def test_search_prints_semantic_search_hits(run, model, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    printed = run("search", "--corpus", str(corpus), "--query", "someone eats bread", "--top-k", "2")
    lines = [line for line in CORPUS if line]
    expected = model.similarity(model.encode(["someone eats bread"]), model.encode(lines))[0]
    best = np.argsort(-expected)[:2]
    ranked = [line for line in printed.out.splitlines() if line.strip().startswith(("1.", "2."))]
    assert [line.split(": ", 1)[1] for line in ranked] == [lines[i] for i in best]
    assert f"{expected[best[0]]:.4f}" in ranked[0]


def test_search_caches_embeddings_and_notices_changes(run, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS), encoding="utf-8")
    assert "cached in" in run("search", "--corpus", str(corpus), "-q", "food").err
    assert "using cached embeddings" in run("search", "--corpus", str(corpus), "-q", "food").err
    corpus.write_text("\n".join(CORPUS[:3]), encoding="utf-8")
    printed = run("search", "--corpus", str(corpus), "-q", "food", "-k", "10")
    assert "cached in" in printed.err
    assert np.load(tmp_path / "corpus.txt.minisbert.npy").shape == (2, 384)
    assert "line 4" not in printed.out


def test_search_empty_corpus_is_a_clear_error(run, tmp_path):
    corpus = tmp_path / "empty.txt"
    corpus.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no non-empty line"):
        run("search", "--corpus", str(corpus), "-q", "food")


def test_evaluate_prints_evaluator_scores(run, model, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    rows = [
        "genre\tscore\tsentence1\tsentence2",
        "a\t4.8\tA man eats.\tA man is eating.",
        "a\t0.2\tA cat sleeps.\tStocks fell today.",
        "a\t2.5\tA man plays guitar.\tA woman plays violin.",
    ]
    pairs.write_text("\n".join(rows) + "\n", encoding="utf-8")
    printed = run("evaluate", str(pairs), "--similarity", "cosine,manhattan")
    metrics = EmbeddingSimilarityEvaluator(*read_pairs(pairs), similarity_fn_names=["cosine", "manhattan"])(model)
    cosine_line = next(line for line in printed.out.splitlines() if line.startswith("cosine"))
    assert cosine_line.split()[1:] == [f"{metrics['pearson_cosine']:.5f}", f"{metrics['spearman_cosine']:.5f}"]


def test_evaluate_names_a_missing_column(run, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("first,second,label\na,b,1\nc,d,2\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no column"):
        run("evaluate", str(pairs))


def test_read_pairs_by_position_without_header(tmp_path):
    # STS-B's layout: score in column 5, sentences in 6 and 7, stray quotes, sometimes extra trailing columns.
    pairs = tmp_path / "sts.csv"
    pairs.write_text(
        'g\tf\ty\t1\t3.5\tHe said "hi.\tShe said hi.\textra\tcolumns\ng\tf\ty\t2\t1.0\tA.\tB.\n', encoding="utf-8"
    )
    assert read_pairs(pairs, (6, 7, 5)) == (['He said "hi.', "A."], ["She said hi.", "B."], [3.5, 1.0])
