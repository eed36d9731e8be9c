"""bench/RESULTS.md is written by hand except for the sections between `<!-- NAME: start -->` and
`<!-- NAME: end -->`, which the benchmark scripts regenerate: ``replace_section`` rewrites one."""

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def replace_section(name, text):
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    document = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if start not in document:
        document = f"{document.rstrip()}\n\n{start}\n{end}\n"
    before, rest = document.split(start, 1)
    after = rest.split(end, 1)[1]
    RESULTS.write_text(f"{before}{start}\n{text.strip()}\n{end}{after}", encoding="utf-8")
