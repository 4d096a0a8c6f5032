"""`mlkit init`: a new project from a bundled cookiecutter template, wired to git, DVC and MLflow.

The project is built in a staging folder next to the target and moved into place only when every step
succeeded, so a failure never leaves half a project behind.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlkit import __version__, ci, names
from mlkit import constants as C
from mlkit.engines import dvc, git
from mlkit.errors import OperationError, UsageError, first_line
from mlkit.progress import Progress
from mlkit.sample_data import write_dataset
from mlkit.templates import templates_root

BUNDLED_TEMPLATES = ("classification", "regression")
# cookiecutter's own answer file and prompts must never change what mlkit generates
_COOKIECUTTER_DEFAULT_CONFIG = True
CACHE_LINK_TYPES = "reflink,hardlink,copy"


@dataclass
class InitResult:
    root: str
    name: str
    package: str
    template: str
    data_files: list[str] = field(default_factory=list)
    data_remote: str | None = None
    commit: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def package_name(name: str) -> str:
    """The Python package a project name becomes: lower case, ``-`` and spaces as ``_``."""
    return name.lower().replace("-", "_").replace(" ", "_")


def validate_name(name: str) -> str:
    """Check that ``name`` can be a folder and a Python package; return the package name."""
    if not name or not name.strip():
        raise UsageError("project name is empty", hint="give a name like `mlkit init churn`")
    if "/" in name or "\\" in name or ".." in name or name in (".", "~"):
        raise UsageError(f"project name {name!r} must not contain path separators or '..'",
                         hint="use --dir PATH to choose where the project goes")
    if not _NAME.match(name):
        raise UsageError(
            f"project name {name!r} must start with a letter and contain only letters, digits, '-' and '_'",
            hint="for example `mlkit init churn-model`",
        )
    return check_package(package_name(name), f"project name {name!r}", f"my-{name}")


def check_package(package: str, source: str, example: str = "my_package") -> str:
    """Refuse a package name Python cannot import as the project's own; ``source`` says where it came from."""
    if keyword.iskeyword(package) or not package.isidentifier():
        reason = "is a keyword" if keyword.iskeyword(package) else "is not an identifier"
        raise UsageError(f"{source} cannot become a Python package ({package!r} {reason})",
                         hint="choose another name")
    if package in sys.stdlib_module_names:
        raise UsageError(
            f"{source} would make a package {package!r} that shadows Python's standard library",
            hint=f"choose another name, e.g. `mlkit init {example}`",
        )
    names.check_not_installed(package, source, example)  # a dependency shadowed by the project's package
    return package


def template_questions(template_dir: Path | None = None) -> dict[str, Any]:
    folder = template_dir or templates_root() / "project"
    data = json.loads((folder / "cookiecutter.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def init_project(
    name: str,
    *,
    template: str = "classification",
    directory: Path | None = None,
    answers: Mapping[str, str] | None = None,
    init_git: bool = True,
    init_dvc: bool = True,
    force: bool = False,
    data_remote: Path | None = None,
    trust_template: bool = False,
    progress: Progress | None = None,
) -> InitResult:
    """Create a project called ``name`` and return what was made.

    ``template`` is one of :data:`BUNDLED_TEMPLATES`, or a path to another cookiecutter template when
    ``trust_template`` is set (templates can run arbitrary code).
    """
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    package = validate_name(name)
    target = (directory or Path.cwd() / name).expanduser().resolve()
    _check_target(target, force)
    template_dir, bundled = _resolve_template(template, trust_template)
    if template_dir is not None:  # a URL's answers are checked once it is cloned
        context = _answers(name, template, answers or {}, template_dir, bundled, init_dvc)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mlkit-init-", dir=target.parent))
    remote_created: Path | None = None
    try:
        if template_dir is None:
            say(f"cloning template {template}")
            template_dir = _clone_template(template, staging)
            context = _answers(name, template, answers or {}, template_dir, bundled, init_dvc)
        say(f"rendering template {template}")
        project = _render(template_dir, context, staging)
        data_files: list[str] = []
        if bundled:
            data_path = write_dataset(context["dataset"], project)
            data_files.append(data_path.relative_to(project).as_posix())
        else:
            data_files = sorted(p.relative_to(project).as_posix() for p in (project / "data").glob("*")
                                if p.is_file() and not p.name.startswith("."))
        _write_template_record(project, template, context)
        ci.generate_for_new_project(project)  # new projects get their CI files at creation
        if init_git:
            say("initialising git")
            try:
                git.init(project, context.get("default_branch", "main"))
            except OperationError as exc:
                raise OperationError(exc.message, hint="install git, or pass --no-git") from exc
        remote = None
        if init_dvc:
            remote = (data_remote or _default_remote(context["project_slug"])).expanduser().resolve()
            if not remote.exists():
                remote.mkdir(parents=True)
                remote_created = remote
            say(f"initialising DVC (remote {remote})")
            _dvc_init(project, remote, data_files, scm=init_git)
        commit = None
        if init_git:
            say("committing")
            commit = git.commit_all(project, f"Create project {name} from mlkit template {template} {__version__}")
        _move_into_place(project, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if remote_created is not None:
            shutil.rmtree(remote_created, ignore_errors=True)
        if isinstance(exc, OperationError):
            raise OperationError(f"mlkit init failed, nothing was created: {exc.message}", hint=exc.hint) from exc
        if isinstance(exc, (UsageError, KeyboardInterrupt)):
            raise
        if isinstance(exc, Exception):
            raise OperationError(f"mlkit init failed, nothing was created: {first_line(exc, with_type=True)}",
                                 hint="fix the cause above and run `mlkit init` again") from exc
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return InitResult(
        root=str(target), name=name, package=context.get("package_name", package), template=template,
        data_files=data_files,
        data_remote=str(remote) if remote else None, commit=commit,
        seconds=round(time.perf_counter() - started, 3),
    )


def _check_target(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a directory", hint="choose another name or --dir")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise UsageError(f"{target} is not empty; nothing was changed",
                             hint="choose another name or --dir, or pass --force to write into it")
        if (target / ".git").exists():
            raise UsageError(f"{target} is already a git repository; mlkit init creates a new one",
                             hint="choose an empty directory")


def _is_url(template: str) -> bool:
    return "://" in template or template.startswith(("git@", "gh:", "gl:", "bb:"))


def _resolve_template(template: str, trust: bool) -> tuple[Path | None, bool]:
    """(local template folder, bundled?); the folder is None for a URL, cloned later into staging."""
    if template in BUNDLED_TEMPLATES:
        return templates_root() / "project", True
    path = Path(template).expanduser()
    if _is_url(template) or path.exists():
        if not trust:
            raise UsageError(
                f"template {template!r} is not bundled with mlkit; templates can run arbitrary code",
                hint="pass --trust-template if you trust its author, or use --template classification|regression",
            )
        if _is_url(template):
            return None, False
        if not (path / "cookiecutter.json").is_file():
            raise UsageError(f"{path} is not a cookiecutter template (no cookiecutter.json)")
        return path.resolve(), False
    raise UsageError(f"unknown template {template!r}; bundled templates: " + ", ".join(BUNDLED_TEMPLATES),
                     hint="or pass a template folder with --trust-template")


def _clone_template(url: str, staging: Path) -> Path:
    """Clone a template repository (git URL or gh:/gl:/bb: abbreviation) into the staging folder."""
    from cookiecutter.config import BUILTIN_ABBREVIATIONS
    from cookiecutter.repository import determine_repo_dir

    try:
        folder, _ = determine_repo_dir(url, dict(BUILTIN_ABBREVIATIONS), clone_to_dir=staging / ".clone",
                                       checkout=None, no_input=True)
    except Exception as exc:
        raise OperationError(f"could not clone template {url}: {first_line(exc, with_type=True)}",
                             hint="check the URL and your network, or clone it and pass the folder") from exc
    return Path(folder)


def _answers(name: str, template: str, answers: Mapping[str, str], template_dir: Path, bundled: bool,
             use_dvc: bool) -> dict[str, Any]:
    questions = template_questions(template_dir)
    unknown = sorted(set(answers) - set(questions))
    if unknown:
        raise UsageError(f"--set {unknown[0]}: not a question of this template; allowed: "
                         + ", ".join(sorted(questions)))
    context: dict[str, Any] = {"project_name": name}
    if bundled:
        for fixed in ("project_name", "task", "dataset", "data_file", "mlkit_version", "use_dvc"):
            if fixed in answers:
                raise UsageError(f"--set {fixed}: is decided by mlkit (use the NAME argument or --template)")
        context.update(task=template, mlkit_version=__version__, use_dvc="yes" if use_dvc else "no")
        if "package_name" in answers:
            check_package(answers["package_name"], f"--set package_name={answers['package_name']}",
                          f"{name} --set package_name=my_{answers['package_name']}")
    context.update(answers)
    return _render_context(questions, context)


def _render_context(questions: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve templated defaults the way cookiecutter does, so the record holds final answers."""
    from jinja2 import Environment, StrictUndefined

    env = Environment(undefined=StrictUndefined)
    resolved: dict[str, Any] = {}
    for key, default in questions.items():
        if key in given:
            value = given[key]
        elif isinstance(default, list):
            value = default[0]
        else:
            value = default
        if isinstance(value, str) and "{{" in value:
            value = env.from_string(value).render(cookiecutter=resolved)
        resolved[key] = value
    return resolved


def _render(template_dir: Path, context: Mapping[str, Any], staging: Path) -> Path:
    from cookiecutter.main import cookiecutter

    # render from a clean copy: no __pycache__ or editor files from the installed package
    source = staging / ".template"
    shutil.copytree(template_dir, source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store"))
    output = staging / "out"
    try:
        path = cookiecutter(
            str(source), no_input=True, extra_context=dict(context), output_dir=str(output),
            default_config=_COOKIECUTTER_DEFAULT_CONFIG, accept_hooks=True,
        )
    except Exception as exc:
        raise OperationError(f"template rendering failed: {first_line(exc, with_type=True)}",
                             hint="check the template and the --set answers") from exc
    shutil.rmtree(source)
    project = Path(path)
    if context.get("use_dvc") == "no":
        for name in ("dvc.yaml", ".dvcignore"):
            (project / name).unlink(missing_ok=True)
    return project


def _write_template_record(project: Path, template: str, context: Mapping[str, Any]) -> None:
    record = {"template": template, "mlkit_version": __version__, "answers": dict(context)}
    state = project / C.STATE_DIR
    state.mkdir(exist_ok=True)
    (state / C.TEMPLATE_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _default_remote(slug: str) -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mlkit")) / "remotes" / f"{slug}-{uuid.uuid4().hex[:8]}"


def _dvc_init(project: Path, remote: Path, data_files: list[str], *, scm: bool) -> None:
    # the project cannot be loaded yet: DVC is driven on the staging folder directly
    dvc.init_repo(project, remote=remote, link_types=CACHE_LINK_TYPES, scm=scm)
    stage = None
    if (project / "dvc.yaml").is_file():
        # record the pipeline as "not trained yet" so `dvc status` starts clean
        (project / C.METRICS_FILE).write_text("{}\n")
        stage = "train"
    dvc.track_and_commit_stage(project, [project / f for f in data_files], stage)


def _move_into_place(project: Path, target: Path) -> None:
    if not target.exists():
        os.rename(project, target)
        return
    if not any(target.iterdir()):
        target.rmdir()
        os.rename(project, target)
        return
    for entry in project.iterdir():  # --force into a non-empty folder: template files replace
        destination = target / entry.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            destination.unlink()
        os.rename(entry, destination)
