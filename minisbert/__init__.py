"""minisbert: sentence-transformers inference rebuilt from scratch in NumPy and numba.

``SentenceTransformer(...).encode(...)`` gives the same embeddings as sentence-transformers, without torch.
"""

from minisbert import util
from minisbert.embedder import Embedder
from minisbert.sentence_transformer import SentenceTransformer

__version__ = "0.1.0"
__all__ = ["SentenceTransformer", "util", "__version__", "Embedder"]
