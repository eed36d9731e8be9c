"""The fast encoder's linear layers: the packed numba GEMM (few tokens) and OpenBLAS (many), each forced and
compared with the reference path and sentence-transformers; the int8 path (quantize="int8") against float32;
512-bit vectors on and off (subprocesses) giving the same numbers; ``minisbert info``."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minisbert import SentenceTransformer, vector_width
from minisbert.cli import main
from minisbert.architectures import fast_encoder as fast_encoder_module
from minisbert.architectures.layers import encoder
from inputs import HARD_TEXTS
from test_fast_encoder import padded_batch, random_layers, tiny_config

FORCED = {"numba": 10**9, "openblas": 0}  # PACKED_GEMM_MAX_TOKENS that sends every call to one kernel


@pytest.fixture
def kernels_run(monkeypatch):
    """Records which matmul each linear layer ran: "numba", "openblas" or "int8"."""
    ran = []
    for name, label in (("packed_linear", "numba"), ("openblas_linear", "openblas"), ("quantized_linear", "int8")):
        original = getattr(fast_encoder_module, name)

        def recording(*arguments, original=original, label=label, **options):
            ran.append(label)
            return original(*arguments, **options)

        monkeypatch.setattr(fast_encoder_module, name, recording)
    return ran


@pytest.mark.parametrize("path", FORCED)
@pytest.mark.parametrize("lengths", [[1], [5, 1, 9, 3], [30] * 12])
def test_each_gemm_path_matches_the_reference_encoder(path, lengths, monkeypatch, kernels_run):
    monkeypatch.setattr(fast_encoder_module, "PACKED_GEMM_MAX_TOKENS", FORCED[path])
    rng = np.random.default_rng(5)
    layers, config = random_layers(rng), tiny_config()
    x, attention_mask = padded_batch(rng, lengths)
    expected = encoder(x, layers, attention_mask, config)
    actual = fast_encoder_module.fast_encoder(x, layers, attention_mask, config)
    real = attention_mask.astype(bool)
    np.testing.assert_allclose(actual[real], expected[real], rtol=0, atol=2e-6)
    assert kernels_run and set(kernels_run) == {path}


def test_the_crossover_picks_numba_for_few_tokens_and_openblas_for_many(kernels_run):
    rng = np.random.default_rng(6)
    layers, config = random_layers(rng), tiny_config()
    limit = fast_encoder_module.PACKED_GEMM_MAX_TOKENS
    for tokens, expected in ((limit, "numba"), (limit + 1, "openblas")):
        kernels_run.clear()
        x, attention_mask = padded_batch(rng, [tokens])
        fast_encoder_module.fast_encoder(x, layers, attention_mask, config)
        assert set(kernels_run) == {expected}, tokens
    assert "packed" in layers[0]["qkv"]  # packed once, at the first call, and kept on the layer


@pytest.fixture(scope="module")
def reference_embeddings(reference_model):
    # sentence-transformers' normalised embeddings of the hard texts (its batch size changes them by < 1e-7)
    return reference_model.encode(HARD_TEXTS, batch_size=32, normalize_embeddings=True)


@pytest.mark.parametrize("path", FORCED)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_each_gemm_path_matches_sentence_transformers(model, reference_embeddings, path, batch_size, monkeypatch):
    monkeypatch.setattr(fast_encoder_module, "PACKED_GEMM_MAX_TOKENS", FORCED[path])
    actual = model.encode(HARD_TEXTS, batch_size=batch_size, normalize_embeddings=True)
    assert np.abs(actual - reference_embeddings).max() <= 1e-6


@pytest.fixture(scope="module")
def int8_model(default_model_folder):
    return SentenceTransformer(str(default_model_folder), quantize="int8")


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_int8_embeddings_stay_close_to_sentence_transformers(int8_model, reference_embeddings, batch_size, kernels_run):
    actual = int8_model.encode(HARD_TEXTS, batch_size=batch_size, normalize_embeddings=True)
    cosines = (actual * reference_embeddings).sum(axis=1)
    # int8 weights per row, 12-bit activations per token: 0.9964 at worst ("?!": 4 tokens), 0.9995 on average
    assert cosines.min() >= 0.99
    assert set(kernels_run) == {"int8"}


def test_int8_gives_each_text_the_same_embedding_in_any_batch(int8_model):
    # activations are quantized per token, so a text's numbers do not depend on the other texts of its batch
    alone = np.stack([int8_model.encode(text) for text in HARD_TEXTS[:12]])
    together = int8_model.encode(HARD_TEXTS[:12], batch_size=12)
    assert np.abs(alone - together).max() <= 1e-6


def test_int8_is_not_float32(int8_model, model):
    # the int8 path really runs: its embeddings differ from float32's by more than rounding
    assert np.abs(int8_model.encode(HARD_TEXTS[:5]) - model.encode(HARD_TEXTS[:5])).max() > 1e-4


def test_unknown_quantize_is_named(default_model_folder):
    with pytest.raises(ValueError, match="quantize='int4'"):
        SentenceTransformer(str(default_model_folder), quantize="int4")


def test_cli_encode_quantize_int8(default_model_folder, capsys):
    main(["encode", "--model", str(default_model_folder), "--quantize", "int8", "The weather is lovely today."])
    line = json.loads(capsys.readouterr().out)
    assert len(line["embedding"]) == 384


def test_cli_info_reports_blas_threads_vector_width_and_cache(capsys):
    main(["info"])
    out = capsys.readouterr().out
    for expected in ("BLAS:", "threads", "numba threading layer", "vector width:", "int8 micro-kernel", "numba cache"):
        assert expected in out


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"MINISBERT_WIDE_VECTORS": "0"}, "off"),
        ({"NUMBA_CPU_FEATURES": "+avx2"}, "NUMBA_CPU_FEATURES already set"),
        ({"NUMBA_CPU_NAME": "haswell"}, "NUMBA_CPU_NAME already set"),
        ({}, "numba was imported"),  # in this process numba is imported: too late to change anything
    ],
)
def test_wide_vectors_are_set_only_when_allowed(environ, expected):
    before = dict(environ)
    assert expected in vector_width.prefer_wide_vectors(environ)
    assert environ == before


# A fresh interpreter: the GEMM variants on one case and encode of the hard texts, as JSON.
PROBE = """
import json, sys
import numpy as np
import minisbert
from minisbert.kernels import matmul
sys.path.insert(0, sys.argv[1])
from inputs import HARD_TEXTS
rng = np.random.default_rng(0)
weight, x = rng.standard_normal((37, 300)).astype(np.float32), rng.standard_normal((300, 11)).astype(np.float32)
out = {"wide": minisbert.runtime.vector_width.WIDE_VECTORS,
       "registers": matmul.compiled_instructions()["fp32 micro-kernel"]["registers"],
       "gemm": matmul.matmul_3_packed(matmul.pack_weight(weight), x, np.empty((37, 11), np.float32)).tolist(),
       "embeddings": minisbert.SentenceTransformer(sys.argv[2]).encode(HARD_TEXTS, batch_size=8).tolist()}
print(json.dumps(out))
"""


def probe(folder, **environ):
    env = {key: value for key, value in os.environ.items() if key not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, os.path.dirname(os.path.abspath(__file__)), str(folder)],  # tests/: inputs.py
        env={**env, **environ},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(result.stdout)


def test_wide_vectors_on_and_off_give_the_same_numbers(default_model_folder):
    import llvmlite.binding

    on, off = probe(default_model_folder), probe(default_model_folder, MINISBERT_WIDE_VECTORS="0")
    assert off["wide"].startswith("off")
    if llvmlite.binding.get_host_cpu_features().get("avx512f"):
        assert on["wide"].startswith("on") and on["registers"] == "512-bit"
    # the same sums split over 16 or 8 lanes: float32 rounding only (|x| ~ 17 here, 1e-5 is ~ 50 ulp)
    np.testing.assert_allclose(on["gemm"], off["gemm"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(on["embeddings"], off["embeddings"], rtol=0, atol=1e-6)  # normalised


@pytest.mark.parametrize("architecture", ["bert", "roberta", "xlm-roberta", "mpnet", "distilbert"])
def test_int8_works_for_every_architecture(tiny_model, architecture):
    folder, _, reference = tiny_model(architecture)
    int8_model = SentenceTransformer(str(folder), quantize="int8")
    expected = reference.encode(HARD_TEXTS, normalize_embeddings=True)
    actual = int8_model.encode(HARD_TEXTS, normalize_embeddings=True)
    assert (actual * expected).sum(axis=1).min() >= 0.99  # random tiny models: see the all-MiniLM test's bound
