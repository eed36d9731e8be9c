"""Every family reads a folder's modules.json through minisbert.modules.read_module_list and its
config_sentence_transformers.json through one checked reader: a corrupt file gets the same clear error whichever
family loads it (tiny models of each family, built once)."""

import json
import shutil
from pathlib import Path

import pytest
from tiny_models import build_cross_encoder, build_sentence_transformer
from tiny_models import build_colbert, build_splade

FAMILY_BUILDERS = {
    "SentenceTransformer": lambda folder: build_sentence_transformer(folder, "bert"),
    "CrossEncoder": lambda folder: build_cross_encoder(folder, "bert"),
    "SparseEncoder": build_splade,
    "MultiVectorEncoder": build_colbert,
}


@pytest.fixture(scope="module")
def family_folder(tmp_path_factory):
    """family_folder(family, tmp_path) -> a fresh copy of a tiny saved model of that family (each built once)."""
    built = {}

    def copy(family, tmp_path):
        if family not in built:
            folder = tmp_path_factory.mktemp(family) / "model"
            FAMILY_BUILDERS[family](folder)
            built[family] = folder
        return Path(shutil.copytree(built[family], tmp_path / family))

    return copy


def edit_json(path, change):
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


@pytest.mark.parametrize("family", FAMILY_BUILDERS)
def test_every_family_loads_its_tiny_model(family_folder, tmp_path, family):
    import minisbert

    model = getattr(minisbert, family)(family_folder(family, tmp_path))
    assert type(model).__name__ == family  # the folders below are broken copies of a folder that loads


@pytest.mark.parametrize("path", ["../..", "/etc"])
@pytest.mark.parametrize("family", FAMILY_BUILDERS)
def test_every_family_refuses_a_module_path_outside_the_model(family_folder, tmp_path, family, path):
    import minisbert
    from minisbert.files.loading import ConfigError

    folder = family_folder(family, tmp_path)
    edit_json(folder / "modules.json", lambda modules: [{**modules[0], "path": path}, *modules[1:]])
    with pytest.raises(ConfigError, match=f"module 0 has the path '{path}', not a folder inside the model"):
        getattr(minisbert, family)(folder)


@pytest.mark.parametrize("family", FAMILY_BUILDERS)
def test_every_family_refuses_a_modules_json_that_is_not_a_list(family_folder, tmp_path, family):
    import minisbert
    from minisbert.files.loading import ConfigError

    folder = family_folder(family, tmp_path)
    edit_json(folder / "modules.json", lambda modules: {"0": modules[0]})
    with pytest.raises(ConfigError, match="modules.json: expected a list of modules, found a dict"):
        getattr(minisbert, family)(folder)


@pytest.mark.parametrize("family", FAMILY_BUILDERS)
def test_every_family_checks_its_saved_settings(family_folder, tmp_path, family):
    import minisbert
    from minisbert.files.loading import ConfigError

    folder = family_folder(family, tmp_path)
    edit_json(folder / "config_sentence_transformers.json", lambda settings: {**settings, "prompts": ["query: "]})
    with pytest.raises(ConfigError, match="'prompts' must be an object of strings"):
        getattr(minisbert, family)(folder)
