"""minisbert: sentence-transformers inference rebuilt from scratch in NumPy and numba.

``SentenceTransformer(...).encode(...)`` gives the same embeddings as sentence-transformers, without torch.
The public names: imports the families, util, the distributed Embedder and the runtime; only the command line
imports names from here, and anything may import ``__version__`` (docs/architecture.md: layout, import rules).
"""

from minisbert.runtime import vector_width  # noqa: F401 (first: numba's CPU features are set before numba is imported)
from minisbert import util
from minisbert.families.cross_encoder import CrossEncoder
from minisbert.distributed.embedder import Embedder
from minisbert.families.multi_vector_encoder import MultiVectorEncoder
from minisbert.families.sentence_transformer import SentenceTransformer
from minisbert.families.sparse_encoder import SparseEncoder

__version__ = "0.1.0"
__all__ = ["SentenceTransformer", "CrossEncoder", "SparseEncoder", "MultiVectorEncoder", "Embedder", "util", "__version__"]
