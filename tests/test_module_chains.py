"""Module chains from modules.json match sentence-transformers: Dense (bias or not, the activations it saves),
Normalize anywhere in the chain, prompts from config_sentence_transformers.json with include_prompt=False,
and truncate_dim."""

import numpy as np
import pytest
from inputs import FEW_HARD_TEXTS
from tiny_models import max_relative_difference

TOLERANCE = 1e-5

DENSE_CHAINS = {
    "tanh": [(24, "Tanh", True)],
    "identity_no_bias": [(24, "Identity", False)],
    "relu_then_gelu": [(40, "ReLU", True), (16, "GELU", True)],
    "sigmoid_silu": [(20, "Sigmoid", True), (12, "SiLU", False)],
}


@pytest.mark.parametrize("chain", DENSE_CHAINS)
def test_dense_chain_matches_reference(tiny_model, chain):
    _, model, reference = tiny_model("bert", pooling_mode="mean", dense=DENSE_CHAINS[chain], normalize=True)
    expected = reference.encode(FEW_HARD_TEXTS)
    actual = model.encode(FEW_HARD_TEXTS)
    assert actual.shape == expected.shape == (len(FEW_HARD_TEXTS), DENSE_CHAINS[chain][-1][0])
    assert np.abs(actual - expected).max() <= 1e-6  # normalised output
    assert model.get_sentence_embedding_dimension() == reference.get_embedding_dimension()


def test_normalize_before_dense_matches_reference(tiny_model, tmp_path):
    # modules.json order is followed as written, even when Normalize is not last
    import json
    import shutil

    from sentence_transformers import SentenceTransformer as ReferenceModel

    from minisbert import SentenceTransformer

    folder, _, _ = tiny_model("roberta", pooling_mode="max", dense=[(24, "Tanh", True)], normalize=True)
    shutil.copytree(folder, tmp_path / "reordered")
    modules_path = tmp_path / "reordered" / "modules.json"
    modules = json.loads(modules_path.read_text())
    modules[2], modules[3] = modules[3], modules[2]  # Normalize, then Dense
    modules_path.write_text(json.dumps(modules))
    expected = ReferenceModel(str(tmp_path / "reordered"), device="cpu").encode(FEW_HARD_TEXTS)
    actual = SentenceTransformer(tmp_path / "reordered").encode(FEW_HARD_TEXTS)
    assert max_relative_difference(actual, expected) <= TOLERANCE


PROMPTS = {"query": "query: ", "passage": "passage of a document: "}


@pytest.mark.parametrize("architecture", ["bert", "xlm-roberta"])
@pytest.mark.parametrize("mode", ["mean", "cls", "weightedmean"])
def test_prompt_excluded_from_pooling_matches_reference(tiny_model, architecture, mode):
    _, model, reference = tiny_model(architecture, pooling_mode=mode, include_prompt=False, prompts=PROMPTS)
    for prompt_name in PROMPTS:
        expected = reference.encode(FEW_HARD_TEXTS, prompt_name=prompt_name)
        actual = model.encode(FEW_HARD_TEXTS, prompt_name=prompt_name)
        assert max_relative_difference(actual, expected) <= TOLERANCE, prompt_name


def test_prompt_length_matches_reference(tiny_model):
    _, model, reference = tiny_model("bert", include_prompt=False, prompts=PROMPTS)
    for prompt in [*PROMPTS.values(), "🤗", "word " * 300]:
        expected = reference[0]._get_prompt_length(prompt)
        assert model.tokenizer.prompt_length(prompt) == expected, prompt


def test_prompts_are_read_from_config_sentence_transformers(tiny_model):
    _, model, _ = tiny_model("bert", include_prompt=False, prompts=PROMPTS)
    assert model.prompts["query"] == "query: " and model.prompts["passage"] == PROMPTS["passage"]


def test_truncate_dim_matches_reference(tiny_model):
    _, model, reference = tiny_model("mpnet", pooling_mode=("mean", "max"), normalize=True)
    expected = reference.encode(FEW_HARD_TEXTS, truncate_dim=20)
    actual = model.encode(FEW_HARD_TEXTS, truncate_dim=20)
    assert actual.shape == (len(FEW_HARD_TEXTS), 20)
    assert max_relative_difference(actual, expected) <= TOLERANCE


def test_output_value_none_with_prompt_keeps_batch_values(tiny_model):
    # prompt_length is one number for the whole batch: each text's features carry it, not a slice of it
    _, model, _ = tiny_model("bert", include_prompt=False, prompts=PROMPTS)
    outputs = model.encode(["one", "two words"], prompt_name="query", output_value=None)
    assert [output["prompt_length"] for output in outputs] == [3, 3]  # [CLS] query : ([SEP] not counted)
    assert outputs[1]["sentence_embedding"].shape == (32,)


def test_untrusted_dense_activation_falls_back_to_tanh(tmp_path, caplog):
    from minisbert.modules.dense import dense_activation

    assert dense_activation("my_package.MyActivation") is np.tanh
    assert "not a torch class" in caplog.text


def test_unsupported_torch_activation_is_named():
    from minisbert.modules.dense import dense_activation

    with pytest.raises(ValueError, match="Softplus"):
        dense_activation("torch.nn.modules.activation.Softplus")


def test_truncate_dim_given_at_load_matches_reference(tiny_model):
    from sentence_transformers import SentenceTransformer as ReferenceModel

    from minisbert import SentenceTransformer

    folder, _, _ = tiny_model("mpnet", pooling_mode=("mean", "max"), normalize=True)
    expected = ReferenceModel(str(folder), device="cpu", truncate_dim=12).encode(FEW_HARD_TEXTS, normalize_embeddings=True)
    model = SentenceTransformer(folder, truncate_dim=12)
    actual = model.encode(FEW_HARD_TEXTS, normalize_embeddings=True)
    assert model.get_sentence_embedding_dimension() == 12
    assert np.abs(actual - expected).max() <= 1e-6  # normalised output
