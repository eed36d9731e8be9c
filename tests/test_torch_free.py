"""minisbert runs without torch: importing it and encoding pulls in no torch, transformers or
sentence_transformers, nor any side room (training, evaluation, plots, streaming, Dask, the command line) or
its optional dependencies (checked in a fresh interpreter, where the test process's imports can't hide it).
tests/test_layout.py checks the same rules statically, on the source."""

import subprocess
import sys

CHECK = """
import sys
import minisbert
model = minisbert.SentenceTransformer()
embeddings = model.encode(["a sentence", "another one"])
model.similarity(embeddings, embeddings)
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "transformers", "sentence_transformers"})
print("imported:", heavy)
side_rooms = ("minisbert.training", "minisbert.evaluation", "minisbert.inspection.plots", "minisbert.cli",
              "minisbert.dask", "minisbert.distributed.streaming")
optional = {"matplotlib", "dask", "distributed", "zarr"}
print("side rooms imported:", sorted(name for name in sys.modules
                                     if name.startswith(side_rooms) or name.split(".")[0] in optional))
"""


def test_import_and_encode_import_no_torch_and_no_side_room():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "imported: []" in result.stdout
    assert "side rooms imported: []" in result.stdout


def test_the_check_would_see_torch_or_a_side_room_if_it_were_imported():
    result = subprocess.run(
        [sys.executable, "-c", "import torch, minisbert.training.losses\n" + CHECK], capture_output=True, text=True,
        timeout=300,
    )
    assert "imported: ['torch']" in result.stdout
    assert "side rooms imported: ['minisbert.training', 'minisbert.training." in result.stdout


TRAINING_CHECK = """
import sys
import minisbert
model = minisbert.SentenceTransformer()
from minisbert.training import losses
from minisbert.training.trainer import InputExample, fit
examples = [InputExample(["a sentence", "another one"], 0.8), InputExample(["a cat", "a car"], 0.1)]
fit(model, examples, losses.CoSENTLoss(model), batch_size=2, show_progress_bar=False)
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "transformers", "sentence_transformers"})
print("imported:", heavy)
"""


def test_training_imports_no_torch():
    result = subprocess.run([sys.executable, "-c", TRAINING_CHECK], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "imported: []" in result.stdout
