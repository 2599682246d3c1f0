"""The import contracts of DESIGN §2: bot and engine meet only through storage."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

RULES = {
    "bot": {"engine", "songbot"},
    "engine": {"bot", "songbot"},
    "storage": {"bot", "engine", "songbot", "migrations"},
    "migrations": {"bot", "engine", "songbot"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_forbidden_imports_anywhere_in_the_tree():
    violations = []
    for package, forbidden in RULES.items():
        for path in (REPO / package).rglob("*.py"):
            bad = imported_roots(path) & forbidden
            if bad:
                violations.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert violations == []


def test_the_check_sees_a_violation(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from engine.worker import Worker\n    return Worker\n")
    assert "engine" in imported_roots(sneaky)


def test_import_linter_contracts_hold():
    # Run import-linter from this interpreter, not from PATH (make test does not put the venv on PATH).
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    done = subprocess.run(
        [sys.executable, "-c", code, "--config", str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def modules_in_cycles(*packages: str) -> set[tuple[str, str]]:
    """Pairs (a, b) where a imports b directly and b leads back to a: every import cycle shows up here."""
    import grimp

    graph = grimp.build_graph(*packages)
    return {
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    }


def test_no_import_cycles():
    assert modules_in_cycles("storage", "engine", "bot", "songbot") == set()


def test_the_cycle_check_sees_a_cycle(tmp_path, monkeypatch):
    package = tmp_path / "circle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from circle.b import g\n    return g\n")
    (package / "b.py").write_text("from circle.a import f\n\ndef g():\n    return f\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert modules_in_cycles("circle") == {("circle.a", "circle.b"), ("circle.b", "circle.a")}
