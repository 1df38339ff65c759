"""The house's rules, checked on the code itself: no import circle and no arrow back up
between the packages, rooms of comparable size, and only the design card's names installed
at the top of site-packages."""

import ast
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("processors", "modeling", "training")
PROGRAMS = ("run_classifier", "extract_features")
# Who may import whom: the model knows no data and no loop; the data knows no loop.
MAY_IMPORT = {"modeling": {"modeling"}, "processors": {"processors", "modeling"},
              "training": {"training", "modeling", "processors"}}
GENERIC = {"core", "cli", "utils", "common", "checks", "config", "run_checks", "model_checks",
           "run_search", "helpers", "misc"}


def modules() -> dict[str, str]:
    """Module name -> path, for every module of the packages and programs."""
    found = {name: os.path.join(ROOT, name + ".py") for name in PROGRAMS}
    for package in PACKAGES:
        for entry in sorted(os.listdir(os.path.join(ROOT, package))):
            if entry.endswith(".py"):
                name = package if entry == "__init__.py" else f"{package}.{entry[:-3]}"
                found[name] = os.path.join(ROOT, package, entry)
    return found


def imports(name: str, path: str, known: dict) -> set[str]:
    """The project modules `name` imports, at any depth in the file (lazy imports too)."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_package_imports_a_package_above_it(graph):
    wrong = sorted((name, target) for name, targets in graph.items() for target in targets
                   if name.split(".")[0] in MAY_IMPORT
                   and target.split(".")[0] not in MAY_IMPORT[name.split(".")[0]])
    assert wrong == []


def test_there_is_no_import_circle(graph):
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name, path):
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                pytest.fail("import circle: " + " -> ".join(path + [name, target]))
            if target not in state:
                visit(target, path + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_no_package_holds_much_more_than_a_third_of_the_code():
    lines = {}
    for name, path in modules().items():
        with open(path) as f:
            lines[name.split(".")[0]] = lines.get(name.split(".")[0], 0) + len(f.readlines())
    total = sum(lines.values())
    assert max(lines[p] for p in PACKAGES) <= 0.4 * total, lines


def test_a_plain_install_puts_only_the_design_cards_names_at_the_top(tmp_path):
    """A non-editable install's top level: the programs and the three packages, no catch-all
    module names (built as a wheel, which is what pip installs)."""
    source = tmp_path / "source"  # the tracked files alone: no stale build/ folder
    names = ["setup.cfg", "pyproject.toml", "README.md", *(f"{p}.py" for p in PROGRAMS)]
    source.mkdir()
    for name in names:
        shutil.copy(os.path.join(ROOT, name), source / name)
    for package in PACKAGES:
        shutil.copytree(os.path.join(ROOT, package), source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(source)], check=True, capture_output=True,
                   timeout=300)
    wheel = next(p for p in os.listdir(tmp_path) if p.endswith(".whl"))
    with zipfile.ZipFile(tmp_path / wheel) as z:
        top = {n.split("/")[0].removesuffix(".py") for n in z.namelist()
               if ".dist-info" not in n.split("/")[0]}
    assert top == set(PROGRAMS) | set(PACKAGES)
    assert not top & GENERIC
