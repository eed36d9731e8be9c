"""Why the encode-path numba kernels are serial: the time of a tiny elementwise kernel called right after an
OpenBLAS sgemm (as in every encoder layer), parallel (numba's OpenMP workers) vs serial. Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/threads.py
"""

import time

import numba
import numpy as np


@numba.njit(parallel=True)
def add_one_parallel(x):
    for i in numba.prange(x.shape[0]):
        for j in range(x.shape[1]):
            x[i, j] += 1.0


@numba.njit
def add_one_serial(x):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            x[i, j] += 1.0


def milliseconds_per_call(function, repeats=200):
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats * 1e3


def main():
    tokens = np.random.rand(704, 384).astype(np.float32)
    weight = np.random.rand(384, 1536).astype(np.float32)
    activations = np.random.rand(704, 1536).astype(np.float32)
    add_one_parallel(activations), add_one_serial(activations)
    sgemm = milliseconds_per_call(lambda: tokens @ weight)
    print(f"numba threading layer: {numba.threading_layer()}, {numba.get_num_threads()} threads")
    print(f"sgemm (704, 384) @ (384, 1536) alone: {sgemm:.2f} ms")
    for name, kernel in (("parallel", add_one_parallel), ("serial", add_one_serial)):
        alone = milliseconds_per_call(lambda: kernel(activations))
        after = milliseconds_per_call(lambda: (tokens @ weight, kernel(activations))) - sgemm
        print(f"{name:>8} kernel on (704, 1536): alone {alone:.3f} ms, right after the sgemm {after:.3f} ms")


if __name__ == "__main__":
    main()
