"""The package layout is the architecture: imports run one way, along the data flow, and every package
says on its first screen what lives there and what it may import (pvg/__init__.py lists the order)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PVG = Path(__file__).resolve().parents[1] / "pvg"

# The order of pvg/__init__.py's docstring: a module may import only from its own layer or one before it.
# errors and progress import nothing of pvg; config may use errors.
LAYER = {"errors": 0, "progress": 0, "config": 1, "data": 2, "run": 3, "game": 4, "export": 5, "eval": 6,
         "inspect": 7, "cluster": 8, "cli": 9}
LAYERS = list(LAYER)


def _layer(name: str) -> int:
    return LAYER.get(name, -1)


def _unit(path: Path) -> str:
    rel = path.relative_to(PVG)
    return rel.parts[0].removesuffix(".py")


def _imported_units(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "pvg":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # `from pvg import x`: x is a unit, or the package's face (__version__)
                found.update(a.name for a in node.names if a.name in LAYERS)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "pvg" and len(parts) > 1:
                    found.add(parts[1])
    return found


def _modules():
    return sorted(p for p in PVG.rglob("*.py") if p != PVG / "__init__.py")


def test_every_module_belongs_to_a_layer():
    units = {_unit(p) for p in _modules()}
    assert units == set(LAYERS), f"units not in pvg/__init__.py's order: {sorted(units ^ set(LAYERS))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PVG)))
def test_imports_run_one_way(path: Path):
    unit = _unit(path)
    upward = sorted(u for u in _imported_units(ast.parse(path.read_text())) if _layer(u) > _layer(unit))
    assert not upward, f"{path.relative_to(PVG.parent)} ({unit}) imports from later layers: {upward}"


@pytest.mark.parametrize("pkg", [p for p in sorted(PVG.iterdir()) if (p / "__init__.py").exists()],
                         ids=lambda p: p.name)
def test_every_package_says_what_lives_there_and_what_it_may_import(pkg: Path):
    doc = ast.get_docstring(ast.parse((pkg / "__init__.py").read_text())) or ""
    assert doc, f"pvg/{pkg.name}/__init__.py has no docstring"
    if pkg.name != "eval":
        assert "May import" in doc, f"pvg/{pkg.name}/__init__.py does not say what it may import"


def test_the_layer_order_is_the_one_the_package_docstring_states():
    import pvg

    doc = pvg.__doc__ or ""
    positions = [doc.find(f"`{name}`") for name in LAYERS if name not in ("errors", "progress", "config")]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), doc
