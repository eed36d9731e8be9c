"""numba kernels of minisbert, installed as ``minisbert.kernels``.

Each kernel sits beside a plain NumPy ``*_reference`` version that states what it computes; the tests check
that the two agree and bench/ measures the fast one against the machine's limits. Kernels may import
minisbert.runtime only.
"""
