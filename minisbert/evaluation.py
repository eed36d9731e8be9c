"""Evaluation on sentence pairs with gold similarity scores (STS): EmbeddingSimilarityEvaluator reports the
Pearson and Spearman correlation between the gold scores and the embeddings' similarities, as sentence-transformers'
does; the two correlations are computed here in NumPy (Spearman with average ranks for ties, as scipy does).
read_pairs / read_columns read the pairs (and training's data) from CSV or TSV files. A side room: it imports
minisbert.util only, and nothing on the data path imports it.
"""

import csv
import itertools
import logging
import math
import os

import numpy as np

from minisbert.util.quantization import check_precision, unpack_bits
from minisbert.util.similarity import SIMILARITY_FUNCTIONS, similarity_function_name

__all__ = ["EmbeddingSimilarityEvaluator", "read_pairs", "read_columns", "pearson", "spearman"]

logger = logging.getLogger(__name__)


def paired_vectors(x, y):
    """x, y as float64 vectors of one length >= 2, or a ValueError."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if len(x) != len(y):
        raise ValueError(f"correlation needs two sequences of the same length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError(f"correlation needs at least 2 pairs, got {len(x)}")
    return x, y


def pearson(x, y):
    """Pearson's r of two sequences (NaN if one is constant or holds NaN), as scipy.stats.pearsonr's statistic."""
    x, y = paired_vectors(x, y)
    x_centered, y_centered = x - x.mean(), y - y.mean()  # (n,)
    norm_x, norm_y = np.linalg.norm(x_centered), np.linalg.norm(y_centered)
    if not (norm_x > 0 and norm_y > 0):
        return float("nan")
    return float(np.clip(np.dot(x_centered / norm_x, y_centered / norm_y), -1.0, 1.0))


def average_ranks(values):
    """1-based ranks of values, tied values sharing the mean of their ranks (scipy.stats.rankdata 'average')."""
    order = np.argsort(values, kind="stable")  # (n,)
    sorted_values = values[order]
    starts = np.r_[True, sorted_values[1:] != sorted_values[:-1]]  # (n,) first of each group of equal values
    group = np.cumsum(starts) - 1  # (n,) group of each sorted position
    bounds = np.r_[np.flatnonzero(starts), len(values)]  # (groups + 1,)
    group_ranks = (bounds[:-1] + bounds[1:] + 1) / 2  # mean of the 1-based positions bounds[g] + 1 ... bounds[g + 1]
    ranks = np.empty(len(values))
    ranks[order] = group_ranks[group]
    return ranks


def spearman(x, y):
    """Spearman's rho: Pearson's r of the average ranks (NaN if an input holds NaN), as scipy.stats.spearmanr."""
    x, y = paired_vectors(x, y)
    if np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    return pearson(average_ranks(x), average_ranks(y))


def read_columns(path, columns):
    """The rows of a CSV/TSV file after its header, as (line number, row) pairs, and the 0-based positions of
    ``columns``: header names, or 1-based positions in a file without header (STS-B's files: 6, 7, 5).
    With a header every non-empty row has its number of columns; without one, rows may have more columns than
    those named (STS-B's rows carry 7 or 9). Tab-separated files (tab in the first line) are read without quoting."""
    try:
        with open(path, encoding="utf-8", newline="") as file:
            first_line = file.readline()
            lines = itertools.chain([first_line], file)  # not seek(0): a pipe cannot seek
            if "\t" in first_line:
                rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
            else:
                rows = list(csv.reader(lines))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error})") from None
    if all(str(column).isdigit() for column in columns):
        if not all(int(column) >= 1 for column in columns):
            raise ValueError(f"column positions count from 1, got {list(columns)}")
        positions, first_row = [int(column) - 1 for column in columns], 1
    else:
        header = rows[0] if rows else []
        missing = [column for column in columns if column not in header]
        if missing:
            raise ValueError(f"{path}: no column {missing} in the header {header}")
        positions, first_row = [header.index(column) for column in columns], 2
        for line_number, row in enumerate(rows[1:], start=2):  # a stray separator shifts a row's fields
            if row and len(row) != len(header):
                raise ValueError(f"{path}, line {line_number}: {len(row)} columns where the header has "
                                 f"{len(header)} {header}: {row!r:.200}")
    return list(enumerate(rows[first_row - 1 :], start=first_row)), positions


def read_pairs(path, columns=("sentence1", "sentence2", "score")):
    """sentences1, sentences2, scores from a CSV/TSV file of sentence pairs. columns names the two sentence
    columns and the score column (read_columns)."""
    if len(columns) != 3:
        raise ValueError(f"columns must name three columns (sentence1, sentence2, score), got {list(columns)}")
    rows, positions = read_columns(path, columns)
    sentences1, sentences2, scores = [], [], []
    for line_number, row in rows:
        if not row:
            continue
        try:
            sentence1, sentence2, score = (row[position] for position in positions)
            scores.append(float(score))
            if not math.isfinite(scores[-1]):
                raise ValueError
        except (IndexError, ValueError):
            raise ValueError(
                f"{path}, line {line_number}: expected columns {list(columns)} with a finite numeric score, got {row}"
            ) from None
        sentences1.append(sentence1)
        sentences2.append(sentence2)
    return sentences1, sentences2, scores


class EmbeddingSimilarityEvaluator:
    """Pearson and Spearman correlation of gold scores with the similarity of each pair's embeddings, for each
    similarity function in similarity_fn_names (default: the model's). Calling it returns a dict of metrics named
    as sentence-transformers names them ("{name}_pearson_cosine", ..., "spearman_max" when there are several)."""

    def __init__(
        self,
        sentences1,
        sentences2,
        scores,
        batch_size=16,
        main_similarity=None,
        similarity_fn_names=None,
        name="",
        show_progress_bar=False,
        write_csv=True,
        precision=None,
        truncate_dim=None,
    ):
        if not len(sentences1) == len(sentences2) == len(scores):
            raise ValueError(
                f"sentences1, sentences2 and scores must have one length, got {len(sentences1)}, "
                f"{len(sentences2)} and {len(scores)}"
            )
        finite = [isinstance(score, (int, float, np.number)) and math.isfinite(score) for score in scores]
        if not all(finite):
            raise ValueError(f"scores must be finite numbers; pair {finite.index(False)} has {list(scores)[finite.index(False)]!r:.40}")
        self.sentences1, self.sentences2, self.scores = list(sentences1), list(sentences2), list(scores)
        self.batch_size = batch_size
        self.main_similarity = similarity_function_name(main_similarity) if main_similarity else None
        self.similarity_fn_names = [similarity_function_name(fn) for fn in similarity_fn_names or []]
        if not self.similarity_fn_names and self.main_similarity is not None:
            self.similarity_fn_names = [self.main_similarity]
        self.name = name
        self.show_progress_bar = show_progress_bar
        self.write_csv = write_csv
        self.precision = check_precision(precision) if precision is not None else None
        self.truncate_dim = truncate_dim
        self.csv_file = (
            f"similarity_evaluation{'_' + name if name else ''}{'_' + precision if precision else ''}_results.csv"
        )
        self.primary_metric = None

    def __call__(self, model, output_path=None, epoch=-1, steps=-1):
        if not callable(getattr(model, "encode", None)) or isinstance(model, (str, bytes)):
            raise TypeError(f"EmbeddingSimilarityEvaluator evaluates a model with encode() (a SentenceTransformer), "
                            f"got {type(model).__name__}")
        embeddings1, embeddings2 = self.embed_pairs(model)
        if not self.similarity_fn_names:
            self.similarity_fn_names = [model.similarity_fn_name]
        metrics = {}
        for fn_name in self.similarity_fn_names:
            similarities = SIMILARITY_FUNCTIONS[fn_name][1](embeddings1, embeddings2)  # (pairs,)
            metrics[f"pearson_{fn_name}"] = pearson(self.scores, similarities)
            metrics[f"spearman_{fn_name}"] = spearman(self.scores, similarities)
            logger.info(
                f"{fn_name.capitalize()}-Similarity:\tPearson: {metrics[f'pearson_{fn_name}']:.4f}\t"
                f"Spearman: {metrics[f'spearman_{fn_name}']:.4f}"
            )
        if output_path is not None and self.write_csv:
            self.append_csv(output_path, epoch, steps, metrics)
        if len(self.similarity_fn_names) > 1:
            metrics["pearson_max"] = max(metrics[f"pearson_{fn}"] for fn in self.similarity_fn_names)
            metrics["spearman_max"] = max(metrics[f"spearman_{fn}"] for fn in self.similarity_fn_names)
        if self.main_similarity:
            self.primary_metric = f"spearman_{self.main_similarity}"
        elif len(self.similarity_fn_names) > 1:
            self.primary_metric = "spearman_max"
        else:
            self.primary_metric = f"spearman_{self.similarity_fn_names[0]}"
        if self.name:
            self.primary_metric = f"{self.name}_{self.primary_metric}"
            return {f"{self.name}_{key}": value for key, value in metrics.items()}
        return metrics

    def embed_pairs(self, model):
        """The float embeddings of sentences1 and sentences2; quantized ones come back unpacked, as float32."""

        def embed(sentences):
            return model.encode(
                sentences,
                batch_size=self.batch_size,
                show_progress_bar=self.show_progress_bar,
                precision=self.precision,
                normalize_embeddings=bool(self.precision),
                truncate_dim=self.truncate_dim,
            )

        if self.precision in ("int8", "uint8"):  # calibrated on both sides together, as sentence-transformers does
            embeddings = embed(self.sentences1 + self.sentences2)
            embeddings1, embeddings2 = embeddings[: len(self.sentences1)], embeddings[len(self.sentences1) :]
        else:
            embeddings1, embeddings2 = embed(self.sentences1), embed(self.sentences2)
        if self.precision in ("binary", "ubinary"):
            bits = 8 * embeddings1.shape[1]
            embeddings1, embeddings2 = unpack_bits(embeddings1, bits), unpack_bits(embeddings2, bits)
        if self.precision in ("int8", "uint8", "binary", "ubinary"):
            embeddings1, embeddings2 = embeddings1.astype(np.float32), embeddings2.astype(np.float32)
        return embeddings1, embeddings2

    def append_csv(self, output_path, epoch, steps, metrics):
        os.makedirs(output_path, exist_ok=True)
        csv_path = os.path.join(output_path, self.csv_file)
        write_header = not os.path.isfile(csv_path)
        with open(csv_path, newline="", mode="a", encoding="utf-8") as file:
            writer = csv.writer(file)
            if write_header:
                writer.writerow(
                    ["epoch", "steps"]
                    + [f"{fn}_{metric}" for fn in self.similarity_fn_names for metric in ("pearson", "spearman")]
                )
            writer.writerow(
                [epoch, steps]
                + [metrics[f"{metric}_{fn}"] for fn in self.similarity_fn_names for metric in ("pearson", "spearman")]
            )
