"""The house rules of docs/ARCHITECTURE.md, read from the source: imports follow the data
(training -> runtime -> export -> benchmarks -> facerestore, the CLI), no import cycle between
modules, pure-data contracts, and Triton python models that load only what they run."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# bottom to top: a layer may import those below it, never those above
LAYERS = ("training", "runtime", "export", "benchmarks", "facerestore")
# the served model repository's python sources run in Triton's stub at the level of the runtime
GUESTS = {"triton_repo": "runtime"}


def module_name(path: Path) -> str:
    """The dotted module name of a source file under ROOT."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in `source`: module level and inside functions,
    relative ones resolved against `module`, and importlib.import_module / __import__ of a
    string constant. A `from a import b` gives both a and a.b (b may be a submodule)."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def layer_of(name: str) -> str | None:
    """The layer a dotted module name belongs to (None: not ours)."""
    top = name.split(".")[0]
    return GUESTS.get(top, top if top in LAYERS else None)


def upward_imports(files: dict[str, tuple[Path, str]]) -> list[str]:
    """'path:line imports name (layer -> higher layer)' for every import against the direction."""
    bad = []
    for module, (path, source) in files.items():
        here = layer_of(module)
        for line, name in imported_names(source, module, path.name == "__init__.py"):
            there = layer_of(name)
            if here and there and LAYERS.index(there) > LAYERS.index(here):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({here} -> {there})")
    return sorted(set(bad))


def import_cycles(files: dict[str, tuple[Path, str]]) -> list[list[str]]:
    """The cycles (strongly connected components of more than one module) of the import graph
    of our modules, function-level imports included."""
    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    edges = {m: {t for _, n in imported_names(s, m, p.name == "__init__.py") if (t := resolve(n)) and t != m}
             for m, (p, s) in files.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:   # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                cycles.append(sorted(component + [v]))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def project_files() -> dict[str, tuple[Path, str]]:
    """module name -> (path, source) of every .py of the layers and the model repository."""
    folders = [*LAYERS, *GUESTS]
    return {module_name(p): (p, p.read_text()) for d in folders for p in sorted((ROOT / d).rglob("*.py"))
            if "__pycache__" not in p.parts}


def test_no_import_against_the_direction_of_the_data():
    files = project_files()
    assert {"training", "runtime", "export", "facerestore", "facerestore.cli"} <= set(files)
    assert upward_imports(files) == []


def test_no_import_cycle_between_modules():
    assert import_cycles(project_files()) == []


def test_the_scan_sees_back_doors_and_cycles():
    """The checks catch what they are for: an importlib back door, a relative import and a
    function-level import reaching up, and a two-module cycle."""
    runtime_cli = "def f():\n    import importlib\n    return importlib.import_module('export.cli')\n"
    relative = "def g():\n    from ..facerestore import cli\n"
    files = {"runtime.x": (ROOT / "runtime" / "x.py", runtime_cli),
             "export.y": (ROOT / "export" / "sub" / "y.py", relative),
             "training.a": (ROOT / "training" / "a.py", "import training.b\n"),
             "training.b": (ROOT / "training" / "b.py", "def h():\n    from training import a\n")}
    assert imported_names(relative, "export.sub.y") == [(2, "export.facerestore"), (2, "export.facerestore.cli")]
    files["export.y"] = (ROOT / "export" / "y.py", "def g():\n    from facerestore import cli\n")
    assert upward_imports(files) == ["export/y.py:2 imports facerestore (export -> facerestore)",
                                     "export/y.py:2 imports facerestore.cli (export -> facerestore)",
                                     "runtime/x.py:3 imports export.cli (runtime -> export)"]
    assert import_cycles(files) == [["training.a", "training.b"]]


def _loaded(code: str, *paths: str) -> set[str]:
    """The top-level packages loaded by `code` in a fresh interpreter (the checkout first on sys.path)."""
    probe = f"import sys\nsys.path[:0] = {[str(ROOT), *paths]!r}\n{code}\nimport json\n" \
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_contracts_are_pure_data():
    """The network and service contracts load no torch (nor training, nor export's builders)."""
    loaded = _loaded("import runtime.contracts, runtime.contracts.service")
    assert "runtime" in loaded
    assert loaded.isdisjoint({"torch", "training", "export"})


@pytest.mark.parametrize("model", ["face_preprocess", "face_postprocess", "safm_faces"])
def test_triton_models_without_a_torch_loop_load_neither_torch_nor_training(model):
    """Python models that run no torch code (the networks are their own Triton models): their
    stub process loads neither torch nor `training` (the real triton_python_backend_utils of
    nvidia-pytriton's backend). authface_faces runs its denoising loop in torch."""
    import pytriton

    backend = Path(pytriton.__file__).parent / "tritonserver" / "backends" / "python"
    assert (backend / "triton_python_backend_utils.py").is_file(), f"nvidia-pytriton has no python backend at {backend}"
    source = ROOT / "triton_repo" / model / "1" / "model.py"
    loaded = _loaded(f"import importlib.util\nspec = importlib.util.spec_from_file_location('model', {str(source)!r})\n"
                     "spec.loader.exec_module(importlib.util.module_from_spec(spec))", str(backend))
    assert {"runtime", "numpy", "triton_python_backend_utils"} <= loaded
    assert loaded.isdisjoint({"torch", "training", "export", "facerestore"})
