"""docs/walkthrough.md is what docs/make_walkthrough.py writes now: the generator runs here into a temporary
folder, so the document's numbers can't go stale (numbers are printed at fixed precision: 4 decimals)."""

import importlib.util

import pytest
from inputs import REPO

FIGURES = ["attention_layer1", "attention_layers", "token_norms", "similarity_matrix", "layer_similarity"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory, default_model_folder):
    """The folder the generator wrote walkthrough.md and walkthrough/*.png into."""
    spec = importlib.util.spec_from_file_location("make_walkthrough", REPO / "docs" / "make_walkthrough.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    folder = tmp_path_factory.mktemp("docs")
    generator.main(["--out", str(folder), "--model", str(default_model_folder)])
    return folder


def test_committed_walkthrough_is_what_the_generator_writes(generated):
    committed = (REPO / "docs" / "walkthrough.md").read_text(encoding="utf-8")
    assert (generated / "walkthrough.md").read_text(encoding="utf-8") == committed, (
        "docs/walkthrough.md is stale: run python docs/make_walkthrough.py"
    )


@pytest.mark.parametrize("name", FIGURES)
def test_walkthrough_figures_are_drawn_and_committed(generated, name):
    assert f"(walkthrough/{name}.png)" in (REPO / "docs" / "walkthrough.md").read_text(encoding="utf-8")
    assert (generated / "walkthrough" / f"{name}.png").stat().st_size > 10_000
    assert (REPO / "docs" / "walkthrough" / f"{name}.png").is_file()
