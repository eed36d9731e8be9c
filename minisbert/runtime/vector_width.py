"""512-bit vectors for numba's kernels on AVX-512 CPUs, set before numba is imported.

LLVM tunes most AVX-512 CPUs to "prefer-256-bit": loops vectorize with 256-bit registers, half the width
OpenBLAS and ONNX Runtime use. numba reads the CPU features it compiles for from ``NUMBA_CPU_FEATURES`` once, at
import; ``prefer_wide_vectors`` (run by ``import minisbert``) sets it to the host's features plus
``-prefer-256-bit`` when all of these hold: the CPU has AVX-512, ``MINISBERT_WIDE_VECTORS`` is not ``0``, the user
set neither ``NUMBA_CPU_FEATURES`` nor ``NUMBA_CPU_NAME``, and numba is not imported yet (afterwards the
variable would be read by nothing, or half the kernels would disagree). numba's on-disk cache keys each compiled
kernel on the CPU name and the feature string (numba/core/caching.py ``_index_key``: ``codegen.magic_tuple()``),
so kernels compiled either way sit side by side in the cache and are never mixed up.
"""

import os
import sys

SWITCH = "MINISBERT_WIDE_VECTORS"
WIDE = "-prefer-256-bit"


def prefer_wide_vectors(environ=os.environ):
    """Sets NUMBA_CPU_FEATURES for 512-bit vectors if allowed (see the module docstring); returns why or why not."""
    if environ.get(SWITCH, "1") == "0":
        return f"off: {SWITCH}=0"
    user_set = [name for name in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME") if environ.get(name)]
    if user_set:
        return f"unchanged: {' and '.join(user_set)} already set (by the user, or inherited from a parent process)"
    if "numba" in sys.modules:
        return "unchanged: numba was imported before minisbert"
    import llvmlite.binding  # numba's LLVM binding, imported by numba anyway; it does not import numba

    features = llvmlite.binding.get_host_cpu_features()
    if not features.get("avx512f"):
        return "unchanged: the CPU has no AVX-512"
    environ["NUMBA_CPU_FEATURES"] = f"{features.flatten()},{WIDE}"
    return f"on: NUMBA_CPU_FEATURES = host features + {WIDE} (turn off with {SWITCH}=0)"


WIDE_VECTORS = prefer_wide_vectors()
