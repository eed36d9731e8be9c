"""minisbert.inspection.plots and ``minisbert explain``: every plot renders off-screen to a real PNG, matplotlib is
imported only when plotting, and the summary states the trace's shapes."""

import subprocess
import sys

import numpy as np
import pytest

from minisbert.inspection import plots

TEXTS = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def traces(model):
    return [model.trace(text) for text in TEXTS]


def assert_is_a_drawn_png(path, minimum_bytes=10_000):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) >= minimum_bytes  # a blank figure of that size is a few kB


def test_attention_heads_of_one_layer(traces, tmp_path):
    assert_is_a_drawn_png(plots.plot_attention_heads(traces[0], 2, tmp_path / "heads.png"))


def test_attention_of_every_layer_and_head(traces, tmp_path):
    assert_is_a_drawn_png(plots.plot_attention_layers(traces[0], tmp_path / "layers.png"))


def test_token_norms(traces, tmp_path):
    assert_is_a_drawn_png(plots.plot_token_norms(traces[0], tmp_path / "norms.png"))


def test_layer_similarity(traces, tmp_path):
    assert_is_a_drawn_png(plots.plot_layer_similarity(traces[0], traces[1:], tmp_path / "layers.png"))


def test_similarity_matrix(model, tmp_path):
    embeddings = model.encode(TEXTS)
    path = plots.plot_similarity_matrix(TEXTS, model.similarity(embeddings, embeddings), tmp_path / "matrix.png")
    assert_is_a_drawn_png(path)


def test_plots_of_a_long_text(model, tmp_path):
    trace = model.trace(" ".join(TEXTS * 30))  # truncated to 256 tokens: labels shrink, values not written in
    assert_is_a_drawn_png(plots.plot_attention_heads(trace, 0, tmp_path / "heads.png"))
    assert_is_a_drawn_png(plots.plot_token_norms(trace, tmp_path / "norms.png"))


def test_layer_similarity_ends_at_the_similarity_of_the_pooled_embeddings(model, traces):
    from minisbert.inspection.trace import layer_similarities

    similarities = layer_similarities(traces[0], traces[1])
    assert similarities.shape == (7,)
    pooled = np.stack([traces[0].pooled_embedding, traces[1].pooled_embedding])
    np.testing.assert_allclose(similarities[-1], model.similarity(pooled, pooled)[0, 1], atol=1e-6)


def test_importing_minisbert_and_tracing_does_not_import_matplotlib():
    check = (
        "import sys, minisbert, minisbert.inspection.plots\n"
        "minisbert.SentenceTransformer().trace('a sentence')\n"
        "print('matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_explain_command_writes_plots_and_summary(model, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "minisbert", "explain", *TEXTS, "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    names = ["attention_layers", "token_norms", "similarity_matrix", "layer_similarity"]
    names += [f"attention_layer{layer}" for layer in range(1, 7)]
    for name in names:
        assert_is_a_drawn_png(tmp_path / "out" / f"{name}.png")
    summary = (tmp_path / "out" / "summary.txt").read_text(encoding="utf-8")
    assert "hidden_states: (7, 8, 384)" in summary and "attentions: (6, 12, 8, 8)" in summary
    assert "tokens (8): [CLS] the weather is lovely today . [SEP]" in summary
    assert summary in result.stdout + "\n"
    first_values = " ".join(f"{x:.4f}" for x in model.encode(TEXTS[0])[:6])
    assert first_values in summary
