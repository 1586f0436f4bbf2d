"""What the wheel installs: ``igrog_gadget`` and ``igrog_engine`` (the repository's ``engine/``
folder under an unambiguous name), every package folder listed, and nothing imports the bare
name ``engine`` (which only resolves inside a checkout and would be shadowed by any other
``engine`` on the path)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_folder_is_listed_and_the_engine_is_renamed():
    assert SETUPTOOLS["package-dir"] == {"igrog_engine": "engine"}
    folders = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "igrog_gadget").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert set(SETUPTOOLS["packages"]) == folders | {"igrog_engine"}
    assert not [p for p in (ROOT / "engine").iterdir() if p.is_dir() and p.name != "__pycache__"], (
        "engine/ has subpackages: list them as igrog_engine.<name>"
    )
    missing_init = sorted(f for f in folders if not (ROOT / f.replace(".", "/") / "__init__.py").exists())
    assert missing_init == []


def test_only_the_sample_and_the_standard_configurations_are_package_data():
    data = SETUPTOOLS["package-data"]
    assert data == {"igrog_gadget": ["config/*.toml", "data/sample_radial.h5"]}
    from igrog_gadget.cli import SAMPLE_FILE

    assert SAMPLE_FILE.relative_to(ROOT / "igrog_gadget").as_posix() == "data/sample_radial.h5"


def _bare_engine_imports(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "engine" or name.startswith("engine.") for name in names):
            lines.append(node.lineno)
    return lines


def test_nothing_imports_the_bare_name_engine():
    offenders = {}
    for folder in ("igrog_gadget", "engine", "tests", "benchmarks", "scripts", "docker"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            lines = _bare_engine_imports(path)
            if lines:
                offenders[path.relative_to(ROOT).as_posix()] = lines
    assert offenders == {}
