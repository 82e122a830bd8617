"""The package's layers, as the module map states them: lower layers never import higher ones, and no xcebra
import hides inside a function to dodge that.

The layer of every module is the ``layer`` column of ``docs/developer/module-map.md`` (the test of that page
checks that every module is listed), so the map and the code cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xcebra"
#: bottom to top; a module may import its own layer and the ones below
LAYERS = ("foundation", "data", "sampling", "models", "training", "attribution", "estimators", "pipeline", "viz",
          "apps", "cli")
#: xcebra imports inside a function that are there on purpose: (importer, imported, why)
ALLOWED_IN_FUNCTIONS = {
    ("attribution/maps.py", "viz/maps.py"): "AttributionMap.plot, deprecated, forwards to the viz layer",
}
#: modules not judged yet, with the reason
NOT_JUDGED: dict[str, str] = {}


def _layers() -> dict[str, str]:
    text = (ROOT / "docs" / "developer" / "module-map.md").read_text()
    return {m: layer for m, layer in re.findall(r"^\| `([\w/]+\.py)` \| (\w+) \|", text, re.M)}


def _module_file(parts: list[str]) -> str | None:
    path = PACKAGE.joinpath(*parts)
    if parts and path.with_suffix(".py").is_file():
        return "/".join(parts) + ".py"
    if (path / "__init__.py").is_file():
        return "/".join(parts + ["__init__.py"]) if parts else "__init__.py"
    return None


def _targets(importer: str, node: ast.AST) -> list[str]:
    """The xcebra modules an import statement of ``importer`` (a path under xcebra/) loads."""
    if isinstance(node, ast.Import):
        names = [a.name.split(".")[1:] for a in node.names if a.name == "xcebra" or a.name.startswith("xcebra.")]
        return [m for m in (_module_file(n) for n in names) if m]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level == 0:
        if not node.module or not (node.module == "xcebra" or node.module.startswith("xcebra.")):
            return []
        base = node.module.split(".")[1:]
    else:
        package = importer.split("/")[:-1]
        base = package[:len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
    found = []
    for alias in node.names:
        found.append(_module_file(base + [alias.name]) or _module_file(base))
    return [m for m in found if m]


def _imports(importer: str):
    """(imported module, line, inside a function) for every xcebra import of ``importer``."""
    tree = ast.parse((PACKAGE / importer).read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(node) for f in functions for node in ast.walk(f)}
    for node in ast.walk(tree):
        for target in _targets(importer, node):
            yield target, node.lineno, id(node) in inside


MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_a_higher_layer(module):
    if module in NOT_JUDGED:
        pytest.skip(NOT_JUDGED[module])
    layers = _layers()
    rank = {name: i for i, name in enumerate(LAYERS)}
    assert layers.get(module) in rank, f"{module}: no layer in docs/developer/module-map.md"
    upward = [f"line {line}: {target} ({layers.get(target)})" for target, line, _ in _imports(module)
              if target != "__init__.py" and rank.get(layers.get(target), -1) > rank[layers[module]]
              and (module, target) not in ALLOWED_IN_FUNCTIONS]
    assert not upward, f"{module} ({layers[module]}) imports a higher layer: {upward}"


@pytest.mark.parametrize("module", MODULES)
def test_no_xcebra_import_hides_in_a_function(module):
    if module in NOT_JUDGED:
        pytest.skip(NOT_JUDGED[module])
    hidden = [f"line {line}: {target}" for target, line, in_function in _imports(module)
              if in_function and (module, target) not in ALLOWED_IN_FUNCTIONS]
    assert not hidden, f"{module} imports xcebra modules inside functions: {hidden}"


def test_the_resolver_sees_relative_and_absolute_imports():
    assert any(t == "training/loop.py" for t, _, _ in _imports("training/contrastive.py"))
    assert {t for t, _, _ in _imports("hypotheses/scores.py")} >= {"metrics.py", "_validation.py", "hypotheses/ground_truth.py"}
    assert any(t == "viz/maps.py" and inside for t, _, inside in _imports("attribution/maps.py"))
