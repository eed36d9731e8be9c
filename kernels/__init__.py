"""numba kernels of minisbert, installed as ``minisbert.kernels``.

Each module opens with its scope; each numba kernel sits beside a plain NumPy (or scipy) ``*_reference``
version that states what it computes, and where there are several fast versions they are numbered, plainest
first (matmul.py). tests/test_kernels.py checks every kernel against its reference on
odd shapes; bench/ measures the fast ones against the machine's limits. Kernels import NumPy, numba,
minisbert.runtime and each other only.
"""
