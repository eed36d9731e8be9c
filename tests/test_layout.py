"""The layout docs/architecture.md describes is the code's: imports go the way its rule table says (read from
the page, parsed with ``ast``, function-level imports included), every module opens with a docstring and every
package's says what it may import, the page's tree names every module of minisbert/ and kernels/ and nothing
else, and every path the page writes between backticks exists."""

import ast
import re

from inputs import REPO

DOC = REPO / "docs" / "architecture.md"


def source_files():
    """Every module of the package, as a path from the repository root: minisbert/... and kernels/..."""
    return sorted(
        path.relative_to(REPO).as_posix()
        for root in ("minisbert", "kernels")
        for path in (REPO / root).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def module_name(path):
    """minisbert/util/__init__.py -> minisbert.util; kernels/topk.py -> minisbert.kernels.topk."""
    parts = path.removesuffix(".py").split("/")
    parts = ["minisbert", *parts] if parts[0] == "kernels" else parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = source_files()
PATH_OF = {module_name(path): path for path in SOURCES}


def doc_table(first_header):
    """The rows (lists of cells) of the page's table whose header row starts with ``first_header``."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def backticked(cell):
    return re.findall(r"`([^`]+)`", cell)


ROOMS = {room: backticked(paths) for room, paths, _ in doc_table("Room")}
MAY_IMPORT = {
    room: set() if allowed == "nothing" else set(allowed.split(", ")) for room, _, allowed in doc_table("Room")
}
EXCEPTIONS = [(importer, backticked(imported)[0]) for importer, imported, _ in doc_table("Importer")]


def room_of(path):
    """The room whose path is the longest match for the file (a folder path ends with /), or None."""
    matches = [
        (len(room_path), room)
        for room, paths in ROOMS.items()
        for room_path in paths
        if path == room_path or room_path.endswith("/") and path.startswith(room_path)
    ]
    return max(matches)[1] if matches else None


def imports_of(path, source):
    """(line, what is imported, the module that holds it) for each import of minisbert in the file's source: for
    ``from minisbert.util import similarity`` the module is minisbert.util.similarity, for ``from minisbert.util
    import cos_sim`` it is minisbert.util."""
    name = module_name(path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "minisbert":
                    yield node.lineno, alias.name, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            if module.split(".")[0] == "minisbert":
                for alias in node.names:
                    what = f"{module}.{alias.name}"
                    yield node.lineno, what, what if what in PATH_OF else module


def check_imports(sources):
    """For {path: source}: (the imports that break the rules, the exceptions that allowed some import)."""
    violations, used = [], set()
    for path, source in sources.items():
        room = room_of(path)
        for line, what, module in imports_of(path, source):
            if module not in PATH_OF:
                violations.append(f"{path}:{line} imports {what}: no such module")
                continue
            target = room_of(PATH_OF[module])
            if target == room or target in MAY_IMPORT.get(room, ()):
                continue
            allowing = [(importer, imported) for importer, imported in EXCEPTIONS
                        if importer in (room, "any") and imported in (what, module)]
            used.update(allowing)
            if not allowing:
                violations.append(f"{path}:{line} ({room}) imports {what} ({target})")
    return violations, used


def the_code():
    return {path: (REPO / path).read_text(encoding="utf-8") for path in SOURCES}


def test_every_module_is_in_a_room_and_every_room_path_exists():
    assert [path for path in SOURCES if room_of(path) is None] == [], "give these files a room in docs/architecture.md"
    assert [path for paths in ROOMS.values() for path in paths if not (REPO / path).exists()] == []
    assert set().union(*MAY_IMPORT.values()) <= set(ROOMS), "the rule table names a room it has no row for"


def test_imports_go_the_way_the_rule_table_says():
    violations, _ = check_imports(the_code())
    assert violations == [], "imports against docs/architecture.md's rules:\n" + "\n".join(violations)


def test_every_exception_to_the_rules_is_still_needed():
    _, used = check_imports(the_code())
    assert [exception for exception in EXCEPTIONS if exception not in used] == []


def test_the_check_catches_what_the_rules_forbid():
    kernel_importing_a_family = "import numpy\n\ndef f():\n    from minisbert.families import sentence_transformer\n"
    side_rooms = "from minisbert.training.losses import LOSSES\n"
    violations, _ = check_imports(
        {"kernels/topk.py": kernel_importing_a_family, "minisbert/inspection/trace.py": side_rooms}
    )
    assert violations == [
        "kernels/topk.py:4 (kernels) imports minisbert.families.sentence_transformer (families)",
        "minisbert/inspection/trace.py:1 (inspection) imports minisbert.training.losses.LOSSES (training)",
    ]
    violations, used = check_imports({"minisbert/training/data.py": "from minisbert.evaluation import read_pairs\n"})
    assert violations == [] and used == {("training", "minisbert.evaluation")}
    relative = "from .. import cli\nfrom ..architectures import layers\n"
    violations, _ = check_imports({"minisbert/modules/__init__.py": relative})
    assert violations == ["minisbert/modules/__init__.py:1 (modules) imports minisbert.cli (cli)"]


def test_every_module_opens_with_a_docstring_and_every_package_says_what_it_may_import():
    docstrings = {path: ast.get_docstring(ast.parse((REPO / path).read_text(encoding="utf-8"))) for path in SOURCES}
    assert [path for path, docstring in docstrings.items() if not docstring] == []
    silent = [path for path, docstring in docstrings.items()
              if path.endswith("__init__.py") and "import" not in (docstring or "").lower()]
    assert silent == [], "these packages' docstrings do not say what they may import"


def tree_paths():
    """The paths of docs/architecture.md's tree (the code block after "## Layout"): one entry a line, two
    spaces of indentation a level, folders ending with /."""
    text = DOC.read_text(encoding="utf-8").split("## Layout", 1)[1]
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    paths, parents = [], []
    for line in block.splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        parents = parents[:depth] + [line.split()[0]]
        paths.append("".join(parents))
    return paths


def test_the_tree_names_every_module_and_only_what_exists():
    paths = tree_paths()
    assert len(paths) == len(set(paths))
    assert [path for path in paths if not (REPO / path).exists()] == [], "in the tree, not in the repository"
    listed = {path for path in paths if path.endswith(".py")}
    assert [path for path in SOURCES if path not in listed] == [], "in the code, not in docs/architecture.md's tree"


def test_every_path_the_page_names_exists():
    paths = {token for token in backticked(DOC.read_text(encoding="utf-8"))
             if "/" in token and not re.search(r"[<>*\s]", token)}
    assert paths, "the page names no path"
    assert sorted(path for path in paths if not (REPO / path).exists()) == []
