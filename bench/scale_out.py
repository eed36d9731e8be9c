"""Scale-out: --count sentences (default 100,000: the shared stdlib corpus repeated) through
`minisbert encode --input FILE --output X.zarr`, in one process and on a local Dask cluster of --workers worker
processes on the same machine (one thread each, as `--workers` starts them). Measures, for each:

- throughput, overall (start-up included) and after the first chunk is written (steady state); the goal is a
  cluster at >= 0.85x the in-process rate: on the same cores, that ratio is what Dask's machinery costs;
- peak RSS of the CLI process and of each worker (sampled every 0.1 s: a lower bound of the true peak);
- time from the command's start to the first chunk written (model load and, for the cluster, its start);
- the cost of a resume: a run killed with SIGKILL half-way plus its resumed re-run, against one uninterrupted
  run (the difference is the work lost in flight plus the second start-up), and a re-run on a finished store
  (input scan, fingerprints, nothing to encode);

and, from the cluster's per-core rate, a paper estimate of the machines needed for 100 M sentences in an hour.
Rewrites the scale_out.py section of bench/RESULTS.md. Run on a quiet machine (four full runs of the corpus):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/scale_out.py
    .venv/bin/python bench/scale_out.py --count 3000 --chunk-size 500     # a short check
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from common import CORPUS, corpus_lines
from report import replace_section

MIB = 2**20
TARGET_SENTENCES, TARGET_SECONDS = 100_000_000, 3600


def chunks_done(store):
    """Chunks marked done in a minisbert store (each marker is one file of the zarr array store/done)."""
    markers = Path(store) / "done" / "c"
    return len(os.listdir(markers)) if markers.is_dir() else 0


def run(command, store, kill_at=None):
    """Runs a minisbert command: {"seconds", "first_chunk_seconds", "peaks": {pid: (name, peak RSS bytes)}};
    kill_at: SIGKILL it as soon as that many chunks are marked done."""
    start = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks, first_chunk = {}, None
    while process.poll() is None:
        for member in [process, *process.children(recursive=True)]:
            try:
                name = "cli" if member.pid == process.pid else "worker"
                peaks[member.pid] = (name, max(peaks.get(member.pid, (name, 0))[1], member.memory_info().rss))
            except psutil.NoSuchProcess:
                pass
        done = chunks_done(store)
        if first_chunk is None and done:
            first_chunk = time.perf_counter() - start
        if kill_at is not None and done >= kill_at:
            process.kill()
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    error = process.stderr.read()
    if process.returncode != 0 and kill_at is None:
        raise SystemExit(f"{' '.join(command)} failed:\n{error}")
    return {"seconds": seconds, "first_chunk_seconds": first_chunk, "peaks": peaks}


def rates(result, count, chunk_size):
    """(overall sentences/s, sentences/s after the first chunk was written)."""
    steady = (count - chunk_size) / (result["seconds"] - result["first_chunk_seconds"])
    return count / result["seconds"], steady


def worker_peaks_mib(result):
    """Peak RSS of each worker process in MiB, the multiprocessing helpers (< 100 MiB) left out."""
    return sorted(peak / MIB for name, peak in result["peaks"].values() if name == "worker" and peak > 100 * MIB)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", "--limit", type=int, default=100_000, help="sentences (default %(default)s)")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="one sentence a line (default: %(default)s)")
    args = parser.parse_args()
    if args.count <= args.chunk_size:
        parser.error("--count must exceed --chunk-size: the steady rate is measured after the first chunk")
    texts = corpus_lines(args.corpus, args.count)
    chunks = math.ceil(args.count / args.chunk_size)
    folder = Path(tempfile.mkdtemp(prefix="scale_out_"))
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")

    def command(store, *extra):
        return [sys.executable, "-m", "minisbert", "encode", "-i", str(corpus), "-o", str(folder / store),
                "--chunk-size", str(args.chunk_size), *extra]

    try:
        here = run(command("here.zarr"), folder / "here.zarr")
        cluster = run(command("cluster.zarr", "--workers", str(args.workers)), folder / "cluster.zarr")
        killed = run(command("resumed.zarr"), folder / "resumed.zarr", kill_at=max(1, chunks // 2))
        killed_done = chunks_done(folder / "resumed.zarr")
        resumed = run(command("resumed.zarr"), folder / "resumed.zarr")
        finished = run(command("resumed.zarr"), folder / "resumed.zarr")
    finally:
        shutil.rmtree(folder)

    here_rate, here_steady = rates(here, args.count, args.chunk_size)
    cluster_rate, cluster_steady = rates(cluster, args.count, args.chunk_size)
    cores = psutil.cpu_count(logical=True)
    per_core = cluster_steady / args.workers
    cores_needed = TARGET_SENTENCES / TARGET_SECONDS / per_core
    embedding_bytes_per_second = TARGET_SENTENCES * 384 * 4 / TARGET_SECONDS
    lost = killed["seconds"] + resumed["seconds"] - here["seconds"]
    workers = ", ".join(f"{peak:.0f}" for peak in worker_peaks_mib(cluster))
    cli_peak = max(peak for name, peak in cluster["peaks"].values() if name == "cli") / MIB
    here_peak = max(peak for name, peak in here["peaks"].values() if name == "cli") / MIB
    text = f"""Generated by `bench/scale_out.py --count {args.count} --chunk-size {args.chunk_size} --workers \
{args.workers}` on {cores} logical cores: {args.count:,} sentences of {args.corpus.name}, {chunks} chunks.

| run | seconds | sentences/s overall | after the first chunk | first chunk written after | peak RSS (MiB) |
| --- | ---: | ---: | ---: | ---: | --- |
| in one process | {here['seconds']:.1f} | {here_rate:,.0f} | {here_steady:,.0f} | {here['first_chunk_seconds']:.1f} s \
| {here_peak:.0f} |
| Dask, {args.workers} local workers | {cluster['seconds']:.1f} | {cluster_rate:,.0f} | {cluster_steady:,.0f} \
| {cluster['first_chunk_seconds']:.1f} s | CLI {cli_peak:.0f}, workers {workers} |

Cluster / in-process throughput: **{cluster_steady / here_steady:.2f}x** after the first chunk, \
{cluster_rate / here_rate:.2f}x overall (goal >= 0.85x).

Resume (in one process): killed with SIGKILL at {killed_done} of {chunks} chunks after {killed['seconds']:.1f} s, \
resumed in {resumed['seconds']:.1f} s: {lost:+.1f} s against the uninterrupted run (the chunk in flight and a \
second start-up). A re-run on the finished store (input scan, fingerprints, nothing to encode): \
{finished['seconds']:.1f} s.

Paper estimate for {TARGET_SENTENCES / 1e6:.0f} M such sentences in an hour ({TARGET_SENTENCES / TARGET_SECONDS:,.0f} \
sentences/s): at the measured {per_core:,.0f} sentences/s per worker core, {cores_needed:,.0f} cores, e.g. \
{math.ceil(cores_needed / 16)} machines of 16 cores or {math.ceil(cores_needed / 64)} of 64 (cores of this machine's \
kind; a worker a core). The client receives every embedding and writes the store: \
{embedding_bytes_per_second / 1e6:.0f} MB/s of float32 384-d vectors, within one 1 Gb/s link and one disk."""
    print(text)
    replace_section("scale_out.py", text)


if __name__ == "__main__":
    main()
