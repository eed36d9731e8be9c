"""Semantic search at scale: minisbert.util.semantic_search against sentence_transformers.util.semantic_search in
the same run (time, peak memory above the inputs, same results), binary search with rescoring against float
search (speed ratio, recall@10), and the two kernels' throughput. Writes bench/SEARCH_RESULTS.md.

    .venv/bin/python bench/search.py                        # 1,000 queries x 1,000,000 corpus, 384-d float32
    .venv/bin/python bench/search.py --corpus-size 200000   # a quicker run

Data: synthetic clustered embeddings (cluster centres ~ N(0, I), points = centre + N(0, I), normalised), so
nearest neighbours are meaningful as with real sentence embeddings; queries come from the same clusters.
"""

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from common import CORPUS, measure
from sentence_transformers import util as reference

from minisbert import util
from minisbert.util import quantization
from minisbert.kernels.hamming import as_words, hamming_top_k_update
from minisbert.kernels.rescore import candidate_scores
from minisbert.kernels.topk import RunningTopK


def clustered_embeddings(rows, centres, rng, chunk=100_000):
    """(rows, dim) float32 unit vectors around random centres, made chunk by chunk."""
    out = np.empty((rows, centres.shape[1]), dtype=np.float32)
    for start in range(0, rows, chunk):
        labels = rng.integers(0, len(centres), size=min(chunk, rows - start))
        points = centres[labels] + rng.standard_normal((len(labels), centres.shape[1]), dtype=np.float32)
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        out[start : start + len(labels)] = points
    return out


def binary_variants(corpus):
    """(label, keyword arguments of semantic_search_binary) for each binary search the benchmark runs."""
    corpus_int8 = quantization.quantize_embeddings(corpus, "int8")  # ranges calibrated on the corpus itself
    return [
        ("binary, no rescoring", {"rescore": False}),
        ("binary, bit rescoring x4", {"rescore_multiplier": 4}),
        ("binary, int8 rescoring x4", {"rescore_multiplier": 4, "rescore_embeddings": corpus_int8}),
        ("binary, int8 rescoring x10", {"rescore_multiplier": 10, "rescore_embeddings": corpus_int8}),
    ]


def ids(hits):
    return [[hit["corpus_id"] for hit in row] for row in hits]


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def real_embeddings_recall(top_k, queries=1000):
    """Recall@top_k of binary search + rescoring on real all-MiniLM-L6-v2 embeddings of ../shared's corpus: the
    first `queries` sentences search the others. Embeddings are cached beside a copy of the corpus in /tmp."""
    import shutil
    import tempfile

    from minisbert import SentenceTransformer
    from minisbert.util.corpus_cache import cached_corpus_embeddings

    source = CORPUS
    if not source.exists():
        return [f"(No {source}: recall on real embeddings skipped.)", ""]
    corpus_path = Path(tempfile.gettempdir()) / "minisbert-bench" / source.name
    corpus_path.parent.mkdir(exist_ok=True)
    shutil.copyfile(source, corpus_path)
    corpus_bytes = corpus_path.read_bytes()
    sentences = corpus_bytes.decode("utf-8").splitlines()
    embeddings = cached_corpus_embeddings(SentenceTransformer(), corpus_path, sentences, corpus_bytes, batch_size=64)
    query_embeddings, corpus = embeddings[:queries], embeddings[queries:]
    truth = ids(util.semantic_search(query_embeddings, corpus, top_k=top_k))
    corpus_bits = quantization.quantize_embeddings(corpus, "ubinary")
    lines = [
        f"### Recall on real embeddings: {queries} sentences of shared/corpus searching the other {len(corpus):,}",
        "",
        "all-MiniLM-L6-v2 embeddings (minisbert) of the CPython docstring sentences; recall@10 of binary search "
        "against float cosine search. (Synthetic clusters are the harder case: the top 10 among ~100 equally near "
        "cluster mates is decided by detail that sign bits lose.)",
        "",
        "| search | recall@10 |",
        "| --- | ---: |",
    ]
    for label, options in binary_variants(corpus):
        hits = quantization.semantic_search_binary(query_embeddings, corpus_bits, top_k=top_k, **options)
        print(f"  real embeddings, {label}: recall {recall(ids(hits), truth):.3f}")
        lines.append(f"| {label} | {recall(ids(hits), truth):.3f} |")
    return lines + [""]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each search (float ones interleaved)")
    parser.add_argument("--output", default=str(Path(__file__).with_name("SEARCH_RESULTS.md")))
    arguments = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(arguments.corpus_size // 100, 1), arguments.dim), dtype=np.float32)
    corpus = clustered_embeddings(arguments.corpus_size, centres, rng)
    queries = clustered_embeddings(arguments.queries, centres, rng)
    top_k, pairs = arguments.top_k, arguments.queries * arguments.corpus_size
    print(f"{arguments.queries} queries x {arguments.corpus_size} corpus x {arguments.dim}-d float32, top_k={top_k}")
    lines = [
        "# Semantic search benchmark",
        "",
        f"`{' '.join(['python', 'bench/search.py', *sys.argv[1:]])}` on {platform.machine()}, {os.cpu_count()} cores "
        f"({platform.processor() or 'cpu'}), shared with other jobs (timings noisy; runs interleaved), torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads.",
        "",
        f"Data: {arguments.queries} queries x {arguments.corpus_size:,} corpus embeddings, {arguments.dim}-d float32, "
        f"synthetic clustered unit vectors ({len(centres):,} clusters); top_k={top_k}; default chunk sizes "
        "(100 queries x 500,000 corpus rows). Peak memory = peak resident set above the inputs during the call.",
        "",
        "## Float search: minisbert vs sentence-transformers",
        "",
        "| run | implementation | seconds | GFLOP/s | peak extra memory |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    query_tensor, corpus_tensor = torch.from_numpy(queries), torch.from_numpy(corpus)
    timings, results = {"minisbert": [], "sentence-transformers": []}, {}
    flops = 2 * pairs * arguments.dim
    for repeat in range(arguments.repeats):
        for name, search in [
            ("minisbert", lambda: util.semantic_search(queries, corpus, top_k=top_k)),
            ("sentence-transformers", lambda: reference.semantic_search(query_tensor, corpus_tensor, top_k=top_k)),
        ]:
            hits, seconds, memory = measure(search)
            timings[name].append(seconds)
            results[name] = hits
            print(f"  {name}: {seconds:.2f} s, peak +{memory / 2**20:.0f} MiB")
            lines.append(
                f"| {repeat + 1} | {name} | {seconds:.2f} | {flops / seconds / 1e9:.1f} | {memory / 2**20:.0f} MiB |"
            )
    truth = ids(results["sentence-transformers"])
    same_ids = np.mean([a == b for a, b in zip(ids(results["minisbert"]), truth)])
    score_difference = max(
        abs(a["score"] - b["score"])
        for row_a, row_b in zip(results["minisbert"], results["sentence-transformers"])
        for a, b in zip(row_a, row_b)
    )
    float_seconds = min(timings["minisbert"])
    speedup = min(timings["sentence-transformers"]) / float_seconds
    lines += [
        "",
        f"Best of each: minisbert {float_seconds:.2f} s, sentence-transformers {min(timings['sentence-transformers']):.2f} s "
        f"(**{speedup:.2f}x**). Identical id lists for {same_ids:.1%} of the queries; max score difference "
        f"{score_difference:.1e}. Memory of both is bounded by the chunks: a (100, 500,000) float32 score block "
        f"(191 MiB) and a normalised corpus chunk (500,000 x {arguments.dim} x 4 bytes).",
        "",
        "## Binary search with rescoring vs float search (minisbert)",
        "",
        "Corpus quantized to ubinary (48 bytes a row, 32x smaller); exact Hamming top-(k x multiplier) by the popcount "
        "kernel, then rescoring with the float query: against the candidates' bits (as semantic_search_faiss / "
        "_usearch do) or their int8 embeddings (sentence-transformers' recommended binary search + int8 rescoring). "
        "Recall@10 against the exact float top 10.",
        "",
        "| search | seconds | speed vs float | recall@10 |",
        "| --- | ---: | ---: | ---: |",
        f"| float (cosine) | {float_seconds:.2f} | 1.0x | 1.000 |",
    ]
    corpus_bits, quantize_seconds, _ = measure(lambda: quantization.quantize_embeddings(corpus, "ubinary"))
    for label, options in binary_variants(corpus):
        runs = [
            measure(lambda: quantization.semantic_search_binary(queries, corpus_bits, top_k=top_k, **options))  # noqa: B023
            for _ in range(arguments.repeats)
        ]
        hits, seconds = runs[0][0], min(run[1] for run in runs)  # best of the repeats
        print(f"  {label}: {seconds:.2f} s, recall {recall(ids(hits), truth):.3f}")
        lines.append(f"| {label} | {seconds:.2f} | {float_seconds / seconds:.1f}x | {recall(ids(hits), truth):.3f} |")
    lines += ["", f"(Quantizing the corpus once took {quantize_seconds:.2f} s.)", ""]
    lines += real_embeddings_recall(top_k)

    # The kernels alone: bytes read and items per second.
    scores = queries[:100] @ corpus[:500_000].T  # (100, 500000) float32, 200 MB
    running = RunningTopK(100, top_k, np.float32)
    _, topk_seconds, _ = measure(lambda: running.update(scores, 0))
    query_words, corpus_words = as_words(corpus_bits[:100]), as_words(corpus_bits)
    running = RunningTopK(100, top_k * 4, np.int64)
    _, hamming_seconds, _ = measure(lambda: hamming_top_k_update(running, query_words, corpus_words, 0))
    hamming_pairs = 100 * len(corpus_bits)
    candidates = rng.integers(-128, 128, size=(len(queries), 100, arguments.dim), dtype=np.int8)  # 100 a query
    _, rescore_seconds, _ = measure(lambda: candidate_scores(queries, candidates))
    lines += [
        "## Kernels",
        "",
        f"- top-k over a (100, {scores.shape[1]:,}) float32 score block: {topk_seconds * 1e3:.1f} ms, "
        f"{scores.nbytes / topk_seconds / 1e9:.1f} GB/s of scores read.",
        f"- Hamming top-{top_k * 4} of 100 queries over {len(corpus_bits):,} packed rows "
        f"({corpus_bits.shape[1]} bytes each): "
        f"{hamming_seconds * 1e3:.0f} ms, {hamming_pairs / hamming_seconds / 1e9:.2f} G pairs/s "
        f"({hamming_pairs * arguments.dim / hamming_seconds / 1e9:.0f} G bit comparisons/s).",
        f"- Rescoring {len(queries):,} queries x 100 int8 candidates (float64 dot products): {rescore_seconds * 1e3:.0f} ms, "
        f"{candidates.nbytes / rescore_seconds / 1e9:.1f} GB/s of candidates, "
        f"{2 * candidates.size / rescore_seconds / 1e9:.1f} GFLOP/s.",
        "",
    ]
    Path(arguments.output).write_text("\n".join(lines))
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
