"""Kernel benchmarks (pytest-benchmark), run with an explicit path: `pytest bench/`. Each benchmark states
the bytes and FLOPs its kernel moves; the summary prints achieved GB/s and GFLOP/s next to this machine's
limits, measured here in the same session (a big copy and a big sgemm, one thread, as the kernels run)."""

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

ROWS = []


def best_seconds(function, repeats=5):
    function()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


@pytest.fixture(scope="session")
def machine_limits():
    """One core's practical ceilings: bandwidth of a 256 MiB copy, and sgemm 2048^3 GFLOP/s (1 and all threads)."""
    source, destination = np.ones(64 * 2**20, np.float32), np.empty(64 * 2**20, np.float32)
    bandwidth = 2 * source.nbytes / best_seconds(lambda: np.copyto(destination, source)) / 1e9  # read + write
    a, b = np.ones((2048, 2048), np.float32), np.ones((2048, 2048), np.float32)
    flops = 2 * 2048**3
    all_threads = flops / best_seconds(lambda: a @ b) / 1e9
    with threadpool_limits(1, user_api="blas"):
        one_thread = flops / best_seconds(lambda: a @ b) / 1e9
    kernel = next((pool["architecture"] for pool in threadpool_info() if pool["user_api"] == "blas"), "?")
    return {"GB/s": bandwidth, "GFLOP/s": one_thread, "GFLOP/s all threads": all_threads, "blas kernel": kernel}


@pytest.fixture
def report(benchmark, machine_limits):
    """report(name, bytes, flops) after benchmark(...): records the achieved rates for the summary."""

    def record(name, bytes_moved, flops):
        seconds = benchmark.stats.stats.median
        row = {
            "kernel": name,
            "ms": seconds * 1e3,
            "MB": bytes_moved / 1e6,
            "MFLOP": flops / 1e6,
            "GB/s": bytes_moved / seconds / 1e9,
            "GFLOP/s": flops / seconds / 1e9,
        }
        benchmark.extra_info.update(row)
        ROWS.append(row)

    return record


def pytest_terminal_summary(terminalreporter):
    if not ROWS:
        return
    limits = terminalreporter.config._machine_limits if hasattr(terminalreporter.config, "_machine_limits") else None
    write = terminalreporter.write_line
    write("")
    write("kernel                                   median ms     MB moved   GB/s    MFLOP   GFLOP/s")
    for row in ROWS:
        write(
            f"{row['kernel']:<40} {row['ms']:>9.3f} {row['MB']:>12.2f} {row['GB/s']:>6.1f} {row['MFLOP']:>8.1f} "
            f"{row['GFLOP/s']:>9.1f}"
        )
    if limits:
        write(
            f"machine limits (measured this session): copy {limits['GB/s']:.1f} GB/s on one core, sgemm 2048^3 "
            f"{limits['GFLOP/s']:.0f} GFLOP/s on one core, {limits['GFLOP/s all threads']:.0f} GFLOP/s on all "
            f"(OpenBLAS {limits['blas kernel']} kernel)"
        )


@pytest.fixture(scope="session", autouse=True)
def _keep_limits_for_summary(request, machine_limits):
    request.config._machine_limits = machine_limits
