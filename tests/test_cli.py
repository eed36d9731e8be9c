"""The ``minisbert`` command: encode and similarity, sentences from arguments, a file or standard input."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]


def run(*arguments, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "minisbert", *arguments], input=stdin, capture_output=True, text=True, timeout=300
    )


def test_encode_prints_one_json_line_per_sentence(model):
    result = run("encode", *SENTENCES[:2])
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["sentence"] for line in lines] == SENTENCES[:2]
    np.testing.assert_allclose([line["embedding"] for line in lines], model.encode(SENTENCES[:2]), atol=1e-7)


def test_encode_reads_standard_input_and_writes_npy(model, tmp_path):
    output = tmp_path / "embeddings.npy"
    result = run("encode", "--output", str(output), stdin="\n".join(SENTENCES) + "\n")
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(output), model.encode(SENTENCES), atol=1e-6)  # another process's BLAS


def test_encode_reads_a_file_with_options(model, tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(SENTENCES), encoding="utf-8")
    result = run("encode", "--input", str(path), "--batch-size", "2", "--normalize", "--output", str(tmp_path / "e.npy"))
    assert result.returncode == 0, result.stderr
    expected = model.encode(SENTENCES, batch_size=2, normalize_embeddings=True)
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), expected, atol=1e-6)  # another process's BLAS


def test_similarity_prints_the_embeddings_and_the_matrix(model):
    result = run("similarity", *SENTENCES)
    assert result.returncode == 0, result.stderr
    embeddings = model.encode(SENTENCES)
    scores = model.similarity(embeddings, embeddings)
    assert "embeddings: (3, 384) float32" in result.stdout
    assert f"{scores[0, 1]:9.4f}" in result.stdout and f"{scores[1, 2]:9.4f}" in result.stdout


def test_console_script_is_installed():
    executable = shutil.which("minisbert", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert executable is not None
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "similarity" in result.stdout


@pytest.mark.parametrize("arguments", [["encode", "--model", "/no/such/model", "hi"], ["encode", "--batch-size", "0", "hi"]])
def test_errors_are_reported_without_a_traceback(arguments):
    result = run(*arguments)
    assert result.returncode != 0
    assert result.stderr.startswith("minisbert: ") and "Traceback" not in result.stderr


def test_an_interrupt_is_one_line(monkeypatch):
    import minisbert.cli

    def interrupted(arguments):
        raise KeyboardInterrupt

    monkeypatch.setattr(minisbert.cli, "read_sentences", interrupted)
    try:
        minisbert.cli.main(["encode", "hi"])
        stopped = None
    except (SystemExit, KeyboardInterrupt) as stop:  # caught here: a KeyboardInterrupt would stop pytest itself
        stopped = stop
    assert isinstance(stopped, SystemExit) and stopped.code == "minisbert: interrupted", repr(stopped)


def test_empty_standard_input_is_an_error():
    result = run("encode", stdin="")
    assert result.returncode != 0 and "no sentences" in result.stderr


def test_a_bug_keeps_its_traceback_and_a_user_error_is_one_line(monkeypatch):
    from minisbert import cli

    def broken(arguments):
        raise TypeError("unsupported operand type(s)")  # what a bug raises: not the user's mistake

    monkeypatch.setattr(cli, "load_model", broken)
    with pytest.raises(TypeError, match="unsupported operand"):
        cli.main(["encode", "hi"])

    def refuses(arguments):
        raise ValueError("the model says no")  # minisbert's own errors are ValueErrors

    monkeypatch.setattr(cli, "load_model", refuses)
    with pytest.raises(SystemExit, match="^minisbert: the model says no$"):
        cli.main(["encode", "hi"])


def test_shared_options_mean_the_same_in_every_command():
    from minisbert.cli import build_parser

    parser = build_parser()
    for argv in (["encode", "a"], ["similarity", "a"], ["search", "--corpus", "c", "-q", "q"], ["evaluate", "p"]):
        arguments = parser.parse_args([*argv, "-m", "folder", "--batch-size", "3"])
        assert (arguments.model, arguments.batch_size) == ("folder", 3), argv
    assert parser.parse_args(["encode", "a"]).batch_size == 32
    assert parser.parse_args(["train", "--data", "d", "--columns", "a,b,c", "-o", "out"]).batch_size == 8


def test_every_command_is_in_the_readme():
    import argparse

    from minisbert.cli import build_parser
    from inputs import REPO

    subcommands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert {"encode", "search", "train", "info"} <= set(subcommands.choices)
    assert [name for name in subcommands.choices if f"minisbert {name}" not in readme] == []
