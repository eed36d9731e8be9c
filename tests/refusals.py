"""The README's table "What minisbert refuses", made from the same rows the tests run.

Each test module of a promise (test_bad_inputs.py, test_hostile_files.py) holds a list of ``Refusal`` rows and
a parametrized test that triggers each one and checks the exception type and that the message contains
``message``. ``render()`` turns all rows into the Markdown table; a test checks the README holds it.
Regenerate after adding rows: ``.venv/bin/python tests/refusals.py``.
"""

import re
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Refusal:
    area: str  # where the bad input goes: "encode", "config files", "safetensors", ...
    kind: str  # what is wrong with it, as a user would say it
    error: type  # the exception the user gets
    message: str  # a part of the message the user sees (the test finds it verbatim)
    trigger: Callable  # sets up the bad thing from the module test's fixtures, returns the call that meets it

    def __str__(self):
        return f"{self.area}: {self.kind}"


def check(refusal, call):
    """Runs ``call`` (made by the row's trigger) and checks its exception and message; returns the message."""
    try:
        call()
    except refusal.error as error:
        message = str(error)
    else:
        raise AssertionError(f"{refusal} was accepted")
    assert refusal.message in message, f"{refusal}: {message!r} lacks {refusal.message!r}"
    return message


def all_refusals():
    import test_bad_inputs  # the modules pytest imports (tests/ on sys.path), not second copies under tests.
    import test_hostile_files

    return test_bad_inputs.REFUSALS + test_hostile_files.REFUSALS


def render(refusals=None):
    rows = ["| Where | Bad input | Error | The message says (part) |", "|---|---|---|---|"]
    for refusal in refusals or all_refusals():
        message = re.sub(r"\s+", " ", refusal.message).replace("|", "\\|")
        rows.append(f"| {refusal.area} | {refusal.kind} | `{refusal.error.__name__}` | {message} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
    print(render(), end="")
