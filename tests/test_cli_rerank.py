"""``minisbert rerank`` (candidates ordered as CrossEncoder.rank orders them, line numbers of the input kept) and
``minisbert search --rerank`` (the bi-encoder's top k x 4, reordered by the cross-encoder, k kept)."""

import io

import numpy as np
import pytest

from minisbert import cli

QUERY = "someone eats bread"
CANDIDATES = ["A man is eating food.", "", "A man is riding a horse.", "Ein Mann isst Brot. 🍞", "A monkey plays drums.",
              "Bread and butter for breakfast.", "   ", "The stock market fell.", "He bakes bread every morning."]


@pytest.fixture
def cross_encoder(tiny_cross_encoder):
    folder, model, _ = tiny_cross_encoder("bert", 1)
    return folder, model


def printed_hits(output):
    """(rank, score text, line number, line) of each printed hit."""
    hits = []
    for line in output.splitlines():
        if line.startswith("query:"):
            continue
        rank, score, rest = line.split(maxsplit=2)
        number, text = rest.removeprefix("line ").split(": ", 1)
        hits.append((int(rank.rstrip(".")), score, int(number), text))
    return hits


@pytest.mark.parametrize("top_k", [None, 3])
def test_rerank_prints_rank_order_with_line_numbers(cross_encoder, tmp_path, capsys, top_k):
    folder, model = cross_encoder
    path = tmp_path / "candidates.txt"
    path.write_text("\n".join(CANDIDATES) + "\n", encoding="utf-8")
    cli.main(["rerank", "--model", str(folder), "-q", QUERY, "--input", str(path)] + (["-k", str(top_k)] if top_k else []))
    hits = printed_hits(capsys.readouterr().out)
    kept = [(number, line) for number, line in enumerate(CANDIDATES, 1) if line.strip()]
    expected = model.rank(QUERY, [line for _, line in kept], top_k=top_k)
    assert len(hits) == len(expected) == (top_k or len(kept))
    for (rank, score, number, text), result in zip(hits, expected):
        assert (number, text) == kept[result["corpus_id"]]
        assert score == f"{result['score']:.4f}"
    assert [hit[0] for hit in hits] == list(range(1, len(hits) + 1))


def test_rerank_reads_candidates_from_standard_input(cross_encoder, monkeypatch, capsys):
    folder, model = cross_encoder
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(CANDIDATES[:4])))
    cli.main(["rerank", "-m", str(folder), "-q", QUERY, "-k", "1"])
    (hit,) = printed_hits(capsys.readouterr().out)
    best = model.rank(QUERY, [CANDIDATES[0], CANDIDATES[2], CANDIDATES[3]], top_k=1)[0]["corpus_id"]
    assert hit[2] == [1, 3, 4][best]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-k", "0", "a candidate"], "top_k must be a positive integer"),
        (["", "  "], "no non-empty candidate"),
    ],
)
def test_rerank_bad_input_is_a_clear_error(cross_encoder, argv, message):
    folder, _ = cross_encoder
    with pytest.raises(SystemExit, match=message):
        cli.main(["rerank", "-m", str(folder), "-q", QUERY, *argv])


def test_rerank_with_a_bi_encoder_is_a_family_error(tiny_model):
    folder, _, _ = tiny_model("bert")
    with pytest.raises(SystemExit, match="SentenceTransformer model .* not a CrossEncoder"):
        cli.main(["rerank", "-m", str(folder), "-q", QUERY, "a candidate"])


def test_search_rerank_reorders_the_retrieved_candidates(cross_encoder, model, monkeypatch, tmp_path, capsys):
    folder, cross = cross_encoder
    monkeypatch.setattr(cli, "load_model", lambda arguments: model)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CANDIDATES), encoding="utf-8")
    cli.main(["search", "--corpus", str(corpus), "-q", QUERY, "-k", "2", "--rerank", str(folder)])
    hits = printed_hits(capsys.readouterr().out)

    kept = [(number, line) for number, line in enumerate(CANDIDATES, 1) if line.strip()]
    similarities = model.similarity(model.encode([QUERY]), model.encode([line for _, line in kept]))[0]
    retrieved = np.argsort(-similarities)[: 2 * cli.RERANK_CANDIDATES_PER_HIT]  # 8 of the 7 lines: all
    reranked = cross.rank(QUERY, [kept[i][1] for i in retrieved], top_k=2)
    assert [(number, text) for _, _, number, text in hits] == [kept[retrieved[r["corpus_id"]]] for r in reranked]
    assert [score for _, score, _, _ in hits] == [f"{r['score']:.4f}" for r in reranked]


def test_search_rerank_retrieves_four_candidates_per_hit(cross_encoder, model, monkeypatch, tmp_path, capsys):
    folder, _ = cross_encoder
    monkeypatch.setattr(cli, "load_model", lambda arguments: model)
    ranked_lists = []

    def rank_spy(cross_encoder, query, hits, sentences, top_k, batch_size):
        ranked_lists.append(len(hits))
        return hits[:top_k]

    monkeypatch.setattr(cli, "rerank_hits", rank_spy)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line number {i}" for i in range(50)), encoding="utf-8")
    cli.main(["search", "--corpus", str(corpus), "-q", QUERY, "-q", "another", "-k", "3", "--rerank", str(folder)])
    assert ranked_lists == [12, 12]
    assert len(printed_hits(capsys.readouterr().out)) == 6
