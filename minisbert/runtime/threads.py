"""Threads that survive os.fork and concurrent callers.

- ``worker_pool()``: one pool of worker threads per process. A child made by os.fork inherits the parent's pool
  object but none of its threads (waiting on it would hang for ever), so the child gets a new pool.
- ``split_rows(count, run)``: the rows of a nogil numba kernel split over that pool and the calling thread. It
  replaces numba's ``parallel=True``, whose OpenMP threads abort a forked child ("fork() called from a process
  already using GNU OpenMP") and whose fork-safe "workqueue" layer aborts when two threads call a kernel at once.
- ``blas_limited_to_one_thread()``: numpy's BLAS held at one thread while any caller is inside it (the encoder's
  groups each run on their own core), reference-counted under a lock: the count the first caller found is
  given back when the last one leaves, whatever the order in which concurrent callers enter and leave.
"""

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# Below this many row x column steps a kernel runs in the calling thread: handing work to a thread costs ~50 us.
MIN_PARALLEL_WORK = 200_000
POOL_THREAD_NAME = "minisbert-worker"


def core_count():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ProcessState:
    """What belongs to one process: its pool and the BLAS limit's count (replaced in a forked child)."""

    def __init__(self):
        self.lock = threading.Lock()  # a new one in a child: the parent's may have been held by another thread
        self.pool = None
        self.blas_users = 0  # callers inside the BLAS limit (the child has none: only the forking thread lives)
        self.limiter = None
        self.original_threads = None


state = ProcessState()


def _after_fork_in_child():
    # Only the forking thread lives on in the child: callers that held the BLAS limit in other threads never
    # leave it there, so the count they found is given back now (else the child's BLAS stays at one thread).
    global state
    parent, state = state, ProcessState()
    if parent.limiter is not None:
        parent.limiter.restore_original_limits()


os.register_at_fork(after_in_child=_after_fork_in_child)


@functools.cache
def blas_controller():
    """numpy's BLAS libraries through threadpoolctl (imported at the first use, not at import: cold start)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def live_blas_threads():
    return max([library.num_threads for library in blas_controller().lib_controllers], default=1)


def blas_thread_count():
    """numpy's BLAS threads as they are outside our limit (the encoder cuts a batch into this many groups)."""
    with state.lock:
        return live_blas_threads() if state.limiter is None else state.original_threads


def worker_pool():
    """This process's pool of worker threads (enough, with the caller, for every core and BLAS thread)."""
    with state.lock:
        if state.pool is None:
            blas_threads = live_blas_threads() if state.limiter is None else state.original_threads
            workers = max(core_count(), blas_threads) - 1 or 1
            state.pool = ThreadPoolExecutor(workers, thread_name_prefix=POOL_THREAD_NAME)
        return state.pool


def run_parallel(function, items):
    """[function(item) for item in items], the first in the calling thread, the others on the worker pool (in
    order, in the calling thread alone when that is one of the pool's: a worker never waits on the pool)."""
    if len(items) < 2 or threading.current_thread().name.startswith(POOL_THREAD_NAME):
        return [function(item) for item in items]
    others = [worker_pool().submit(function, item) for item in items[1:]]
    return [function(items[0])] + [future.result() for future in others]


def split_rows(count, run, work_per_row=1, multiple=1):
    """Calls run(slice) on up to one slice per core covering range(count) (slice lengths a multiple of
    ``multiple`` but the last), in parallel when there is enough work: ``work_per_row`` steps a row."""
    parts = min(core_count(), count * work_per_row // MIN_PARALLEL_WORK, -(-count // multiple))
    if parts < 2:
        run(slice(0, count))
        return
    step = -(-count // (parts * multiple)) * multiple
    run_parallel(run, [slice(start, min(start + step, count)) for start in range(0, count, step)])


@contextlib.contextmanager
def blas_limited_to_one_thread():
    """numpy's BLAS at one thread inside the block; the original count back when the last caller leaves."""
    with state.lock:
        current = state
        if current.blas_users == 0 and current.limiter is None:
            current.original_threads = live_blas_threads()
            current.limiter = blas_controller().limit(limits=1)
        current.blas_users += 1
    try:
        yield
    finally:
        with current.lock:
            current.blas_users -= 1
            if current.blas_users == 0 and current.limiter is not None:
                current.limiter.restore_original_limits()
                current.limiter = None
