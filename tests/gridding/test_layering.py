"""Layers do not mix: only I/O, gadget, CLI, pipe (and the simulator's writer) import ismrmrd (the engine: tests/test_architecture.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_ISMRMRD = (
    "igrog_gadget/io/", "igrog_gadget/gadget/", "igrog_gadget/cli.py", "igrog_gadget/pipe.py", "igrog_gadget/simulate/",
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_boundary_modules_import_ismrmrd_or_gadgetron():
    offenders = []
    for path in sorted((ROOT / "igrog_gadget").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if imported_modules(path) & {"ismrmrd", "gadgetron"} and not relative.startswith(ALLOWED_ISMRMRD):
            offenders.append(relative)
    assert offenders == []
