"""minisbert.util: what sentence_transformers.util offers for working with embeddings, without torch, with
sentence-transformers' names, arguments and return structures. A package, as sentence-transformers' is:

    similarity.py    cos_sim, dot_score, euclidean_sim, manhattan_sim and their pairwise_* forms,
                     normalize_embeddings; SIMILARITY_FUNCTIONS, the table a model's similarity_fn_name selects from
    retrieval.py     semantic_search, paraphrase_mining(_embeddings), community_detection
    multi_vector.py  maxsim, maxsim_pairwise, mean_maxsim(_pairwise) (late interaction, ColBERT) and
                     multi_vector_search
    quantization.py  quantize_embeddings (int8, uint8, binary, ubinary) and semantic_search_binary
    _search.py       private: the argument checks, chunked top-k and result structure the searches share

This file only gathers the public names (``__all__``). util imports the kernels (and through them the
runtime) and nothing else of minisbert: the model families and the side rooms import util, never the reverse.
"""

from minisbert.util.multi_vector import (
    maxsim,
    maxsim_pairwise,
    mean_maxsim,
    mean_maxsim_pairwise,
    multi_vector_search,
)
from minisbert.util.quantization import quantize_embeddings
from minisbert.util.retrieval import (
    community_detection,
    paraphrase_mining,
    paraphrase_mining_embeddings,
    semantic_search,
)
from minisbert.util.similarity import (
    cos_sim,
    dot_score,
    euclidean_sim,
    manhattan_sim,
    normalize_embeddings,
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_sim,
    pairwise_manhattan_sim,
)

__all__ = [
    # similarity.py
    "cos_sim",
    "dot_score",
    "euclidean_sim",
    "manhattan_sim",
    "pairwise_cos_sim",
    "pairwise_dot_score",
    "pairwise_euclidean_sim",
    "pairwise_manhattan_sim",
    "normalize_embeddings",
    # retrieval.py
    "semantic_search",
    "paraphrase_mining",
    "paraphrase_mining_embeddings",
    "community_detection",
    # multi_vector.py
    "maxsim",
    "maxsim_pairwise",
    "mean_maxsim",
    "mean_maxsim_pairwise",
    "multi_vector_search",
    # quantization.py
    "quantize_embeddings",
]
