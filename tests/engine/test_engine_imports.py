"""The engine stays domain-agnostic: no MRI / Gadgetron imports anywhere in engine/."""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {"igrog_gadget", "ismrmrd", "gadgetron"}
ENGINE_DIR = Path(__file__).resolve().parents[2] / "engine"


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in {
            "import_module",
            "__import__",
        }:
            modules.update(
                arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            )
    return modules


def test_engine_imports_nothing_mri_specific() -> None:
    files = sorted(ENGINE_DIR.rglob("*.py"))
    assert files, f"no engine sources found under {ENGINE_DIR}"
    offenders = {
        str(path.relative_to(ENGINE_DIR)): sorted(m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN)
        for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}
