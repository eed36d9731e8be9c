"""The runtime under every computation: the thread pool and BLAS thread limit that survive fork (threads.py) and
numba's vector width (vector_width.py). Imports nothing from minisbert; everything else may import it."""
