"""minisbert: sentence-transformers inference rebuilt from scratch in NumPy and numba.

``SentenceTransformer(...).encode(...)`` gives the same embeddings as sentence-transformers, without torch.
"""

from minisbert import vector_width  # noqa: F401 (first: numba's CPU features are set before numba is imported)
from minisbert import util
from minisbert.cross_encoder import CrossEncoder
from minisbert.embedder import Embedder
from minisbert.multi_vector_encoder import MultiVectorEncoder
from minisbert.sentence_transformer import SentenceTransformer
from minisbert.sparse_encoder import SparseEncoder

__version__ = "0.1.0"
__all__ = ["SentenceTransformer", "CrossEncoder", "SparseEncoder", "MultiVectorEncoder", "Embedder", "util", "__version__"]
