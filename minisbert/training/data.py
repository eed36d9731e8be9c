"""Training examples from a CSV/TSV file: the text columns and, for losses that need one, a label column, named
by header or by 1-based position (STS-B's files: ``6,7,5``), as minisbert.evaluation.read_pairs reads pairs."""

from minisbert.evaluation import read_columns
from minisbert.training.model import TrainingError
from minisbert.training.trainer import InputExample


def read_examples(path, columns, with_label):
    """InputExamples from ``path``: ``columns`` (names or 1-based positions, evaluation.read_columns) are the
    texts, the last one the label if with_label (a number)."""
    rows, positions = read_columns(path, columns)
    examples = []
    for line_number, row in rows:
        if not row:
            continue
        try:
            values = [row[position] for position in positions]
            label = float(values.pop()) if with_label else None
        except (IndexError, ValueError):
            raise TrainingError(
                f"{path}, line {line_number}: expected columns {list(columns)}"
                + (" with a numeric label last" if with_label else "") + f", got {row}"
            ) from None
        examples.append(InputExample(values, label))
    if not examples:
        raise TrainingError(f"{path} holds no examples")
    return examples
