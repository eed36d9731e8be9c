"""What sentence_transformers.util offers for working with embeddings, without torch: the similarity
functions (cos_sim, dot_score, euclidean_sim, manhattan_sim and their pairwise_* forms).
"""

from minisbert.similarity import (  # noqa: F401  (re-exported: minisbert.util mirrors sentence_transformers.util)
    cos_sim,
    dot_score,
    euclidean_sim,
    manhattan_sim,
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_sim,
    pairwise_manhattan_sim,
)
