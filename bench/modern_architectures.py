"""Today's architectures at real size, minisbert against sentence-transformers, in one run: ModernBERT-base,
Qwen3-0.6B (Qwen3-Embedding-0.6B's shapes) and EmbeddingGemma-300m, with random weights (nothing can be
downloaded here) and the real models' module chains, built by tests/tiny_models.py with their real
configurations. For each model and framework, in a fresh process: load time, sentences/s at batch 1 and at
batch 32, and peak RSS after importing the framework and at the end, against the float32 weight size (the goal:
peak - imports <= 1.3 x weights + the batch's activations; minisbert memory-maps float32 weights). Each model runs
``--rounds`` rounds, the two frameworks' processes alternating (minisbert first in even rounds, second in odd
ones); every figure is the median over the rounds, and each round's speed ratios are printed too: this machine's
speed drifts by 10-20% over minutes, which a single run of each framework, one after the other, took for a ratio.

    python bench/modern_architectures.py                 # all three, 64 texts at batch 1, 256 at batch 32, 3 rounds
    python bench/modern_architectures.py --quick         # ModernBERT-base only, 8 and 64 texts, 1 round
    python bench/modern_architectures.py --models qwen3-0.6b --texts 32 128 --rounds 5

Writes bench/modern_architectures.json and prints a table (paste it into bench/RESULTS.md).
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = Path("/tmp/minisbert-bench-modern")

# name -> (tests/tiny_models.py architecture, build options, the real model's configuration)
MODELS = {
    "modernbert-base": (
        "modernbert",
        dict(pooling_mode="mean", normalize=True),
        dict(vocab_size=50368, hidden_size=768, intermediate_size=1152, num_hidden_layers=22, num_attention_heads=12,
             local_attention=128, max_position_embeddings=8192, layer_types=None),
    ),
    "qwen3-0.6b": (
        "qwen3",
        dict(pooling_mode="lasttoken", normalize=True, padding_side="left"),
        dict(vocab_size=151669, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
             num_key_value_heads=8, head_dim=128, max_position_embeddings=32768, layer_types=None),
    ),
    "embeddinggemma-300m": (
        "gemma3_text",
        dict(pooling_mode="mean", dense=[(3072, "Identity", False), (768, "Identity", False)], normalize=True),
        dict(vocab_size=262144, hidden_size=768, intermediate_size=1152, num_hidden_layers=24, num_attention_heads=3,
             num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256, sliding_window=512,
             max_position_embeddings=2048, layer_types=None),
    ),
}
SENTENCES = [
    "The weather is lovely today and the park is full of people walking their dogs.",
    "Sentence embeddings map text to vectors so that similar meanings land close together.",
    "He drove to the stadium, but the match had been cancelled because of the storm.",
    "A man is playing a guitar on the street while a small crowd gathers around him.",
    "Le chat dort sur le canapé pendant que la pluie tombe doucement dehors.",
    "Retrieval models rank millions of passages for each query in a few milliseconds.",
]


def texts(count):
    # varied lengths: 1 to 4 sentences each, so that batches mix short and long texts; numbered so that every text
    # is distinct (minisbert encodes a repeated text once, which would flatter it)
    return [f"{i}. " + " ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(1 + i % 4)) for i in range(count)]


def build(name):
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import build_sentence_transformer

    folder = BUILD / name
    if not (folder / "modules.json").is_file():
        architecture, options, config = MODELS[name]
        build_sentence_transformer(folder, architecture, config_overrides=config, max_seq_length=512, **options)
    return folder


def peak_rss():
    """This process's peak resident memory in bytes: VmHWM, which (unlike ru_maxrss) a child does not inherit
    from the process that started it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def weight_bytes(folder):
    return sum(path.stat().st_size for path in folder.rglob("*.safetensors") if "-transformers" not in str(path))


RUN = """
import json, sys, time
framework, folder, batch1, batch32 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, {bench!r})
from modern_architectures import peak_rss, texts
if framework == "minisbert":
    from minisbert import SentenceTransformer
    import minisbert.architectures, minisbert.kernels.masked_attention  # everything but the model
else:
    from sentence_transformers import SentenceTransformer
    import transformers, torch
import_rss = peak_rss()
start = time.perf_counter()
model = SentenceTransformer(folder) if framework == "minisbert" else SentenceTransformer(folder, device="cpu")
load = time.perf_counter() - start
loaded_rss = peak_rss()
model.encode(texts(4), batch_size=4)  # warm-up (numba compilation, torch's first call)
result = {{"load_s": load, "import_rss": import_rss, "loaded_peak_rss": loaded_rss}}
for key, count, batch_size in (("batch_1", batch1, 1), ("batch_32", batch32, 32)):
    start = time.perf_counter()
    model.encode(texts(count), batch_size=batch_size)
    result[key] = count / (time.perf_counter() - start)
result["peak_rss"] = peak_rss()
print(json.dumps(result))
"""


def run(framework, folder, batch1, batch32):
    output = subprocess.run(
        [sys.executable, "-c", RUN.format(bench=str(REPO / "bench")), framework, str(folder)]
        + [str(batch1), str(batch32)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


FRAMEWORKS = ("minisbert", "sentence-transformers")


def interleaved_runs(folder, rounds, batch1, batch32):
    """framework -> its ``rounds`` results, the two frameworks' processes alternating in order round by round."""
    runs = {framework: [] for framework in FRAMEWORKS}
    for round_index in range(rounds):
        for framework in FRAMEWORKS if round_index % 2 == 0 else FRAMEWORKS[::-1]:
            runs[framework].append(run(framework, folder, batch1, batch32))
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--texts", nargs=2, type=int, default=(64, 256), metavar=("BATCH_1", "BATCH_32"))
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each framework (median taken)")
    parser.add_argument("--quick", action="store_true", help="ModernBERT-base only, 8 and 64 texts, 1 round")
    arguments = parser.parse_args()
    models, (batch1, batch32), rounds = arguments.models, arguments.texts, arguments.rounds
    if arguments.quick:
        models, batch1, batch32, rounds = ["modernbert-base"], 8, 64, 1
    results = {}
    for name in models:
        folder = build(name)
        runs = interleaved_runs(folder, rounds, batch1, batch32)
        results[name] = {"weights_bytes": weight_bytes(folder), "rounds": runs}
        for framework in FRAMEWORKS:
            first = runs[framework][0]
            results[name][framework] = {key: statistics.median(r[key] for r in runs[framework]) for key in first}
    (REPO / "bench" / "modern_architectures.json").write_text(json.dumps(results, indent=2))
    mib = 2**20
    print(f"Medians of {rounds} interleaved rounds.\n")
    print(
        "| model | framework | load s | batch 1 /s | batch 32 /s | imports MiB | peak RSS MiB | weights MiB "
        "| (peak - imports) / weights |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, result in results.items():
        weights = result["weights_bytes"]
        for framework in FRAMEWORKS:
            r = result[framework]
            print(
                f"| {name} | {framework} | {r['load_s']:.2f} | {r['batch_1']:.2f} | {r['batch_32']:.2f} | "
                f"{r['import_rss'] / mib:.0f} | {r['peak_rss'] / mib:.0f} | {weights / mib:.0f} | "
                f"{(r['peak_rss'] - r['import_rss']) / weights:.2f} |"
            )
    print()
    for name, result in results.items():
        ratios = {}
        for key in ("batch_1", "batch_32"):
            mine, theirs = result["rounds"]["minisbert"], result["rounds"]["sentence-transformers"]
            ratios[key] = [m[key] / t[key] for m, t in zip(mine, theirs)]
        print(
            f"- {name}, minisbert / sentence-transformers: batch 1 "
            f"**{result['minisbert']['batch_1'] / result['sentence-transformers']['batch_1']:.2f}x**, batch 32 "
            f"**{result['minisbert']['batch_32'] / result['sentence-transformers']['batch_32']:.2f}x** (medians); "
            f"by round: {', '.join(f'{a:.2f}x' for a in ratios['batch_1'])} and "
            f"{', '.join(f'{b:.2f}x' for b in ratios['batch_32'])}"
        )


if __name__ == "__main__":
    main()
