"""The import structure: no module of ``igrog_gadget`` or the engine takes part in an import
cycle, and the engine (``engine/``, installed as ``igrog_engine``) imports nothing of MRI.

How imports are read (``ast``, nothing is imported):

- every ``import`` / ``from ... import`` of the package counts, **function-level ones
  included**: an import moved into a function to dodge a cycle at import time is still a
  cycle in the design (the two modules still need each other), so it fails here too.
  ``importlib.import_module("...")`` with a literal name counts as well.
- imports under ``if TYPE_CHECKING:`` never run and do not count.
- ``from a.b import c`` is an edge to the submodule ``a.b.c`` when ``c`` is one, else to the
  package ``a.b`` (its ``__init__``). Parent packages that Python initialises on the way are
  not edges: a submodule importing a sibling while its package's ``__init__`` re-exports
  both is not a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> import name (the engine's folder is installed under another name)
PACKAGES = {"igrog_gadget": "igrog_gadget", "engine": "igrog_engine"}
MRI = {"igrog_gadget", "ismrmrd", "mrd", "gadgetron", "h5py", "finufft", "torchkbnufft", "sigpy"}


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, name in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [name, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """Every module name ``module`` imports (absolute, relative ones resolved)."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                names.add(submodule if submodule in MODULES else base)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return names


def _graph() -> dict[str, set[str]]:
    return {module: {name for name in _imports(module) if name in MODULES} - {module} for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_the_graph_sees_the_packages_and_their_imports():
    graph = _graph()
    assert "igrog_gadget.gadget.protocol" in graph and "igrog_engine.trainer" in graph
    assert "igrog_gadget.gadget.wire" in graph["igrog_gadget.gadget.protocol"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_takes_part_in_an_import_cycle():
    graph = _graph()
    described = [
        " <-> ".join(cycle) + ": " + "; ".join(f"{a} -> {b}" for a in cycle for b in sorted(graph[a]) if b in cycle)
        for cycle in _cycles(graph)
    ]
    assert described == []


def test_the_engine_imports_nothing_of_mri():
    offenders = {
        module: sorted(name for name in _imports(module) if name.split(".")[0] in MRI)
        for module in MODULES
        if module.split(".")[0] == "igrog_engine"
    }
    assert offenders and {module: names for module, names in offenders.items() if names} == {}


def test_importing_the_library_changes_nothing_of_the_process():
    """Environment variables and torch's thread count are the entry points' business
    (``igrog_gadget.environment.configure_process``), never an import's."""
    import subprocess
    import sys

    script = (
        "import os, torch\n"
        "environ, threads = dict(os.environ), torch.get_num_threads()\n"
        "import igrog_gadget.cli, igrog_gadget.io, igrog_gadget.gadget.external, igrog_gadget.stream.pipeline\n"
        "assert dict(os.environ) == environ, set(os.environ.items()) ^ set(environ.items())\n"
        "assert torch.get_num_threads() == threads\n"
        "from igrog_gadget.environment import configure_process\n"
        "configure_process()\n"
        "assert os.environ['HDF5_USE_FILE_LOCKING'] == 'FALSE' and os.environ['OMP_WAIT_POLICY'] == 'PASSIVE'\n"
        "assert os.environ['OPENBLAS_THREAD_TIMEOUT'] == '4'\n"
    )
    settings = ("HDF5_USE_FILE_LOCKING", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")
    environment = {k: v for k, v in __import__("os").environ.items() if k not in settings}
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, env=environment, timeout=300)


def test_a_bad_input_is_refused_before_torch_loads(tmp_path):
    """``igrog --help`` and the refusal of a missing input (exit 2) need neither torch, the
    gridding pipeline nor the simulator's numerics (scipy), even with a thread count (as
    ``igrog batch`` gives its replays): a bad input costs no second of imports."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from igrog_gadget.cli import build_parser, main\n"
        "build_parser()\n"
        f"code = main(['-q', 'replay', {str(tmp_path / 'missing.h5')!r}, {str(tmp_path / 'out.h5')!r}, "
        "'--set', 'gridding.cpu_threads=1'])\n"
        "assert code == 2, code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'scipy' not in sys.modules, 'scipy was imported'\n"
        "assert 'igrog_gadget.simulate.acquire' not in sys.modules, 'the simulator was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=300)
    assert not (tmp_path / "out.h5").exists()


#: The package's layers, lowest first: a module imports only from its own layer or lower ones.
#: The iGROG core knows no variant, the variants know no planning, planning knows no stream, and
#: only the front ends (replay, pipe, batch, gadget, simulator, command line) know the stream.
LAYERS = (
    ("errors", "environment", "config", "scan", "limits", "arch", "numerics"),
    ("io", "recon"),
    ("core",),
    ("app",),
    ("planning",),
    ("stream",),
    ("replay", "pipe", "batch", "gadget", "preview", "simulate", "cli", "__main__"),
)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "igrog_gadget" or len(parts) == 1:
        return None
    return next((rank for rank, names in enumerate(LAYERS) if parts[1] in names), -1)


def test_every_package_has_a_layer_and_imports_only_downwards():
    graph = _graph()
    unplaced = sorted(m for m in graph if _layer(m) == -1)
    assert unplaced == [], f"modules of no layer in LAYERS: {unplaced}"
    upwards = sorted(
        f"{a} -> {b}"
        for a, names in graph.items()
        for b in names
        if _layer(a) is not None and _layer(b) is not None and _layer(b) > _layer(a)  # type: ignore[operator]
    )
    assert upwards == []
