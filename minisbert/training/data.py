"""Training examples from a CSV/TSV file: the text columns and, for losses that need one, a label column, named
by header or by 1-based position (STS-B's files: ``6,7,5``), as minisbert.evaluation.read_pairs reads pairs."""

import csv

from minisbert.training.model import TrainingError
from minisbert.training.trainer import InputExample


def read_rows(path):
    """The rows of a CSV file, or of a tab-separated one (a tab in the first line), read without quoting."""
    with open(path, encoding="utf-8", newline="") as file:
        first_line = file.readline()
        file.seek(0)
        if "\t" in first_line:
            return list(csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
        return list(csv.reader(file))


def read_examples(path, columns, with_label):
    """InputExamples from ``path``: ``columns`` (names or 1-based positions) are the texts, the last one the
    label if with_label (a number)."""
    rows = read_rows(path)
    if all(str(column).isdigit() for column in columns):
        positions, first_row = [int(column) - 1 for column in columns], 1
    else:
        header = rows[0] if rows else []
        missing = [column for column in columns if column not in header]
        if missing:
            raise TrainingError(f"{path}: no column {missing} in the header {header}")
        positions, first_row = [header.index(column) for column in columns], 2
    examples = []
    for line_number, row in enumerate(rows[first_row - 1 :], start=first_row):
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
