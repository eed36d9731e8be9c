"""Matrix products of the fast encoder's linear layers, in the encoder's layout: weight (out, in) as torch stores
it, times activations x (in, tokens) that hold one token per column -> (out, tokens).

OpenBLAS repacks the whole weight matrix on every call, which costs more than the arithmetic when x has a few
columns (one short sentence). These kernels read the weights in a layout made once, at load, and are numbered
from the plainest to the fastest, llm.c style; each is validated against ``matmul_reference``:

1. ``matmul_1_naive``: one dot product per output, in order (scalar code).
2. ``matmul_2_register_blocked``: 4 weight rows x 4 tokens = 16 dot products at once, held in registers, over x
   transposed to (tokens, in) so that both operands are read contiguously. LLVM vectorizes each dot product along
   ``in`` (reassociated sums: a float32 rounding difference from the reference).
3. ``matmul_3_packed``: the same micro-kernel over weights packed once by ``pack_weight``: rows zero-padded to a
   multiple of 16 floats (64 bytes), 64-byte aligned, row count padded to a multiple of 4, so the micro-kernel
   never runs a remainder loop or a load that straddles two cache lines.
4. ``matmul_4_threaded``: variant 3 over blocks of output rows, one block per thread (a ThreadPoolExecutor over
   nogil kernels, re-created in a forked child, instead of numba's parallel=True).

int8: ``quantize_weight`` makes symmetric int8 rows with one float32 scale per output row (at load);
``int8_linear`` quantizes each token (column of x) with its own scale, multiplies in integers (int16 x int16
products summed in int32, the pattern LLVM turns into vpmaddwd, or VNNI's vpdpwssd) and rescales. The int8
weights are widened to int16 in registers anyway, so the activations are quantized to 12 bits (+-2047, stored as
int16) at no cost in arithmetic: 16x finer steps than int8 activations, which lost cosine similarity to the
float32 embedding on very short texts (the q/k/v projection of LayerNorm outputs with a few large features); sums
of 127 x 2047 products stay exact in int32 up to 8,260 inputs. bench/RESULTS.md, "Packed GEMM", has the variants'
speeds and int8's accuracy.
``compiled_instructions`` reports which of these instructions the kernels compiled to.
"""

import math
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

BLOCK_ROWS, BLOCK_TOKENS = 4, 4  # the register block of variants 2-4: 16 running sums
ALIGN_FLOATS = 16  # 64 bytes: a cache line, one 512-bit vector
ACTIVATION_LEVELS = 2047  # activations are quantized to +-2047 (12 bits), weights to +-127
INT8_MAX_INNER = (2**31 - 1) // (127 * ACTIVATION_LEVELS)  # the longest dot product whose int32 sum cannot overflow
_REASSOCIATE = {"reassoc", "contract", "nsz"}  # lets LLVM split each sum over the lanes of a vector register


def matmul_reference(weight, x):
    """weight (out, in), x (in, tokens) -> (out, tokens) float32, summed in float64."""
    return (weight.astype(np.float64) @ x.astype(np.float64)).astype(np.float32)


def check_shapes(name, weight_shape, x, out):
    """A clear error for operands that do not fit (out, in) @ (in, tokens) -> (out, tokens)."""
    rows, inner = weight_shape
    if x.ndim != 2 or x.shape[0] != inner:
        raise ValueError(f"{name}: x must be (in={inner}, tokens), got shape {x.shape}")
    if out.shape != (rows, x.shape[1]) or out.dtype != np.float32:
        raise ValueError(
            f"{name}: out must be float32 (out={rows}, tokens={x.shape[1]}), got {out.dtype} shape {out.shape}"
        )


# --- variant 1 -----------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _naive(weight, x, out):
    # weight (out, in), x (in, tokens) -> out (out, tokens): each output one sum, in order
    for row in range(weight.shape[0]):
        for token in range(x.shape[1]):
            total = np.float32(0.0)
            for k in range(weight.shape[1]):
                total += weight[row, k] * x[k, token]
            out[row, token] = total


def matmul_1_naive(weight, x, out):
    """weight (out, in), x (in, tokens) -> out (out, tokens) float32, returned."""
    check_shapes("matmul_1_naive", weight.shape, x, out)
    _naive(np.asarray(weight, np.float32), np.asarray(x, np.float32), out)
    return out


# --- variants 2-4: the register-blocked micro-kernel ----------------------------------------------------------


@numba.njit(cache=True, nogil=True, fastmath=_REASSOCIATE, error_model="numpy")
def _dot_blocks(weight, x_rows, out, first_row, end_row):
    # weight (>= end_row, in), x_rows (>= tokens, in): one token per row -> out[first_row:end_row] (rows, tokens).
    # 16 sums live in registers while one pass over ``in`` reads 4 weight rows and 4 tokens; tokens left over
    # (tokens % 4) take 4 rows x 1 token, rows left over (unpacked weights) 1 row x 1 token.
    inner, tokens = weight.shape[1], out.shape[1]
    zero = np.float32(0.0)
    row = first_row
    while row + BLOCK_ROWS <= end_row:
        w0, w1, w2, w3 = weight[row], weight[row + 1], weight[row + 2], weight[row + 3]
        for t in range(0, tokens - BLOCK_TOKENS + 1, BLOCK_TOKENS):
            x0, x1, x2, x3 = x_rows[t], x_rows[t + 1], x_rows[t + 2], x_rows[t + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for k in range(inner):
                a0, a1, a2, a3 = w0[k], w1[k], w2[k], w3[k]
                b0, b1, b2, b3 = x0[k], x1[k], x2[k], x3[k]
                s00 += a0 * b0
                s01 += a0 * b1
                s02 += a0 * b2
                s03 += a0 * b3
                s10 += a1 * b0
                s11 += a1 * b1
                s12 += a1 * b2
                s13 += a1 * b3
                s20 += a2 * b0
                s21 += a2 * b1
                s22 += a2 * b2
                s23 += a2 * b3
                s30 += a3 * b0
                s31 += a3 * b1
                s32 += a3 * b2
                s33 += a3 * b3
            out[row, t], out[row, t + 1], out[row, t + 2], out[row, t + 3] = s00, s01, s02, s03
            out[row + 1, t], out[row + 1, t + 1], out[row + 1, t + 2], out[row + 1, t + 3] = s10, s11, s12, s13
            out[row + 2, t], out[row + 2, t + 1], out[row + 2, t + 2], out[row + 2, t + 3] = s20, s21, s22, s23
            out[row + 3, t], out[row + 3, t + 1], out[row + 3, t + 2], out[row + 3, t + 3] = s30, s31, s32, s33
        for t in range(tokens - tokens % BLOCK_TOKENS, tokens):
            x0 = x_rows[t]
            s0 = s1 = s2 = s3 = zero
            for k in range(inner):
                b = x0[k]
                s0 += w0[k] * b
                s1 += w1[k] * b
                s2 += w2[k] * b
                s3 += w3[k] * b
            out[row, t], out[row + 1, t], out[row + 2, t], out[row + 3, t] = s0, s1, s2, s3
        row += BLOCK_ROWS
    for r in range(row, end_row):
        for t in range(tokens):
            total = zero
            for k in range(inner):
                total += weight[r, k] * x_rows[t, k]
            out[r, t] = total


def matmul_2_register_blocked(weight, x, out):
    """weight (out, in), x (in, tokens) float32 -> out (out, tokens), returned."""
    check_shapes("matmul_2_register_blocked", weight.shape, x, out)
    _dot_blocks(np.ascontiguousarray(weight, np.float32), np.ascontiguousarray(x.T, np.float32), out, 0, len(out))
    return out


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    buffer = np.empty(size + 64, dtype=np.uint8)
    start = -buffer.ctypes.data % 64
    return buffer[start : start + size].view(dtype).reshape(shape)


def aligned_zeros(shape, dtype):
    """A zeroed C-contiguous array whose data starts on a 64-byte boundary."""
    array = aligned_empty(shape, dtype)
    array.fill(0)
    return array


def padded(size, multiple):
    return -(-size // multiple) * multiple


def pack_weight(weight):
    """weight (out, in) -> the layout ``_dot_blocks`` reads: {"weight": (out padded to 4, in padded to 16) float32,
    zero-padded and 64-byte aligned, "shape": (out, in)}. Made once per layer, at load or first use."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"pack_weight expects a (out, in) matrix, got shape {weight.shape}")
    rows, inner = weight.shape
    packed = aligned_zeros((padded(rows, BLOCK_ROWS), padded(inner, ALIGN_FLOATS)), np.float32)
    packed[:rows, :inner] = weight
    return {"weight": packed, "shape": (rows, inner)}


def pack_tokens(x, inner_padded, dtype=np.float32):
    # x (in, tokens) -> (tokens, inner_padded) zero-padded, 64-byte aligned: the token rows _dot_blocks reads
    x_rows = aligned_empty((x.shape[1], inner_padded), dtype)
    x_rows[:, : x.shape[0]] = x.T
    if inner_padded > x.shape[0]:
        x_rows[:, x.shape[0] :] = 0
    return x_rows


def matmul_3_packed(packed, x, out):
    """packed = pack_weight(weight), x (in, tokens) float32 -> out (out, tokens) = weight @ x, returned."""
    check_shapes("matmul_3_packed", packed["shape"], x, out)
    _dot_blocks(packed["weight"], pack_tokens(x, packed["weight"].shape[1]), out, 0, len(out))
    return out


# --- variant 4: threads over blocks of output rows -----------------------------------------------------------

_pool_lock = threading.Lock()
_pool = {}  # threads -> ThreadPoolExecutor, emptied in a forked child (a fork copies no worker threads)


def thread_pool(threads):
    """A pool of ``threads`` - 1 workers (the caller is the last thread), created at first use."""
    with _pool_lock:
        if threads not in _pool:
            _pool[threads] = ThreadPoolExecutor(threads - 1, thread_name_prefix="minisbert-matmul")
        return _pool[threads]


def _forget_pools_after_fork():
    global _pool_lock
    _pool_lock = threading.Lock()  # the parent may have held it while forking
    _pool.clear()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


def available_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def over_row_blocks(kernel, rows, threads, *arguments):
    """Runs kernel(*arguments, first_row, end_row) over ``threads`` slices of [0, rows), each a multiple of 4
    rows, one in the calling thread and the others in the pool."""
    bounds = [min(rows, padded(rows * i // threads, BLOCK_ROWS)) for i in range(threads + 1)]
    bounds[-1] = rows
    slices = [(start, stop) for start, stop in zip(bounds, bounds[1:]) if stop > start]
    if len(slices) < 2:
        kernel(*arguments, 0, rows)
        return
    pool = thread_pool(len(slices))
    others = [pool.submit(kernel, *arguments, start, stop) for start, stop in slices[1:]]
    kernel(*arguments, *slices[0])
    for future in others:
        future.result()


def matmul_4_threaded(packed, x, out, threads=None):
    """matmul_3_packed with the output rows split over ``threads`` threads (default: the cores available)."""
    check_shapes("matmul_4_threaded", packed["shape"], x, out)
    x_rows = pack_tokens(x, packed["weight"].shape[1])
    over_row_blocks(_dot_blocks, len(out), threads or available_cores(), packed["weight"], x_rows, out)
    return out


# --- int8 -----------------------------------------------------------------------------------------------------


def quantize_weight_reference(weight):
    """weight (out, in) -> int8 (out, in), float32 scales (out,): row r is about int8[r] * scales[r], symmetric,
    with scale max|row| / 127 (1 for a row of zeros)."""
    weight = np.asarray(weight, dtype=np.float32)
    scales = np.abs(weight).max(axis=1, initial=0.0) / np.float32(127.0)
    scales[scales == 0] = 1.0
    return np.clip(np.rint(weight / scales[:, None]), -127, 127).astype(np.int8), scales.astype(np.float32)


def quantize_weight(weight):
    """The int8 layer made once at load: {"weight": int8 (out padded to 4, in padded to 64), zero-padded and
    aligned, "scales": float32 (out,), "shape": (out, in)}."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"quantize_weight expects a (out, in) matrix, got shape {weight.shape}")
    rows, inner = weight.shape
    if inner > INT8_MAX_INNER:
        raise ValueError(f"quantize_weight: in={inner} features could overflow int32 sums (at most {INT8_MAX_INNER})")
    quantized, scales = quantize_weight_reference(weight)
    packed = aligned_zeros((padded(rows, BLOCK_ROWS), padded(inner, 64)), np.int8)
    packed[:rows, :inner] = quantized
    return {"weight": packed, "scales": scales, "shape": (rows, inner)}


def quantize_tokens_reference(x):
    """x (in, tokens) -> int16 (tokens, in) in [-2047, 2047], float32 scales (tokens,): each token (column)
    quantized on its own, symmetric, scale max|column| / 2047 (1 for a column of zeros)."""
    scales = np.abs(x).max(axis=0, initial=0.0).astype(np.float32) / np.float32(ACTIVATION_LEVELS)
    scales[scales == 0] = 1.0
    levels = np.clip(np.rint(x.T / scales[:, None]), -ACTIVATION_LEVELS, ACTIVATION_LEVELS)
    return levels.astype(np.int16), scales


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _quantize_tokens(x, x_rows, scales):
    # x (in, tokens) float32 -> x_rows (tokens, >= in) int16, scales (tokens,): as quantize_tokens_reference
    inner, tokens = x.shape
    levels = np.float32(ACTIVATION_LEVELS)
    for t in range(tokens):
        largest = np.float32(0.0)
        for k in range(inner):
            largest = max(largest, abs(x[k, t]))
        scale = largest / levels if largest > 0 else np.float32(1.0)
        scales[t] = scale
        for k in range(inner):
            x_rows[t, k] = np.int16(min(max(np.rint(x[k, t] / scale), -levels), levels))


def int8_matmul_reference(weight_int8, x_rows):
    """int8 (out, in) @ int16 (tokens, in)^T -> exact int64 (out, tokens)."""
    return weight_int8.astype(np.int64) @ x_rows.astype(np.int64).T


# Operands as int16, products and sums wrapped to int32 at every step: the reduction LLVM turns into vpmaddwd
# (pairs of int16 products summed into int32 lanes), or vpdpwssd with VNNI. numba would otherwise compute in
# int64 (its integer arithmetic widens to intp), which vectorizes 4x narrower.
@numba.njit(inline="always")
def _multiply_add(total, a, b):
    return np.int32(total + np.int32(np.int32(np.int16(a)) * np.int32(np.int16(b))))


# One dot product per loop, not the 4 x 4 block of _dot_blocks: with a single int32 sum LLVM vectorizes the loop
# as a "partial reduction", full-width vpmaddwd / vpdpwssd on int16 pairs; with 16 sums in one loop it falls back
# to one product per int32 lane (vpmulld, or vpdpwssd on 4 lanes), which ran slower (bench/RESULTS.md,
# "Packed GEMM").
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _int8_dot_blocks(weight, x_rows, out, first_row, end_row):
    # weight int8 (>= end_row, in), x_rows int16 (>= tokens, in) -> out[first_row:end_row] int32 (rows, tokens)
    inner, tokens = weight.shape[1], out.shape[1]
    for row in range(first_row, end_row):
        weight_row = weight[row]
        for t in range(tokens):
            x_row = x_rows[t]
            total = np.int32(0)
            for k in range(inner):
                total = _multiply_add(total, weight_row[k], x_row[k])
            out[row, t] = total


def int8_matmul(weight_int8, x_rows, out, threads=1):
    """The fast twin of int8_matmul_reference: int8 (out, in), int16 (tokens, in) within +-2047 -> out int32
    (out, tokens); out may have fewer rows than the weight (quantize_weight pads the rows to a multiple of 4)."""
    if weight_int8.shape[1] != x_rows.shape[1] or out.shape[0] > len(weight_int8) or out.shape[1] != len(x_rows):
        raise ValueError(
            f"int8_matmul: weight {weight_int8.shape}, x rows {x_rows.shape} and out {out.shape} do not fit"
        )
    if weight_int8.shape[1] > INT8_MAX_INNER:
        raise ValueError(f"int8_matmul: in={weight_int8.shape[1]} could overflow int32 sums (at most {INT8_MAX_INNER})")
    over_row_blocks(_int8_dot_blocks, len(out), threads, weight_int8, x_rows, out)
    return out


def int8_linear_reference(weight, x):
    """weight (out, in), x (in, tokens) float32 -> (out, tokens) float32 through int8: weight rows and tokens
    quantized (quantize_weight_reference, quantize_tokens_reference), exact integer products, rescaled."""
    weight_int8, weight_scales = quantize_weight_reference(weight)
    x_rows, x_scales = quantize_tokens_reference(x)
    products = int8_matmul_reference(weight_int8, x_rows)
    return (products.astype(np.float32) * weight_scales[:, None]) * x_scales[None, :]


def int8_linear(quantized, x, out, threads=1):
    """quantized = quantize_weight(weight), x (in, tokens) float32 -> out (out, tokens) float32 = the
    int8 approximation of weight @ x (as int8_linear_reference), returned."""
    check_shapes("int8_linear", quantized["shape"], x, out)
    x = np.ascontiguousarray(x, dtype=np.float32)
    x_rows = aligned_empty((x.shape[1], quantized["weight"].shape[1]), np.int16)
    x_rows[:, x.shape[0] :] = 0  # the padding; _quantize_tokens writes the rest
    x_scales = np.empty(x.shape[1], dtype=np.float32)
    _quantize_tokens(x, x_rows, x_scales)
    products = int8_matmul(quantized["weight"], x_rows, np.empty(out.shape, dtype=np.int32), threads)
    out[:] = products  # int32 -> float32, then the two scales, in int8_linear_reference's order
    out *= quantized["scales"][:, None]
    out *= x_scales[None, :]
    return out


# --- what the kernels compiled to ----------------------------------------------------------------------------

INSTRUCTIONS = {
    "vpdpwssd": "VNNI int16 multiply-add into int32",
    "vpdpbusd": "VNNI uint8 x int8 multiply-add into int32",
    "vpmaddwd": "int16 multiply, pairs summed into int32",
    "vfmadd": "float fused multiply-add",
}


def compiled_instructions():
    """{kernel: {"registers": widest vector registers used, instruction: count}} for the fp32 and int8
    micro-kernels, read from the assembly numba compiles them to here (numba cannot show the assembly of a kernel
    loaded from its cache, so each is compiled afresh, with the same options, for the shapes encode uses)."""
    report = {}
    float_arguments = (np.zeros((4, 16), np.float32), np.zeros((4, 16), np.float32), np.zeros((4, 4), np.float32))
    int8_arguments = (np.zeros((4, 64), np.int8), np.zeros((4, 64), np.int16), np.zeros((4, 4), np.int32))
    for name, kernel, arguments in (
        ("fp32 micro-kernel", _dot_blocks, float_arguments),
        ("int8 micro-kernel", _int8_dot_blocks, int8_arguments),
    ):
        options = {key: value for key, value in kernel.targetoptions.items() if key not in ("cache", "nopython")}
        fresh = numba.njit(**options)(kernel.py_func)
        fresh(*arguments, 0, 4)
        assembly = fresh.inspect_asm(fresh.signatures[0])
        widths = [bits for bits, register in ((512, "zmm"), (256, "ymm"), (128, "xmm")) if register in assembly]
        counts = {instruction: len(re.findall(rf"\b{instruction}\w*", assembly)) for instruction in INSTRUCTIONS}
        report[name] = {"registers": f"{widths[0]}-bit" if widths else "scalar", **counts}
    return report
