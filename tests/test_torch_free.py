"""minisbert runs without torch: importing it and encoding pulls in no torch, transformers or
sentence_transformers (checked in a fresh interpreter, where the test process's imports can't hide it)."""

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
"""


def test_import_and_encode_import_no_torch():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "imported: []" in result.stdout


def test_the_check_would_see_torch_if_it_were_imported():
    result = subprocess.run(
        [sys.executable, "-c", "import torch\n" + CHECK], capture_output=True, text=True, timeout=300
    )
    assert "imported: ['torch']" in result.stdout
