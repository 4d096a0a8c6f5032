"""The import rules of docs/architecture.md, read from the source with `ast`, and the Python API they allow.

- the core (every module outside mlkit/cli/ and mlkit/__main__.py) imports neither mlkit.cli nor typer
  nor rich, at any level of the file;
- mlkit's modules import each other without a cycle, counting imports inside functions too (deferring
  an import hides a cycle from Python, not from the design); only ``if TYPE_CHECKING:`` imports, which
  never run, are left out;
- git runs only in mlkit/engines/git.py: no other module imports GitPython or starts a ``git`` process;
- ``import mlkit`` loads none of the heavy libraries, and its API names resolve to the core's functions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mlkit"
CLI_SIDE = ("mlkit.cli", "mlkit.__main__")  # the command line and its entry point
UI_LIBRARIES = ("typer", "rich", "click")
GIT_ENGINE = "mlkit.engines.git"
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}


@dataclass(frozen=True)
class Import:
    target: str  # the imported module, absolute ("mlkit.tags", "typer", "rich.console")
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, ast.Module]:
    return {
        module_name(p): ast.parse(p.read_text(encoding="utf-8"), filename=str(p)) for p in sorted(PACKAGE.rglob("*.py"))
    }


MODULES = all_modules()


def is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``: they never run."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {
                id(inner)
                for stmt in node.body
                for inner in ast.walk(stmt)
                if isinstance(inner, (ast.Import, ast.ImportFrom))
            }
    return skipped


def imports(name: str, tree: ast.Module, known: set[str] | frozenset[str] = frozenset()) -> Iterator[Import]:
    """Every import that can run in module ``name``, top level or inside a function, made absolute.

    ``from mlkit import tags`` is the module ``mlkit.tags`` when that is one of ``known``; otherwise
    (``from mlkit.training import train``) it is the package it names.
    """
    skipped = _type_checking_only(tree)
    package = name if is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield Import(submodule if submodule in known else source, node.lineno)


def is_core(name: str) -> bool:
    return not any(name == side or name.startswith(side + ".") for side in CLI_SIDE)


def import_graph(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    known = set(modules)
    return {
        name: {i.target for i in imports(name, tree, known) if i.target in known and i.target != name}
        for name, tree in modules.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def git_processes(tree: ast.Module) -> list[int]:
    """Lines that start a ``git`` process: a subprocess call (or ``os.system``) whose argv starts with git,
    given as a literal or through a name assigned a literal in the same module."""
    argvs: dict[str, ast.expr] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            argvs[node.targets[0].id] = node.value

    def starts_with_git(arg: ast.expr, depth: int = 0) -> bool:
        if isinstance(arg, ast.Name) and arg.id in argvs and depth < 3:
            return starts_with_git(argvs[arg.id], depth + 1)
        if isinstance(arg, (ast.List, ast.Tuple)) and arg.elts:
            first = arg.elts[0]
            return isinstance(first, ast.Constant) and first.value == "git"
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value == "git" or arg.value.startswith("git ")
        if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
            return str(arg.values[0].value).startswith("git ")
        return False

    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        owner = ast.unparse(node.func.value)
        runs_process = (owner == "subprocess" and node.func.attr in SUBPROCESS_CALLS) or (
            owner == "os"
            and (node.func.attr == "system" or node.func.attr.startswith(("exec", "spawn", "posix_spawn")))
        )
        if runs_process and any(starts_with_git(arg) for arg in node.args[:2]):
            lines.append(node.lineno)
    return lines


def imports_gitpython(name: str, tree: ast.Module) -> list[int]:
    return [i.line for i in imports(name, tree) if i.target == "git" or i.target.startswith("git.")]


# --- the rules, on mlkit/ -----------------------------------------------------------------------------


def test_every_module_is_parsed() -> None:
    assert {"mlkit", "mlkit.cli", "mlkit.engines.git", "mlkit.tracking_server", "mlkit.training.runner"} <= set(MODULES)


def test_the_core_imports_no_cli_and_no_terminal_library() -> None:
    offending = [
        f"{name}:{i.line} imports {i.target}"
        for name, tree in MODULES.items()
        if is_core(name)
        for i in imports(name, tree)
        if i.target.split(".")[0] in UI_LIBRARIES or i.target == "mlkit.cli" or i.target.startswith("mlkit.cli.")
    ]
    assert offending == []


def test_no_import_cycle_among_mlkit_modules() -> None:
    assert find_cycles(import_graph(MODULES)) == []


def test_git_runs_only_in_the_git_engine() -> None:
    offending = {
        name: git_processes(tree) + imports_gitpython(name, tree)
        for name, tree in MODULES.items()
        if name != GIT_ENGINE
    }
    assert {name: lines for name, lines in offending.items() if lines} == {}


# --- the checks themselves can fail -------------------------------------------------------------------


def _parse(source: str) -> ast.Module:
    return ast.parse(source)


@pytest.mark.parametrize(
    "source",
    [
        "import subprocess\nsubprocess.run(['git', 'status'])",
        "import subprocess\ndef f():\n    subprocess.check_output(('git', 'rev-parse', 'HEAD'), text=True)",
        "import subprocess\nargv = ['git', 'add', '-A']\nsubprocess.Popen(argv)",
        "import subprocess\nsubprocess.run('git status', shell=True)",
        "import os\nos.system(f'git commit -m {message}')",
    ],
)
def test_a_git_process_is_found(source: str) -> None:
    assert git_processes(_parse(source)) != []


@pytest.mark.parametrize(
    "source",
    [
        "import subprocess\nsubprocess.run(['dvc', 'push'])",
        "from mlkit.engines import git\ngit.run(root, 'status')",
        "import subprocess\nsubprocess.run([sys.executable, '-m', 'mlflow', 'server'])",
    ],
)
def test_other_processes_are_not_git(source: str) -> None:
    assert git_processes(_parse(source)) == []


def test_gitpython_is_told_from_the_git_engine() -> None:
    assert imports_gitpython("mlkit.x", _parse("def f():\n    import git\n    from git.exc import GitError")) == [2, 3]
    assert imports_gitpython("mlkit.x", _parse("from mlkit.engines import git")) == []


def test_imports_resolve_modules_relative_and_function_level() -> None:
    source = (
        "from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
        "from mlkit import tags, __version__\nfrom . import runner\n"
        "if TYPE_CHECKING:\n    from mlkit.project import Project\n"
        "def f():\n    from mlkit.training import train\n    import mlkit.cli._output\n"
    )
    known = {"mlkit", "mlkit.tags", "mlkit.training", "mlkit.training.runner", "mlkit.project"}
    found = [i.target for i in imports("mlkit.training.fitting", _parse(source), known)]
    assert found == [
        "__future__",
        "typing",
        "mlkit.tags",
        "mlkit",
        "mlkit.training.runner",
        "mlkit.training",
        "mlkit.cli._output",
    ]


def test_a_cycle_through_a_function_level_import_is_found() -> None:
    graph = {"mlkit.a": {"mlkit.b"}, "mlkit.b": {"mlkit.c"}, "mlkit.c": {"mlkit.a"}, "mlkit.d": {"mlkit.a"}}
    assert find_cycles(graph) == [["mlkit.a", "mlkit.b", "mlkit.c"]]
    assert find_cycles({"mlkit.a": {"mlkit.b"}, "mlkit.b": set()}) == []


# --- the Python API -----------------------------------------------------------------------------------

HEAVY = ("typer", "rich", "click", "mlflow", "dvc", "git", "sklearn", "xgboost", "pandas", "numpy")


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in result.stdout.strip().split(",") if m]


def test_import_mlkit_loads_no_heavy_library() -> None:
    assert _loaded_after("import mlkit; mlkit.__version__") == []


def test_the_api_resolves_without_a_terminal_library() -> None:
    loaded = _loaded_after("import mlkit\nfor name in mlkit.__all__:\n    getattr(mlkit, name)")
    assert [m for m in loaded if m in ("typer", "rich", "click")] == []


def test_api_names_are_the_core_functions() -> None:
    import mlkit
    from mlkit import errors, project, promotion, scaffold
    from mlkit.reproduction import reproduce
    from mlkit.training import runner

    assert (mlkit.init, mlkit.load_project, mlkit.train, mlkit.TrainOptions, mlkit.promote, mlkit.MlkitError) == (
        scaffold.init_project,
        project.load_project,
        runner.train,
        runner.TrainOptions,
        promotion.promote,
        errors.MlkitError,
    )
    assert mlkit.rollback is promotion.rollback
    assert mlkit.reproduce is reproduce
    assert sorted(mlkit.__all__) == dir(mlkit)
    for name in mlkit.__all__:
        value = getattr(mlkit, name)
        assert name == "__version__" or value.__doc__, name


def test_an_unknown_name_is_an_attribute_error() -> None:
    import mlkit

    with pytest.raises(AttributeError, match="module 'mlkit' has no attribute 'deploy'"):
        mlkit.deploy  # noqa: B018
