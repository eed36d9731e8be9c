"""`minisbert encode --input FILE --output NAME.zarr` (minisbert.distributed.streaming): the store equals in-process
encode (within 1e-6) and records what made it; a run killed with SIGKILL resumes, encoding only the missing chunks,
and its local Dask cluster dies with it; a store made from another input, model or options is refused and left as
it was; user errors are one clear line, never a traceback; `minisbert search --embeddings` searches a store."""

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import zarr
from inputs import FEW_HARD_TEXTS

from minisbert import __version__, util
from minisbert.cli import main
from minisbert import Embedder
from minisbert.distributed.streaming import (
    encode_chunk, log_filtered, model_fingerprint, not_a_cancel_before_start_error,
)

# One line each (no newline inside): empty, whitespace, accents, Korean, Japanese, emoji, specials, a long text.
LINES = [text.replace("\n", " ") for text in FEW_HARD_TEXTS] + [f"line {i}: " + "word " * (i % 11) for i in range(33)]


def run_cli(capsys, *arguments):
    """(exit message or None, stdout, stderr) of `minisbert ARGUMENTS` run in this process."""
    try:
        main([str(argument) for argument in arguments])
        message = None
    except SystemExit as exit:
        message = str(exit.code)
    captured = capsys.readouterr()
    return message, captured.out, captured.err


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def store_of_chunks_of_8(tmp_path_factory):
    """A store of LINES in chunks of 8 lines, made once: tests copy it."""
    folder = tmp_path_factory.mktemp("store")
    (folder / "corpus.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    main(["encode", "-i", str(folder / "corpus.txt"), "-o", str(folder / "emb.zarr"), "--chunk-size", "8"])
    return folder / "emb.zarr"


def read_store(path):
    group = zarr.open_group(str(path), mode="r")
    return group["embeddings"][:], group["done"][:], group.attrs["minisbert"]


def test_store_equals_encode_and_records_what_made_it(capsys, model, corpus, tmp_path):
    store = tmp_path / "emb.zarr"
    options = ["--normalize", "--truncate-dim", 128, "--prompt", "passage: ", "--batch-size", 5]
    message, out, err = run_cli(capsys, "encode", "--input", corpus, "--output", store, "--chunk-size", 7, *options)
    assert message is None, message
    assert f"wrote {len(LINES)} x 128 float32 embeddings to {store} (7 chunks encoded now, 0 already written)" in out
    assert "texts/s" in err  # the progress bar
    embeddings, done, record = read_store(store)
    expected = model.encode(LINES, normalize_embeddings=True, truncate_dim=128, prompt="passage: ")
    np.testing.assert_allclose(embeddings, expected, rtol=0, atol=1e-6)
    assert done.tolist() == [1] * 7
    assert zarr.open_group(str(store))["embeddings"].chunks == (7, 128)
    assert record["minisbert_version"] == __version__
    assert record["model"]["fingerprint"] == model_fingerprint(str(model.folder))
    assert record["options"] == {
        "quantize": None, "normalize_embeddings": True, "prompt": "passage: ", "truncate_dim": 128, "precision": "float32"
    }
    assert record["input"]["lines"] == len(LINES) and record["input"]["chunk_size"] == 7
    assert len(set(record["input"]["chunk_fingerprints"])) == 7


def test_binary_precision_store(capsys, model, corpus, tmp_path):
    store = tmp_path / "bits.zarr"
    message, _, _ = run_cli(capsys, "encode", "-i", corpus, "-o", store, "--chunk-size", 10, "--precision", "ubinary")
    assert message is None, message
    embeddings, _, record = read_store(store)
    assert record["options"]["precision"] == "ubinary"
    np.testing.assert_array_equal(embeddings, model.encode(LINES, precision="ubinary"))


def test_resume_encodes_only_the_chunks_not_marked_done(capsys, model, corpus, tmp_path):
    store = tmp_path / "emb.zarr"
    assert run_cli(capsys, "encode", "-i", corpus, "-o", store, "--chunk-size", 6)[0] is None
    group = zarr.open_group(str(store), mode="r+")
    group["embeddings"][12:18] = 7.0  # a chunk written, killed before its marker: must be written again
    group["done"][2] = 0
    group["embeddings"][30:36] = 0.0
    group["done"][5] = 0
    message, out, err = run_cli(capsys, "encode", "-i", corpus, "-o", store)  # the store's chunk size is kept
    assert message is None, message
    assert "resuming: 6 of 8 chunks already written" in err
    assert "(2 chunks encoded now, 6 already written)" in out
    np.testing.assert_allclose(read_store(store)[0], model.encode(LINES), rtol=0, atol=1e-6)
    message, out, err = run_cli(capsys, "encode", "-i", corpus, "-o", store)
    assert "resuming: 8 of 8 chunks already written" in err and "(0 chunks encoded now, 8 already written)" in out


def stop_part_way(command, store, signal_number, chunks_done, whole_group=False):
    """Runs command until the store has chunks_done chunks marked done, then sends it signal_number (to its whole
    process group if whole_group, as a terminal's ^C does): (its exit code, its standard error, the chunks done
    then); checks that every process it started is gone after."""
    run = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if store.exists() and zarr.open_group(str(store), mode="r")["done"][:].sum() >= chunks_done:
            break
        time.sleep(0.05)
    children = run.children(recursive=True)
    assert run.poll() is None, "the run ended before it could be stopped"
    assert children  # the local cluster's worker processes
    if whole_group:
        os.killpg(run.pid, signal_number)
    else:
        run.send_signal(signal_number)
    _, error = run.communicate(timeout=60)
    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"processes of the stopped run's cluster still running: {alive}"
    return run.returncode, error, int(zarr.open_group(str(store), mode="r")["done"][:].sum())


def test_interrupted_and_killed_cluster_runs_resume_and_their_workers_end(model, tmp_path):
    corpus = tmp_path / "big.txt"
    lines = [f"sentence {i} about " + "things " * (i % 17) for i in range(400)]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = tmp_path / "emb.zarr"
    command = [sys.executable, "-m", "minisbert", "encode", "-i", str(corpus), "-o", str(store), "--chunk-size", "20"]

    code, error, interrupted_at = stop_part_way([*command, "--workers", "2"], store, signal.SIGINT, 1, True)
    assert code == 1
    said = [line for line in error.replace("\r", "\n").splitlines() if line.strip()]
    progress = [line for line in said if line.startswith(f"encoding {corpus.name}: ")]
    # nothing but the progress bar and one line: no worker's KeyboardInterrupt, no log of the cluster's closing
    assert said == [*progress, f"minisbert: interrupted; run the same command again to resume {store}"], error
    code, error, killed_at = stop_part_way([*command, "--workers", "2"], store, signal.SIGKILL, interrupted_at + 2)
    assert code == -signal.SIGKILL
    assert f"resuming: {interrupted_at} of 20 chunks already written" in error
    assert 1 <= interrupted_at < killed_at < 20

    last = subprocess.run(command, capture_output=True, text=True, timeout=300)  # resumed in this process
    assert last.returncode == 0, last.stderr
    written = int(re.search(r"resuming: (\d+) of 20 chunks already written", last.stderr).group(1))
    assert written >= killed_at
    assert f"({20 - written} chunks encoded now, {written} already written)" in last.stdout
    embeddings, done, _ = read_store(store)
    assert done.all()
    np.testing.assert_allclose(embeddings, model.encode(lines), rtol=0, atol=1e-6)


def test_the_only_log_record_dropped_is_distributed_cancelling_a_call_not_started(caplog):
    """The race behind it is rare (a ^C between sync() queueing a call and starting it), so the filter is
    checked on records: that one dropped, any other error kept."""
    def record_of(error):
        try:
            raise error
        except Exception:
            logging.getLogger("tornado.application").exception("Exception in callback")

    with caplog.at_level(logging.ERROR, logger="tornado.application"):
        with log_filtered("tornado.application", not_a_cancel_before_start_error):
            record_of(NameError("cannot access free variable 'future' where it is not associated with a value"))
            record_of(NameError("name 'other' is not defined"))
            record_of(RuntimeError("'future'"))
        record_of(NameError("cannot access free variable 'future' where it is not associated with a value"))
    assert [str(record.exc_info[1]) for record in caplog.records] == [
        "name 'other' is not defined", "'future'", "cannot access free variable 'future' where it is not associated "
        "with a value",
    ]


def linked_model_copy(source, destination, pooling=None):
    """A copy of a model folder (the weights linked, not copied), with another pooling mode if given."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("*.safetensors"))
    (destination / "model.safetensors").symlink_to(source / "model.safetensors")
    if pooling:
        config = destination / "1_Pooling" / "config.json"
        text = config.read_text().replace('"pooling_mode_mean_tokens": true', '"pooling_mode_mean_tokens": false')
        key = f'"pooling_mode_{pooling}_token"'
        config.write_text(text.replace(f"{key}: false", f"{key}: true"))
    return destination


@pytest.mark.parametrize(
    "change, difference",
    [
        (["--normalize"], "option normalize_embeddings: the store has False, this run True"),
        (["--truncate-dim", "64"], "option truncate_dim: the store has None, this run 64"),
        (["--prompt-name", "query"], None),  # the model's query prompt is empty: the same output, accepted
        (["--prompt", "query: "], "option prompt: the store has None, this run 'query: '"),
        (["--precision", "binary"], "option precision: the store has 'float32', this run 'binary'"),
        (["--quantize", "int8"], "option quantize: the store has None, this run 'int8'"),
        (["--chunk-size", "5"], "--chunk-size: the store has 8, this run 5"),
        ("edited line", "the input's text: chunk 2 (lines 17-24)"),
        ("appended line", f"the input has {len(LINES) + 1} lines, the store's had {len(LINES)}"),
        ("cls pooling", "the model: the store's is"),
        ("identical model copy", None),
    ],
)
def test_a_store_made_from_something_else_is_refused_and_kept(
    capsys, default_model_folder, store_of_chunks_of_8, corpus, tmp_path, change, difference
):
    store = tmp_path / "emb.zarr"
    shutil.copytree(store_of_chunks_of_8, store)
    group = zarr.open_group(str(store), mode="r+")
    group["done"][4] = 0  # one chunk left to do, so an accepted run has something to resume
    before = read_store(store)
    arguments = ["encode", "-i", corpus, "-o", store]
    if change == "edited line":
        corpus.write_text(corpus.read_text(encoding="utf-8").replace("line 9:", "line nine:"), encoding="utf-8")
    elif change == "appended line":
        corpus.write_text(corpus.read_text(encoding="utf-8") + "one more\n", encoding="utf-8")
    elif change in ("cls pooling", "identical model copy"):
        pooling = "cls" if change == "cls pooling" else None
        arguments += ["--model", linked_model_copy(default_model_folder, tmp_path / "copy", pooling)]
    else:
        arguments += change
    message, out, _ = run_cli(capsys, *arguments)
    if difference is None:
        assert message is None, message
        assert "(1 chunks encoded now, 5 already written)" in out
        return
    assert message.startswith(f"minisbert: {store} was made from something else, so it is not resumed: ")
    assert difference in message
    after = read_store(store)
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1].tolist() == before[1].tolist() and after[2] == before[2]


@pytest.mark.parametrize(
    "edit, error", [("edit line 20", "changed while it was being encoded (chunk 2)"), ("cut", "got shorter")]
)
def test_an_input_changed_during_the_run_stops_it(capsys, corpus, tmp_path, monkeypatch, edit, error):
    from minisbert.distributed import streaming

    scan_input = streaming.scan_input

    def scan_then_edit(path, chunk_size):
        scanned = scan_input(path, chunk_size)
        lines = corpus.read_text(encoding="utf-8").splitlines()
        lines = lines[:19] + ["edited"] + lines[20:] if edit == "edit line 20" else lines[:32]
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return scanned

    monkeypatch.setattr(streaming, "scan_input", scan_then_edit)
    message, _, _ = run_cli(capsys, "encode", "-i", corpus, "-o", tmp_path / "emb.zarr", "--chunk-size", 8)
    assert message.startswith(f"minisbert: {corpus} ") and error in message
    done = read_store(tmp_path / "emb.zarr")[1]
    assert done.tolist() == ([1, 1, 0, 0, 0, 0] if edit == "edit line 20" else [1, 1, 1, 1, 0, 0])


def test_user_errors_are_one_clear_line(capsys, corpus, tmp_path):
    def error(*arguments):
        message, _, _ = run_cli(capsys, *arguments)
        assert message is not None and message.startswith("minisbert: "), message
        return message

    store = tmp_path / "emb.zarr"
    assert "missing.txt is not a file" in error("encode", "-i", tmp_path / "missing.txt", "-o", store)
    assert "cannot create the output" in error("encode", "-i", corpus, "-o", corpus / "emb.zarr")  # parent is a file
    (tmp_path / "notes.zarr").write_text("not a store")
    assert "notes.zarr exists and is not a minisbert embeddings store" in error(
        "encode", "-i", corpus, "-o", tmp_path / "notes.zarr"
    )
    wrong_store = error("search", "--embeddings", corpus, "--corpus", corpus, "-q", "a query")
    assert "is not a minisbert embeddings store" in wrong_store and "--output" in wrong_store
    assert "remove it" not in wrong_store  # the user's corpus: never advise deleting it
    assert "pass --input FILE" in error("encode", "a sentence", "-o", store)
    assert "pass --output NAME.zarr" in error("encode", "-i", corpus, "-o", tmp_path / "e.npy", "--workers", "2")
    assert "--chunk-size must be at least 1" in error("encode", "-i", corpus, "-o", store, "--chunk-size", "0")
    assert "--workers must be at least 1" in error("encode", "-i", corpus, "-o", store, "--workers", "0")
    assert "precision='int8' cannot be computed batch by batch" in error(
        "encode", "-i", corpus, "-o", store, "--precision", "int8"
    )
    (tmp_path / "empty.txt").write_text("")
    assert "has no lines to encode" in error("encode", "-i", tmp_path / "empty.txt", "-o", store)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    assert "latin1.txt is not UTF-8 text" in error("encode", "-i", tmp_path / "latin1.txt", "-o", store)
    assert not store.exists() and not list(tmp_path.glob("*.creating"))


def test_an_unreachable_scheduler_is_a_clear_error_within_seconds(capsys, corpus, tmp_path):
    with socket.socket() as probe:  # a free port: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    address = f"tcp://127.0.0.1:{port}"
    message, _, _ = run_cli(capsys, "encode", "-i", corpus, "-o", tmp_path / "e.zarr", "--scheduler", address)
    assert time.monotonic() - started < 20
    assert message.startswith(f"minisbert: cannot reach the dask scheduler at {address} within 5 s")
    assert not (tmp_path / "e.zarr").exists()


def test_npy_output_takes_the_new_options(capsys, model, corpus, tmp_path):
    message, out, _ = run_cli(capsys, "encode", "-i", corpus, "-o", tmp_path / "e.npy", "--truncate-dim", 32)
    assert message is None, message
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), model.encode(LINES, truncate_dim=32), rtol=0, atol=1e-6)


def parse_hits(out):
    """[[(score, line number), ...] per query] from search's output."""
    hits = []
    for line in out.splitlines():
        if line.startswith("query: "):
            hits.append([])
        elif match := re.match(r"\s+\d+\. (-?[\d.]+)  line (\d+): ", line):
            hits[-1].append((float(match.group(1)), int(match.group(2))))
    return hits


def test_search_over_a_store_chunk_by_chunk(capsys, model, corpus, tmp_path):
    store = tmp_path / "emb.zarr"
    assert run_cli(capsys, "encode", "-i", corpus, "-o", store, "--chunk-size", 4)[0] is None
    queries = ["what is the weather like", "emoji", "word word word"]
    message, out, _ = run_cli(
        capsys, "search", "--embeddings", store, "--corpus", corpus, *[f"--query={q}" for q in queries], "-k", 6
    )
    assert message is None, message
    expected = util.semantic_search(model.encode(queries), model.encode(LINES), top_k=6)
    # "" and whitespace tokenize alike: their scores differ by the store's batches' rounding (1e-7) only, so hits
    # of equal printed score are compared in line order
    expected = [sorted((-round(hit["score"], 4), hit["corpus_id"] + 1) for hit in hits) for hits in expected]
    printed = parse_hits(out)
    assert all([score for score, _ in hits] == sorted((score for score, _ in hits), reverse=True) for hits in printed)
    assert [sorted((-score, line) for score, line in hits) for hits in printed] == expected

    corpus.write_text(corpus.read_text(encoding="utf-8") + "extra line\n", encoding="utf-8")
    message, _, _ = run_cli(capsys, "search", "--embeddings", store, "--corpus", corpus, "-q", "x")
    assert message == f"minisbert: {corpus} is not the input {store} was made from (its text differs)"
    message, _, _ = run_cli(
        capsys, "search", "--embeddings", store, "--corpus", corpus, "-q", "x",
        "--model", linked_model_copy(model.folder, tmp_path / "copy", pooling="cls"),
    )
    assert message.startswith(f"minisbert: {store} was made with the model 'sentence-transformers/all-MiniLM-L6-v2'")
    zarr.open_group(str(store), mode="r+")["done"][1] = 0
    message, _, _ = run_cli(capsys, "search", "--embeddings", store, "--corpus", corpus, "-q", "x")
    assert "is incomplete (10 of 11 chunks written)" in message


def test_a_worker_with_another_copy_of_the_model_refuses_its_chunk(model):
    with pytest.raises(ValueError, match=r"on this worker has fingerprint \w{12}, not 0123456789ab as where the run"):
        encode_chunk(Embedder(str(model.folder)), "0123456789ab" * 4, ["a line"])
    fingerprint = model_fingerprint(str(model.folder))
    np.testing.assert_allclose(
        encode_chunk(Embedder(str(model.folder)), fingerprint, ["a line"]), model.encode(["a line"]), rtol=0, atol=0
    )


def test_search_over_a_store_with_rerank_prints_what_search_rerank_prints(capsys, tiny_cross_encoder, tmp_path):
    cross_encoder_folder = tiny_cross_encoder("bert", 1)[0]
    # 12 lines, none empty: both searches number the same lines, and retrieve them all (3 hits x 4) to rerank.
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES[10:22]) + "\n", encoding="utf-8")
    store = tmp_path / "emb.zarr"
    assert run_cli(capsys, "encode", "-i", corpus, "-o", store, "--chunk-size", 5)[0] is None
    query = ["--query", "word word", "--query", "line 7", "-k", "3", "--rerank", cross_encoder_folder]
    message, from_store, _ = run_cli(capsys, "search", "--embeddings", store, "--corpus", corpus, *query)
    assert message is None, message
    message, from_cache, _ = run_cli(capsys, "search", "--corpus", corpus, *query)
    assert message is None, message
    assert len(parse_hits(from_store)[0]) == 3
    assert from_store == from_cache


@pytest.mark.parametrize(
    "blocked, extra, outcome",
    [
        (["dask", "distributed"], [], "wrote 43 x 384 float32 embeddings"),
        (["zarr"], [], "minisbert: a .zarr output needs zarr: pip install 'minisbert[dask]'"),
        (["distributed"], ["--workers", "2"], "minisbert: --workers / --scheduler needs distributed: pip install"),
    ],
)
def test_what_streaming_needs_installed(corpus, tmp_path, blocked, extra, outcome):
    """In this process a zarr store needs zarr but no dask; a cluster needs dask: else one line naming the extra."""
    store = tmp_path / "emb.zarr"
    script = (
        f"import sys\nfor name in {blocked!r}: sys.modules[name] = None  # import of it fails\n"
        f"from minisbert.cli import main\nmain({['encode', '-i', str(corpus), '-o', str(store), *extra]!r})"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert outcome in run.stdout + run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert store.exists() == (run.returncode == 0)
