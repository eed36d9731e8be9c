"""pytorch_model.bin is read by a restricted unpickler: a pickle that would run code is refused and nothing
runs. This file never imports torch, so it passes without torch installed."""

import os
import pickle
import zipfile

import pytest

from minisbert.loading import ModelLoadError
from minisbert.torch_checkpoint import UnsafeCheckpointError, load_torch_checkpoint


class RunsShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class WritesFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def zipped_like_torch(path, payload):
    """A zip laid out as torch.save writes one, with ``payload`` as its data.pkl."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return path


@pytest.mark.parametrize("payload_class", [RunsShellCommand, WritesFile])
def test_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path, payload_class):
    marker = tmp_path / "marker"
    path = zipped_like_torch(tmp_path / "pytorch_model.bin", {"weight": payload_class(marker)})
    with pytest.raises(UnsafeCheckpointError, match="refusing to load the checkpoint"):
        load_torch_checkpoint(path)
    assert not marker.exists()


def test_refusal_names_the_global_the_pickle_asked_for(tmp_path):
    path = zipped_like_torch(tmp_path / "pytorch_model.bin", RunsShellCommand(tmp_path / "marker"))
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os|nt)\.system"):
        load_torch_checkpoint(path)


def test_plain_pickle_file_is_not_unpickled(tmp_path):
    # the legacy (non-zip) format is refused before any byte of it is unpickled
    marker = tmp_path / "marker"
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(pickle.dumps(RunsShellCommand(marker)))
    with pytest.raises(ModelLoadError, match="not a zip-format torch checkpoint"):
        load_torch_checkpoint(path)
    assert not marker.exists()
