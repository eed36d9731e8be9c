"""Streaming a text file of any size into a zarr store of embeddings, chunk by chunk, resuming after a crash:
``minisbert encode --input big.txt --output emb.zarr [--workers N | --scheduler ADDRESS] [--chunk-size 10000]``,
and ``minisbert search --embeddings emb.zarr --corpus big.txt -q ...`` over such a store, chunk by chunk.

The input is read ``chunk_size`` lines at a time (memory: the chunks in flight, not the file). Each chunk's
embeddings are written to its rows of the zarr array as soon as they are done, and only then its "done" marker:
a chunk marked done is complete. The store's attributes record what made it: a fingerprint of the model (its
weights, tokenizer and module configs), the options that change the output, the minisbert version, and a
fingerprint of every input chunk. A run against an existing store checks them all, then encodes only the chunks
not done yet (resume), or refuses, saying what differs. Chunks are encoded in this process (no dask needed), or
on a Dask cluster: a local one started for the run (--workers N, closed however the run ends) or a running one
(--scheduler ADDRESS); the workers get the texts and send back embeddings, only this process touches the files.

Store layout (zarr v3): emb.zarr/ a group, attribute "minisbert" = the record above;
emb.zarr/embeddings (lines, dim), chunks (chunk_size, dim); emb.zarr/done (chunks,) uint8, one marker a chunk.
"""

import contextlib
import fnmatch
import functools
import hashlib
import itertools
import logging
import os
import shutil
import signal
import sys
import threading
import uuid
from pathlib import Path

import numpy as np

from minisbert.distributed.embedder import Embedder, model_name, process_model
from minisbert.kernels.topk import merge_top_k
from minisbert.files.loading import HUB_FILE_PATTERNS, HUB_SKIPPED_FOLDERS
from minisbert.util.similarity import SIMILARITY_FUNCTIONS
from minisbert.util._search import top_k_scores

DEFAULT_CHUNK_SIZE = 10_000
STORE_FORMAT = 1  # the layout above; a change of layout bumps it
SCHEDULER_TIMEOUT_SECONDS = 5
INSTALL_HINT = "pip install 'minisbert[dask]'"


def import_optional(module, purpose):
    """The module, or an ImportError saying which extra installs it."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as error:
        raise ImportError(f"{purpose} needs {module.split('.')[0]}: {INSTALL_HINT} ({error})") from None


# -- fingerprints: what a store was made from -----------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def model_fingerprint(folder):
    """sha256 of the files a model is read from (weights, tokenizer, every config and modules.json), by relative
    path and content: a copy elsewhere has the same fingerprint, a copy with other pooling another one."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        read = any(fnmatch.fnmatch(path.name, pattern) for pattern in HUB_FILE_PATTERNS)
        skipped = any(fnmatch.fnmatch(relative, pattern) for pattern in HUB_SKIPPED_FOLDERS)
        if path.is_file() and read and not skipped:
            digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
            with open(path, "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def chunk_fingerprint(lines):
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


def input_chunks(path, chunk_size):
    """The file's lines (newline removed, as `minisbert encode --input` reads them), chunk_size at a time."""
    with open(path, encoding="utf-8") as file:
        lines = (line.rstrip("\r\n") for line in file)
        while chunk := list(itertools.islice(lines, chunk_size)):
            yield chunk


def scan_input(path, chunk_size):
    """One pass over the file: its line count and the fingerprint of each chunk."""
    fingerprints, count = [], 0
    try:
        for chunk in input_chunks(path, chunk_size):
            fingerprints.append(chunk_fingerprint(chunk))
            count += len(chunk)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error})") from None
    if count == 0:
        raise ValueError(f"{path} has no lines to encode")
    return count, fingerprints


def store_record(embedder, lines, chunk_size, fingerprints, input_path):
    """The store's "minisbert" attribute: what made it, compared on every later run."""
    from minisbert import __version__

    loaded, encode_options = embedder.loaded_model(), embedder.encode_options
    return {
        "format": STORE_FORMAT,
        "minisbert_version": __version__,
        "model": {"name": embedder.model, "fingerprint": model_fingerprint(str(loaded.folder))},
        "options": {
            "quantize": embedder.quantize,
            "normalize_embeddings": bool(encode_options.get("normalize_embeddings", False)),
            # "" and None both mean no prompt
            "prompt": loaded.resolve_prompt(encode_options.get("prompt"), encode_options.get("prompt_name")) or None,
            "truncate_dim": encode_options.get("truncate_dim", loaded.truncate_dim),
            "precision": encode_options.get("precision", "float32"),
        },
        "input": {
            "path": str(input_path), "lines": lines, "chunk_size": chunk_size, "chunk_fingerprints": fingerprints
        },
    }


def record_differences(stored, current):
    """What differs between a store's record and this run's, one phrase each (input path and model name,
    informative only, are not compared)."""
    differences = []
    if stored.get("format") != current["format"]:
        differences.append(f"store format {stored.get('format')} (this minisbert writes {current['format']})")
    if stored.get("minisbert_version") != current["minisbert_version"]:
        differences.append(
            f"it was made by minisbert {stored.get('minisbert_version')}, this is {current['minisbert_version']}"
        )
    stored_model, model = stored.get("model", {}), current["model"]
    if stored_model.get("fingerprint") != model["fingerprint"]:
        differences.append(
            f"the model: the store's is {stored_model.get('name')!r} with fingerprint "
            f"{str(stored_model.get('fingerprint'))[:12]}, this run's {model['name']!r} with "
            f"{model['fingerprint'][:12]}"
        )
    stored_options = stored.get("options", {})
    for name, value in current["options"].items():
        if stored_options.get(name) != value:
            differences.append(f"option {name}: the store has {stored_options.get(name)!r}, this run {value!r}")
    stored_input, current_input = stored.get("input", {}), current["input"]
    chunk_size, lines = current_input["chunk_size"], current_input["lines"]
    if stored_input.get("chunk_size") != chunk_size:
        differences.append(f"--chunk-size: the store has {stored_input.get('chunk_size')}, this run {chunk_size}")
    elif stored_input.get("lines") != lines:
        differences.append(f"the input has {lines} lines, the store's had {stored_input.get('lines')}")
    if not differences:
        pairs = zip(stored_input["chunk_fingerprints"], current_input["chunk_fingerprints"])
        changed = [
            f"{index} (lines {index * chunk_size + 1}-{min((index + 1) * chunk_size, lines)})"
            for index, (old, new) in enumerate(pairs)
            if old != new
        ]
        if changed:
            shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            differences.append(f"the input's text: chunk {shown}")
    return differences


# -- the store ------------------------------------------------------------------------------------------------


def read_store_record(path, advice="choose another --output, or remove it"):
    """(zarr group, its record) of an existing store, or a ValueError saying it is not one, and ``advice``."""
    zarr = import_optional("zarr", "a .zarr output")
    try:
        group = zarr.open_group(str(path), mode="r+")
        record = group.attrs["minisbert"]
        group["embeddings"], group["done"]
    except (KeyError, OSError, zarr.errors.BaseZarrError) as error:
        raise ValueError(
            f"{path} exists and is not a minisbert embeddings store ({type(error).__name__}: {error}); {advice}"
        ) from None
    problem = record_problem(record)
    if problem:
        raise ValueError(f"{path} has an unreadable minisbert record ({problem}); {advice}")
    return group, record


# The record's sections and their fields' types, as store_record writes them (read_store_record checks them).
NONE = type(None)
RECORD_FIELDS = {
    "model": {"name": str, "fingerprint": str},
    "options": {"quantize": (str, NONE), "normalize_embeddings": bool, "prompt": (str, NONE),
                "truncate_dim": (int, NONE), "precision": str},
    "input": {"path": str, "lines": int, "chunk_size": int, "chunk_fingerprints": list},
}


def record_problem(record):
    """What makes a store's record unusable (a section or field missing or of another type), or None."""
    if not isinstance(record, dict):
        return f"a {type(record).__name__}, not an object"
    for section, fields in RECORD_FIELDS.items():
        values = record.get(section)
        if not isinstance(values, dict):
            return f"{section!r} is {values!r:.40}, not an object"
        for field, types in fields.items():
            value = values.get(field)
            if not isinstance(value, types) or isinstance(value, bool) and types in (int, (int, NONE)):
                return f"{section}.{field} is {value!r:.40}"
    lines, chunk_size, fingerprints = (record["input"][key] for key in ("lines", "chunk_size", "chunk_fingerprints"))
    if lines < 0 or chunk_size < 1 or len(fingerprints) != -(-lines // chunk_size):
        return f"{lines} lines in chunks of {chunk_size} do not make {len(fingerprints)} chunks"
    return None


def create_store(path, record, dimension, dtype):
    """A new store at path with every array and the record, built beside it and renamed into place, so a store
    either does not exist or is complete but for chunks not yet marked done."""
    zarr = import_optional("zarr", "a .zarr output")
    building = path.with_name(path.name + ".creating")
    chunk_size, lines = record["input"]["chunk_size"], record["input"]["lines"]
    try:
        shutil.rmtree(building, ignore_errors=True)  # left by a run killed while creating
        group = zarr.create_group(store=str(building), attributes={"minisbert": record})
        group.create_array("embeddings", shape=(lines, dimension), chunks=(chunk_size, dimension), dtype=dtype,
                           fill_value=0)
        group.create_array("done", shape=(len(record["input"]["chunk_fingerprints"]),), chunks=(1,), dtype="uint8",
                           fill_value=0)
        os.rename(building, path)
    except OSError as error:
        shutil.rmtree(building, ignore_errors=True)
        raise OSError(f"cannot create the output {path}: {error.strerror or error}") from None
    return zarr.open_group(str(path), mode="r+")


def existing_store(path, record):
    """The store at path if it was made from the same things as this run's record, None if there is none."""
    if not os.path.lexists(path):
        return None
    group, stored = read_store_record(path)
    differences = record_differences(stored, record)
    if differences:
        raise ValueError(
            f"{path} was made from something else, so it is not resumed: " + "; ".join(differences)
            + f". Run with the same input, model and options, or choose another --output (or remove {path})"
        )
    return group


def stored_chunk_size(path):
    """The chunk size recorded in an existing store, or None."""
    if not os.path.lexists(path):
        return None
    return read_store_record(path)[1].get("input", {}).get("chunk_size")


# -- encoding chunks here or on a Dask cluster ----------------------------------------------------------------


def encode_chunk(embedder, fingerprint, lines):
    """A chunk's embeddings, after checking that this process's copy of the model is the one recorded."""
    folder = str(embedder.loaded_model().folder)
    if model_fingerprint(folder) != fingerprint:
        raise ValueError(
            f"the model {embedder.model!r} at {folder} on this worker has fingerprint "
            f"{model_fingerprint(folder)[:12]}, not {fingerprint[:12]} as where the run started: "
            "give every worker the same copy"
        )
    return embedder(lines)


def encoded_here(embedder, fingerprint, chunks):
    """(index, embeddings) of each (index, lines), encoded one after another in this process."""
    for index, lines in chunks:
        yield index, encode_chunk(embedder, fingerprint, lines)


def encoded_on_cluster(client, embedder, fingerprint, chunks):
    """(index, embeddings) of each (index, lines) as the cluster finishes them. Chunks in flight: twice the
    cluster's worker threads, counted again as each chunk comes back (workers that join later get work, fewer
    workers hold less), so memory is bounded whatever the input's size; the next chunks are sent before this
    one is handed back to be written, so the workers never wait for the writing."""
    distributed = import_optional("distributed", "--workers / --scheduler")
    finished = distributed.as_completed()
    indices = {}  # future key -> chunk index

    def top_up():
        wanted = max(2, 2 * sum(client.nthreads().values()))
        for index, lines in itertools.islice(chunks, max(0, wanted - finished.count())):
            key = f"minisbert-chunk-{index}-{uuid.uuid4().hex}"  # keys are global to a shared scheduler
            future = client.submit(encode_chunk, embedder, fingerprint, lines, key=key)
            indices[future.key] = index
            finished.add(future)

    top_up()
    for future in finished:
        index = indices.pop(future.key)
        try:
            embeddings = future.result()
        except distributed.KilledWorker as error:  # the chunk took down several workers in turn
            raise ChildProcessError(f"chunk {index} of the input killed the workers that ran it ({error})") from None
        future.release()
        top_up()
        yield index, embeddings


@contextlib.contextmanager
def dask_client(workers, scheduler):
    """None (encode here), a client of a local cluster of `workers` processes (closed on leaving, however that
    happens), or a client connected to the scheduler at `scheduler`."""
    if workers is None and scheduler is None:
        yield None
        return
    distributed = import_optional("distributed", "--workers / --scheduler")
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=SCHEDULER_TIMEOUT_SECONDS)
        except (OSError, TimeoutError, ValueError) as error:
            raise ConnectionError(
                f"cannot reach the dask scheduler at {scheduler} within {SCHEDULER_TIMEOUT_SECONDS} s "
                f"({type(error).__name__}: {error}); is `dask scheduler` running there?"
            ) from None
        with client:
            yield client
        return
    with contextlib.ExitStack() as closing:  # leaving runs what is entered here in reverse
        closing.enter_context(log_filtered("tornado.application", not_a_cancel_before_start_error))
        with interrupts_ignored():
            cluster = closing.enter_context(distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ))
        client = closing.enter_context(distributed.Client(cluster))
        closing.callback(client.run, quiet_worker_logs, on_error="ignore")
        yield client


@contextlib.contextmanager
def interrupts_ignored():
    """Ignores SIGINT in here, and so in the processes started meanwhile, which keep it ignored (a handler would
    not survive their exec). A terminal's ^C reaches the whole process group: a local cluster's workers started
    in here leave it to this process, which closes the cluster and says how to resume (else each worker prints a
    KeyboardInterrupt traceback). A ^C during the start is lost. Only the main thread can change handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def quiet_worker_logs():
    """Run on a local cluster's workers before it is closed: being closed is what closing means, not news for
    the user; they would log their tasks cancelled and, 1 run in 15, a traceback for a heartbeat the closing
    scheduler cut off."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def log_filtered(name, keeps):
    """The logger keeps only the records for which keeps(record) is true, in here."""
    log = logging.getLogger(name)
    log.addFilter(keeps)
    try:
        yield
    finally:
        log.removeFilter(keeps)


def not_a_cancel_before_start_error(record):
    """False for one record: distributed's sync() (2026.8), given a ^C, cancels the call it waits for from a
    callback that fails with a NameError if the call had not started (nothing to cancel), and tornado logs that
    with a traceback."""
    error = record.exc_info[1] if record.exc_info else None
    return not (isinstance(error, NameError) and "'future'" in str(error))


def encode_file_to_store(
    input_path, output_path, model=None, encode_options=None, chunk_size=None, workers=None, scheduler=None,
    quantize=None,
):
    """Encodes the file's lines into the zarr store at output_path, resuming it if it holds some chunks already:
    returns (chunks encoded now, chunks found written, the zarr array). Messages and the progress bar go to
    standard error."""
    import_optional("zarr", "a .zarr output")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"the input {input_path} is not a file")
    if chunk_size is None:
        chunk_size = stored_chunk_size(output_path) or DEFAULT_CHUNK_SIZE
    if chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, got {chunk_size}")
    embedder = Embedder(model, quantize=quantize, **(encode_options or {}))
    empty = embedder.encode([])  # (0, dim) in the output dtype; loads the model and checks the options
    lines, fingerprints = scan_input(input_path, chunk_size)
    record = store_record(embedder, lines, chunk_size, fingerprints, input_path)
    store = existing_store(output_path, record)
    if store is not None and store["done"][:].all():
        workers = scheduler = None  # nothing left to encode: no cluster needed
    with dask_client(workers, scheduler) as client:  # reached (or started) before a new store is created
        if store is None:
            store = create_store(output_path, record, empty.shape[1], empty.dtype)
        return encode_missing_chunks(store, input_path, record, embedder, client)


def encode_missing_chunks(store, input_path, record, embedder, client):
    """Encodes the chunks the store has not marked done, here (client None) or on the cluster, writing each as
    it comes: (chunks encoded now, chunks found written, the zarr array)."""
    from tqdm.auto import tqdm

    lines, chunk_size, fingerprints = (record["input"][key] for key in ("lines", "chunk_size", "chunk_fingerprints"))
    embeddings, done = store["embeddings"], store["done"]
    todo = np.flatnonzero(done[:] == 0)
    written = len(fingerprints) - len(todo)
    if written:
        print(f"resuming: {written} of {len(fingerprints)} chunks already written", file=sys.stderr)
    todo_set = set(todo.tolist())
    chunks = (
        (index, lines_of_chunk)
        for index, lines_of_chunk in enumerate(input_chunks(input_path, chunk_size))
        if index in todo_set and check_unchanged(input_path, index, lines_of_chunk, fingerprints)
    )
    remaining = sum(min(chunk_size, lines - index * chunk_size) for index in todo.tolist())
    with tqdm(
        total=remaining, unit=" texts", desc=f"encoding {input_path.name}", file=sys.stderr, disable=remaining == 0
    ) as progress:
        model_print = record["model"]["fingerprint"]
        results = encoded_here(embedder, model_print, chunks) if client is None else encoded_on_cluster(
            client, embedder, model_print, chunks
        )
        encoded = 0
        for index, chunk_embeddings in results:
            start = index * chunk_size
            embeddings[start : start + len(chunk_embeddings)] = chunk_embeddings
            done[index] = 1  # only after the data: a marked chunk is complete
            progress.update(len(chunk_embeddings))
            encoded += 1
    if encoded != len(todo):
        raise ValueError(f"{input_path} got shorter while it was being encoded; run again to resume")
    return encoded, written, embeddings


def check_unchanged(input_path, index, lines, fingerprints):
    """True, or a ValueError if a chunk read now differs from the same chunk read when the run started."""
    if chunk_fingerprint(lines) != fingerprints[index]:
        raise ValueError(f"{input_path} changed while it was being encoded (chunk {index}); run again to resume")
    return True


# -- search over a store, chunk by chunk ----------------------------------------------------------------------


def search_store(store_path, corpus_path, queries, model=None, top_k=5, batch_size=32):
    """For each query, [(score, line number, line)] of its top_k lines of corpus_path, best first, using the
    embeddings in the store (made from that corpus, by that model, complete) one zarr chunk at a time."""
    store_path = Path(store_path)
    if not os.path.lexists(store_path):
        raise FileNotFoundError(f"no embeddings store at {store_path}; make it with minisbert encode --output")
    store, record = read_store_record(store_path, "give --embeddings the .zarr store `minisbert encode --output` wrote")
    done = store["done"][:]
    if not done.all():
        raise ValueError(
            f"{store_path} is incomplete ({int(done.sum())} of {len(done)} chunks written): run the same "
            "minisbert encode command again to finish it"
        )
    if record["options"]["precision"] != "float32":
        raise ValueError(f"{store_path} holds {record['options']['precision']} embeddings; search needs float32")
    model = model_name(model)
    loaded = process_model(model, record["options"].get("quantize"))  # queries as the corpus was encoded
    if model_fingerprint(str(loaded.folder)) != record["model"]["fingerprint"]:
        raise ValueError(
            f"{store_path} was made with the model {record['model']['name']!r}, not with {model!r} "
            f"(fingerprints differ): pass --model {record['model']['name']}"
        )
    chunk_size = record["input"]["chunk_size"]
    lines, fingerprints = scan_input(corpus_path, chunk_size)
    if fingerprints != record["input"]["chunk_fingerprints"]:
        raise ValueError(f"{corpus_path} is not the input {store_path} was made from (its text differs)")
    query_embeddings = loaded.encode(
        queries, batch_size=batch_size, normalize_embeddings=record["options"]["normalize_embeddings"],
        truncate_dim=record["options"]["truncate_dim"],
    )  # (queries, dim)
    score_function = SIMILARITY_FUNCTIONS[loaded.similarity_fn_name][0]
    embeddings = store["embeddings"]
    best_values = np.empty((len(queries), 0), dtype=np.float32)
    best_indices = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, lines, chunk_size):
        values, indices = top_k_scores(
            query_embeddings, embeddings[start : start + chunk_size], corpus_chunk_size=chunk_size, top_k=top_k,
            score_function=score_function,
        )
        best_values = np.concatenate([best_values, values], axis=1)  # (queries, <= 2 top_k)
        best_indices = np.concatenate([best_indices, indices + start], axis=1)
        best_values, best_indices = merge_top_k(best_values, best_indices, top_k)
    wanted = set(best_indices.ravel().tolist())
    texts = {}
    for start, chunk in zip(itertools.count(0, chunk_size), input_chunks(corpus_path, chunk_size)):
        texts.update((row, chunk[row - start]) for row in wanted if start <= row < start + len(chunk))
    return [
        [(score, row + 1, texts[row]) for score, row in zip(row_values.tolist(), row_indices.tolist())]
        for row_values, row_indices in zip(best_values, best_indices)
    ]
