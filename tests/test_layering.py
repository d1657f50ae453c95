"""The layering is a test: every module under ``toolkit/`` is parsed (``ast``) for what it
imports (module level, inside functions, under ``TYPE_CHECKING``, and the string imports
``importlib.import_module("...")`` / ``__import__("...")``), and the rules below hold.

Bottom to top (DESIGN.md, section 2): ``registry`` <- ``nn``, ``optim``, ``data`` <-
``models`` <- ``train`` <- ``track``, ``viz``, ``analysis``, ``interop`` <- ``app``,
``report``. ``nn`` and ``optim`` import only NumPy and the registry; only ``app`` imports
Hydra (and OmegaConf); only ``track`` imports MLflow (the app, the analyses and
``toolkit.report`` go through :mod:`toolkit.track.client`); only ``viz`` and ``analysis``
import matplotlib; only the torchvision adapters of ``data`` (lazily) and ``interop`` import
torch. A failure prints every violation as ``module -> imported (file:line)``.

Last, every module can be the first one imported (no import cycle, e.g. through
``toolkit.registry.load_builtins`` or the plugin loader).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "toolkit"

BOTTOM = {"toolkit", "toolkit.registry", "toolkit.errors", "toolkit.plugin_loading"}
"""The registry layer: the registries, their errors, the plugin loader (standard library
only); the root package, which imports nothing."""
LEVELS = {
    "registry": 0,
    "nn": 1,
    "optim": 1,
    "data": 1,
    "models": 2,
    "train": 3,
    "track": 4,
    "viz": 4,
    "analysis": 4,
    "interop": 4,
    "app": 5,
    "report": 5,
}
SHARED_LEVELS = {4}
"""Levels whose parts may import each other (an analysis draws through viz and reads sweep
records of track); at the other levels a part imports only itself and the levels below."""
HYDRA = ("hydra", "omegaconf")
TORCH = ("torch", "torchvision")
TORCH_MODULES = ("toolkit.data.torchvision_*", "toolkit.data.photo_datasets", "toolkit.interop*")
"""Where torch may be imported: the torchvision adapters (``photo_datasets`` decodes
torchvision's photo datasets into the cache) and the PyTorch interop."""
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Import:
    """One import: the importing module, what it imports (a dotted name), where, and
    whether it runs only when a function is called (``lazy``)."""

    module: str
    imported: str
    file: Path
    line: int
    function: str | None

    @property
    def lazy(self) -> bool:
        return self.function is not None

    @property
    def top(self) -> str:
        return self.imported.split(".")[0]

    def __str__(self) -> str:
        return f"{self.module} -> {self.imported} ({self.file.relative_to(ROOT)}:{self.line})"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """``toolkit/nn/__init__.py`` -> ``toolkit.nn``, ``toolkit/nn/dense.py`` ->
    ``toolkit.nn.dense``."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package_module(name: str, root: Path = PACKAGE) -> bool:
    """Whether dotted ``name`` is a module or package under ``root``."""
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (root / relative).with_suffix(".py").is_file() or (root / relative).is_dir()


class ImportCollector(ast.NodeVisitor):
    """Every import of one module's source, with the function it sits in (if any)."""

    def __init__(self, module: str, file: Path, is_package: bool, root: Path) -> None:
        self.module, self.file, self.is_package, self.root = module, file, is_package, root
        self.imports: list[Import] = []
        self.functions: list[str] = []

    def add(self, name: str, node: ast.AST) -> None:
        function = self.functions[-1] if self.functions else None
        self.imports.append(Import(self.module, name, self.file, node.lineno, function))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self.absolute(node.module, node.level)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            # ``from toolkit import viz`` imports the package toolkit.viz
            toolkit_submodule = base.split(".")[0] == self.root.name and is_package_module(
                submodule, self.root
            )
            self.add(submodule if toolkit_submodule else base, node)

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self.add(first.value, node)
        self.generic_visit(node)

    def absolute(self, module: str | None, level: int) -> str:
        """The absolute name of ``from <level dots><module> import ...``."""
        if not level:
            return module or ""
        parts = self.module.split(".")
        parts = parts if self.is_package else parts[:-1]
        parts = parts[: len(parts) - (level - 1)]
        return ".".join(parts + ([module] if module else []))


def imports_in(file: Path, root: Path = PACKAGE) -> list[Import]:
    """Every import in ``file`` (a module under ``root``)."""
    collector = ImportCollector(module_name(file, root), file, file.name == "__init__.py", root)
    collector.visit(ast.parse(file.read_text(), filename=str(file)))
    return collector.imports


def package_modules(root: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


ALL_IMPORTS = [i for file in package_modules() for i in imports_in(file)]


def part(module: str) -> str:
    """The layer part a toolkit module belongs to: ``nn``, ``app``, ``registry``..."""
    if module in BOTTOM:
        return "registry"
    name = module.split(".")[1]
    return "app" if name == "__main__" else name


def is_toolkit(name: str) -> bool:
    return name == "toolkit" or name.startswith("toolkit.")


def in_parts(*parts: str) -> Callable[[Import], bool]:
    return lambda i: part(i.module) in parts


def crosses_levels(i: Import) -> bool:
    """A toolkit import upwards, or sideways outside the shared levels. The one exception:
    ``registry.load_builtins`` imports the built-in packages (when called) to register
    them; the cycle test below checks that this is safe."""
    if not is_toolkit(i.imported):
        return False
    if i.module == "toolkit.registry" and i.function == "load_builtins":
        return False
    source, target = part(i.module), part(i.imported)
    if source == target:
        return False
    level, target_level = LEVELS[source], LEVELS[target]
    return target_level > level or (target_level == level and level not in SHARED_LEVELS)


RULES: dict[str, Callable[[Import], bool]] = {
    "nn and optim import only NumPy and the registry": lambda i: (
        in_parts("nn", "optim")(i)
        and i.top not in STDLIB | {"numpy"}
        and not (is_toolkit(i.imported) and part(i.imported) in (part(i.module), "registry"))
    ),
    "the registry imports only the standard library (and, to load them, the built-ins)": lambda i: (
        in_parts("registry")(i) and i.top not in STDLIB and not is_toolkit(i.imported)
    ),
    "data, models and train never import app, track, viz, Hydra or MLflow": lambda i: (
        in_parts("data", "models", "train")(i)
        and (
            i.top in (*HYDRA, "mlflow")
            or (is_toolkit(i.imported) and part(i.imported) in ("app", "track", "viz"))
        )
    ),
    "only app imports Hydra": lambda i: i.top in HYDRA and part(i.module) != "app",
    "only track imports MLflow (the others through toolkit.track)": lambda i: (
        i.top == "mlflow" and part(i.module) != "track"
    ),
    "only viz and analysis import matplotlib": lambda i: (
        i.top == "matplotlib" and part(i.module) not in ("viz", "analysis")
    ),
    "only the torchvision adapters and interop import torch": lambda i: (
        i.top in TORCH and not any(fnmatchcase(i.module, p) for p in TORCH_MODULES)
    ),
    "data imports torch only inside functions (startup stays torch-free)": lambda i: (
        i.top in TORCH and part(i.module) == "data" and not i.lazy
    ),
    "imports go down the layers (registry <- nn, optim, data <- models <- train <- "
    "track, viz, analysis, interop <- app, report)": crosses_levels,
}


@pytest.mark.parametrize("rule", list(RULES))
def test_layering_rule(rule: str) -> None:
    violations = [str(i) for i in ALL_IMPORTS if RULES[rule](i)]
    assert not violations, f"{rule}:\n  " + "\n  ".join(violations)


def test_every_module_belongs_to_a_layer() -> None:
    unknown = sorted({part(i.module) for i in ALL_IMPORTS} - set(LEVELS))
    assert not unknown, f"add these packages to LEVELS in {Path(__file__).name}: {unknown}"


def test_the_scanner_sees_local_typing_and_string_imports(tmp_path: Path) -> None:
    package = tmp_path / "toolkit"
    (package / "nn").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nn" / "__init__.py").write_text("")
    (package / "viz.py").write_text("")
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import dense\n"
        "from toolkit import viz\n"
        "if TYPE_CHECKING:\n"
        "    from matplotlib.figure import Figure\n"
        "def build():\n"
        "    import mlflow\n"
        "    return importlib.import_module('hydra.utils')\n"
    )
    (package / "nn" / "dense.py").write_text(source)
    found = {(i.imported, i.function) for i in imports_in(package / "nn" / "dense.py", package)}
    assert found == {
        ("typing", None),
        ("toolkit.nn.dense", None),  # ``from . import dense``: the module itself
        ("toolkit.viz", None),
        ("matplotlib.figure", None),
        ("mlflow", "build"),
        ("hydra.utils", "build"),
    }


IMPORT_EACH_FIRST = """
import importlib, json, sys
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "toolkit" or m.startswith("toolkit.")]:
        del sys.modules[loaded]  # a fresh toolkit: ``name`` is the first module imported
    try:
        importlib.import_module(name)
    except Exception as err:
        failures[name] = f"{type(err).__name__}: {err}"
print(json.dumps(failures))
"""


def importable_modules() -> Iterator[str]:
    for file in package_modules():
        name = module_name(file)
        if not name.endswith("__main__"):
            yield name


def test_every_module_imports_first_without_a_cycle(tmp_path: Path) -> None:
    """Each module (``toolkit.registry``, ``toolkit.plugin_loading``, ``toolkit.nn``,
    ``toolkit.nn.layer``, ...) imported first, in one process that forgets the toolkit's
    modules between them: an import cycle shows as a partially initialised module."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_FIRST, json.dumps(list(importable_modules()))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    failures = json.loads(result.stdout.strip().splitlines()[-1])
    assert not failures, "\n".join(f"{name}: {error}" for name, error in failures.items())
