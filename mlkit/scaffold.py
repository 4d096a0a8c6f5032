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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlkit import __version__, allowed_code, ci, names
from mlkit import constants as C
from mlkit import data as data_sets
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
    overwritten: list[str] = field(default_factory=list)  # the user's files --force replaced
    seconds: float = 0.0
    task: str | None = None  # None for a template that is not bundled
    task_reason: str | None = None  # why this task: the sample data set, --task, or what the target holds
    rows: int | None = None  # rows of the user's data file (--data)
    gates: str | None = None  # the metric gates mlkit.yaml sets, in one line

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# a folder, a package and a registered model are named after it; file systems allow 255 bytes a name
MAX_NAME_LENGTH = 100


def package_name(name: str) -> str:
    """The Python package a project name becomes: lower case, ``-`` and spaces as ``_``."""
    return name.lower().replace("-", "_").replace(" ", "_")


def validate_name(name: str) -> str:
    """Check that ``name`` can be a folder and a Python package; return the package name."""
    if not name or not name.strip():
        raise UsageError("project name is empty", hint="give a name like `mlkit init churn`")
    if len(name) > MAX_NAME_LENGTH:
        raise UsageError(
            f"project name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed",
            hint="choose a shorter name",
        )
    if "/" in name or "\\" in name or ".." in name or name in (".", "~"):
        raise UsageError(
            f"project name {name!r} must not contain path separators or '..'",
            hint="use --dir PATH to choose where the project goes",
        )
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
        raise UsageError(f"{source} cannot become a Python package ({package!r} {reason})", hint="choose another name")
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
    template: str | None = None,
    directory: Path | None = None,
    data: Path | None = None,
    target: str | None = None,
    task: str | None = None,
    answers: Mapping[str, str] | None = None,
    init_git: bool = True,
    init_dvc: bool = True,
    force: bool = False,
    data_remote: Path | None = None,
    trust_template: bool = False,
    progress: Progress | None = None,
) -> InitResult:
    """Create a project called ``name`` and return what was made.

    ``template`` is one of :data:`BUNDLED_TEMPLATES` (default classification), or a path to another
    cookiecutter template when ``trust_template`` is set (templates can run arbitrary code).

    ``data`` is the user's own CSV or Parquet file, with ``target`` its target column: it is checked before
    anything is created, copied into the project's ``data/`` and tracked instead of the sample data set.
    The task is ``task`` (or a bundled ``template``) when given, else inferred from the target.
    """
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    package = validate_name(name)
    target_dir = (directory or Path.cwd() / name).expanduser().resolve()
    _check_target(target_dir, force)
    if init_dvc and data_remote is not None and data_remote.expanduser().is_file():
        raise UsageError(
            f"--data-remote {data_remote} is a file, not a folder", hint="give a folder (it is created if missing)"
        )
    answers = dict(answers or {})
    own_data = _check_own_data(data, target, task, template, answers) if data is not None else None
    if own_data is None and (target is not None or task is not None):
        option = "--target" if target is not None else "--task"
        raise UsageError(
            f"{option} needs --data FILE: the sample data sets come with their own target",
            hint="start from your own data with `mlkit init NAME --data FILE --target COLUMN`",
        )
    template = own_data.task if own_data is not None else template or "classification"
    template_dir, bundled = _resolve_template(template, trust_template)
    if template_dir is not None:  # a URL's answers are checked once it is cloned
        context = _answers(name, template, answers, template_dir, bundled, init_dvc, own_data)

    staging = _make_staging(target_dir)
    remote_created: Path | None = None
    restore_sigterm = _sigterm_as_interrupt()  # SIGTERM, like Ctrl-C, undoes everything
    try:
        try:
            if template_dir is None:
                say(f"cloning template {template}")
                template_dir = _clone_template(template, staging)
                context = _answers(name, template, answers, template_dir, bundled, init_dvc, own_data)
            say(f"rendering template {template}")
            project = _render(template_dir, context, staging)
            data_files: list[str] = []
            if own_data is not None:
                say(f"copying {own_data.name} into data/")
                data_path = project / context["data_file"]
                data_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(own_data.path, data_path)
                data_files.append(context["data_file"])
            elif bundled:
                data_path = write_dataset(context["dataset"], project)
                data_files.append(data_path.relative_to(project).as_posix())
            else:
                data_files = sorted(
                    p.relative_to(project).as_posix()
                    for p in (project / "data").glob("*")
                    if p.is_file() and not p.name.startswith(".")
                )
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
            gates = _gates_summary(project)
            overwritten = _move_into_place(project, target_dir)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if remote_created is not None:
                shutil.rmtree(remote_created, ignore_errors=True)
            if isinstance(exc, OperationError):
                raise OperationError(f"mlkit init failed, nothing was created: {exc.message}", hint=exc.hint) from exc
            if isinstance(exc, (UsageError, KeyboardInterrupt)):
                raise
            if isinstance(exc, Exception):
                raise OperationError(
                    f"mlkit init failed, nothing was created: {first_line(exc, with_type=True)}",
                    hint="fix the cause above and run `mlkit init` again",
                ) from exc
            raise
    finally:
        restore_sigterm()
    shutil.rmtree(staging, ignore_errors=True)
    if own_data is not None:
        task_reason: str | None = own_data.reason
    else:
        task_reason = f"the sample data set {context['dataset']}" if bundled else None
    return InitResult(
        root=str(target_dir),
        name=name,
        package=context.get("package_name", package),
        template=template,
        data_files=data_files,
        data_remote=str(remote) if remote else None,
        commit=commit,
        overwritten=overwritten,
        seconds=round(time.perf_counter() - started, 3),
        task=template if bundled else None,
        task_reason=task_reason,
        rows=own_data.rows if own_data is not None else None,
        gates=gates,
    )


def _check_own_data(
    data: Path, target: str | None, task: str | None, template: str | None, answers: Mapping[str, str]
) -> data_sets.DataFileCheck:
    """The user's data file checked, and the task decided, before anything is created."""
    if template is not None and template not in BUNDLED_TEMPLATES:
        raise UsageError(
            f"--data works with the bundled templates ({', '.join(BUNDLED_TEMPLATES)}); "
            f"template {template!r} brings its own data",
            hint="leave --template out, or leave --data out",
        )
    if task is None:
        task = template  # --template classification|regression names the task too
    elif template is not None and template != task:
        raise UsageError(f"--template {template} and --task {task} disagree", hint="give only --task")
    if target is None:
        raise UsageError("--data needs --target COLUMN: the column to predict", hint="e.g. --target species")
    if "target" in answers:
        raise UsageError("--set target: with --data the target is given with --target", hint=f"--target {target}")
    check_answer("target", target, option="--target")
    return data_sets.check_data_file(data, target, task)


def _gates_summary(project: Path) -> str | None:
    """The metric thresholds the rendered mlkit.yaml sets, per stage, in one line."""
    import yaml

    try:
        promotion = (yaml.safe_load((project / C.CONFIG_FILE).read_text(encoding="utf-8")) or {}).get("promotion")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    if not isinstance(promotion, dict):
        return None
    parts = [
        f"{stage}: " + ", ".join(map(str, gates["thresholds"]))
        for stage, gates in promotion.items()
        if isinstance(gates, dict) and gates.get("thresholds")
    ]
    if not parts:
        return "no metric gates yet: set promotion.staging.thresholds in mlkit.yaml"
    return "; ".join(parts)


def _check_target(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a directory", hint="choose another name or --dir")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise UsageError(
                f"{target} is not empty; nothing was changed",
                hint="choose another name or --dir, or pass --force to write into it",
            )
        if (target / ".git").exists():
            raise UsageError(
                f"{target} is already a git repository; mlkit init creates a new one", hint="choose an empty directory"
            )


def _sigterm_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM raise KeyboardInterrupt until the returned function is called, so a terminated init
    is cleaned up like an interrupted one (only the main thread can handle signals)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _make_staging(target: Path) -> Path:
    """The staging folder next to ``target``, after checking ``target`` can be written at all."""
    try:
        if target.is_dir():  # --force: the files are moved into it
            with tempfile.TemporaryFile(dir=target, prefix=".mlkit-probe-"):
                pass
    except OSError as exc:
        raise UsageError(
            f"cannot write into {target}: {exc.strerror or first_line(exc)}", hint="choose another --dir"
        ) from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".mlkit-init-", dir=target.parent))
    except OSError as exc:
        raise UsageError(
            f"cannot create {target}: {exc.strerror or first_line(exc)}", hint="choose another --dir"
        ) from None


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
    raise UsageError(
        f"unknown template {template!r}; bundled templates: " + ", ".join(BUNDLED_TEMPLATES),
        hint="or pass a template folder with --trust-template",
    )


def _clone_template(url: str, staging: Path) -> Path:
    """Clone a template repository (git URL or gh:/gl:/bb: abbreviation) into the staging folder."""
    from cookiecutter.config import BUILTIN_ABBREVIATIONS
    from cookiecutter.repository import determine_repo_dir

    try:
        folder, _ = determine_repo_dir(
            url, dict(BUILTIN_ABBREVIATIONS), clone_to_dir=staging / ".clone", checkout=None, no_input=True
        )
    except Exception as exc:
        raise OperationError(
            f"could not clone template {url}: {first_line(exc, with_type=True)}",
            hint="check the URL and your network, or clone it and pass the folder",
        ) from exc
    return Path(folder)


# What the bundled template's name-like answers may hold; every other answer is free text, written by the
# template through a YAML emitter or as a Python string literal.
_ANSWER_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "project_slug": (_NAME, "must start with a letter and contain only letters, digits, '-' and '_'"),
    "model_name": (
        re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
        "must start with a letter or digit and contain only letters, digits, '.', '-' and '_'",
    ),
    "estimator": (
        re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$"),
        "must be an import path like sklearn.ensemble.RandomForestClassifier",
    ),
    "python_version": (re.compile(r"^3\.\d+$"), "must be a Python version like 3.12"),
    "default_branch": (
        re.compile(r"^(?!.*\.\.)(?!.*(\.|/|\.lock)$)[A-Za-z0-9][A-Za-z0-9._/-]*$"),
        "must be a branch name like main or release/v1",
    ),
}
_JINJA_MARKERS = ("{{", "{%", "{#")


def check_answer(
    key: str,
    value: str,
    *,
    bundled: bool = True,
    markers: tuple[str, ...] = _JINJA_MARKERS,
    option: str | None = None,
) -> None:
    """Refuse an answer that could be more than data: control characters (a newline would start a new
    YAML key), template markup (cookiecutter renders answers with Jinja), a malformed name. ``option``
    names where the answer came from in messages (default ``--set KEY``)."""
    import unicodedata

    given = option or f"--set {key}"

    # Cc: C0/C1 controls; Cf: invisible format characters (bidi overrides); Zl, Zp: line separators
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in value):
        raise UsageError(
            f"{given}: control characters (newlines, tabs, ...) are not allowed in answers",
            hint="give the answer on one line of printable text",
        )
    rule = _ANSWER_RULES.get(key) if bundled else None
    if rule is not None and len(value) > MAX_NAME_LENGTH:
        raise UsageError(
            f"{given}: is {len(value)} characters long; at most {MAX_NAME_LENGTH} are allowed",
            hint="give a shorter value",
        )
    if rule is not None and not rule[0].fullmatch(value):
        raise UsageError(f"{given}: {rule[1]}", hint=f"for example --set {key}={_ANSWER_EXAMPLES[key]}")
    if any(marker in value for marker in markers):
        shown = ", ".join(f"{m!r}" for m in markers[:-1]) + f" and {markers[-1]!r}"
        raise UsageError(
            f"{given}: {shown} are not allowed: answers are data, not templates",
            hint="give the literal value the project should hold",
        )


_ANSWER_EXAMPLES = {
    "project_slug": "churn-model",
    "model_name": "churn",
    "python_version": "3.12",
    "estimator": "sklearn.ensemble.RandomForestClassifier",
    "default_branch": "main",
}


def _template_markers(template_dir: Path) -> tuple[str, ...]:
    """Jinja's markers plus any a template configures (``_jinja2_env_vars``): none may appear in an answer."""
    data = json.loads((template_dir / "cookiecutter.json").read_text())
    env = data.get("_jinja2_env_vars") if isinstance(data, dict) else None
    extra = [
        str(env[k])
        for k in (
            "block_start_string",
            "variable_start_string",
            "comment_start_string",
            "line_statement_prefix",
            "line_comment_prefix",
        )
        if isinstance(env, dict) and env.get(k)
    ]
    return tuple(dict.fromkeys([*_JINJA_MARKERS, *extra]))


def _answers(
    name: str,
    template: str,
    answers: Mapping[str, str],
    template_dir: Path,
    bundled: bool,
    use_dvc: bool,
    own_data: data_sets.DataFileCheck | None = None,
) -> dict[str, Any]:
    questions = template_questions(template_dir)
    unknown = sorted(set(answers) - set(questions))
    if unknown:
        raise UsageError(
            f"--set {unknown[0]}: not a question of this template; allowed: " + ", ".join(sorted(questions))
        )
    markers = _template_markers(template_dir)
    for key, value in answers.items():
        check_answer(key, value, bundled=bundled, markers=markers)
    context: dict[str, Any] = {"project_name": name}
    if bundled:
        for fixed in ("project_name", "task", "dataset", "data_file", "sample_data", "mlkit_version", "use_dvc"):
            if fixed in answers:
                raise UsageError(f"--set {fixed}: is decided by mlkit (use the NAME argument, --template or --data)")
        context.update(task=template, mlkit_version=__version__, use_dvc="yes" if use_dvc else "no")
        if own_data is not None:
            # the column names are answers like any other: data, written through the template's filters
            context.update(sample_data="no", dataset="", data_file=f"data/{own_data.name}", target=own_data.target)
        if "package_name" in answers:
            check_package(
                answers["package_name"],
                f"--set package_name={answers['package_name']}",
                f"{name} --set package_name=my_{answers['package_name']}",
            )
    context.update(answers)
    resolved = _render_context(questions, context)
    if bundled and "estimator" in answers:
        # the rule mlkit.yaml is held to (model.allow_modules is empty in a new project): a project every
        # command would refuse is not created
        why = allowed_code.refusal("model.estimator", answers["estimator"], str(resolved["package_name"]), [])
        if why is not None:
            raise UsageError(
                f"--set estimator: {why}",
                hint="for example --set estimator=sklearn.ensemble.RandomForestClassifier; "
                "after init, model.allow_modules in mlkit.yaml trusts other packages",
            )
    return resolved


def _render_context(questions: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve templated defaults the way cookiecutter does, so the record holds final answers."""
    from jinja2 import Environment, StrictUndefined

    env = Environment(undefined=StrictUndefined)
    resolved: dict[str, Any] = {}
    for key, default in questions.items():
        if key in given:
            value = given[key]  # an answer is data: checked by check_answer, never rendered
        elif isinstance(default, list):
            value = default[0]
        elif isinstance(default, str) and "{{" in default:
            value = env.from_string(default).render(cookiecutter=resolved)
        else:
            value = default
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
            str(source),
            no_input=True,
            extra_context=dict(context),
            output_dir=str(output),
            default_config=_COOKIECUTTER_DEFAULT_CONFIG,
            accept_hooks=True,
        )
    except Exception as exc:
        raise OperationError(
            f"template rendering failed: {first_line(exc, with_type=True)}",
            hint="check the template and the --set answers",
        ) from exc
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


def local_remote_notice(data_remote: str | None) -> str | None:
    """One line telling that the DVC remote is a folder on this machine, which CI runners cannot reach."""
    if not data_remote or "://" in data_remote:
        return None
    return (
        f"the DVC remote {data_remote} is a folder on this machine: CI runners cannot reach it. Before "
        "the first push, add a shared one and send the data: `mlkit data remote add storage "
        "s3://BUCKET/PATH --default && mlkit data push` (docs: ci.md)"
    )


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


def _move_into_place(project: Path, target: Path) -> list[str]:
    """Put the staged project at ``target``; returns the user's files the template's replaced (posix)."""
    if not target.exists():
        os.rename(project, target)
        return []
    if not any(target.iterdir()):
        target.rmdir()
        os.rename(project, target)
        return []
    return _merge_into(project, target)


def _merge_into(project: Path, target: Path) -> list[str]:
    """``--force`` into a non-empty folder: the template's files go in, the user's stay.

    Nothing is deleted: a folder the template shares with the user is merged entry by entry, and a user's
    file at the path of a template file is moved aside (into the staging folder) before the template's takes
    its place. Every move is recorded and undone in reverse order if anything fails or the user interrupts,
    so the folder is either fully merged or exactly as it was.
    """
    plan, replaced = _merge_plan(project, target)
    aside = project.parent.parent / "replaced"
    done: list[tuple[Path, Path]] = []  # (from, to), undone in reverse
    try:
        for source, destination, replaces in plan:
            if replaces:
                kept = aside / destination.relative_to(target)
                kept.parent.mkdir(parents=True, exist_ok=True)
                _move(destination, kept)
                done.append((destination, kept))
            _move(source, destination)
            done.append((source, destination))
    except BaseException:
        with _signals_held():
            for origin, moved in reversed(done):
                os.rename(moved, origin)
        raise
    return replaced


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (they arrive afterwards) so an undo is never itself cut short."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held) if hasattr(signal, "pthread_sigmask") else None
    try:
        yield
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _merge_plan(project: Path, target: Path) -> tuple[list[tuple[Path, Path, bool]], list[str]]:
    """(source, destination, replaces a user's file) moves; UsageError before anything moves when the
    template needs a folder where the user has a file or a link, or a file where the user has a folder."""
    plan: list[tuple[Path, Path, bool]] = []
    replaced: list[str] = []
    pending = [(project, target)]
    while pending:
        source_dir, destination_dir = pending.pop()
        for source in sorted(source_dir.iterdir()):
            destination = destination_dir / source.name
            template_dir = source.is_dir() and not source.is_symlink()
            if not destination.exists() and not destination.is_symlink():
                plan.append((source, destination, False))  # all of it is new: moved whole
            elif template_dir and destination.is_symlink():
                raise UsageError(
                    f"{destination} is a symbolic link where the template has a folder; nothing was changed",
                    hint="move it away, or choose another --dir",
                )
            elif template_dir and destination.is_dir():
                pending.append((source, destination))
            elif template_dir:
                raise UsageError(
                    f"{destination} is a file of yours where the template has a folder; nothing was changed",
                    hint="move it away, or choose another --dir",
                )
            elif destination.is_dir() and not destination.is_symlink():
                raise UsageError(
                    f"{destination} is a folder of yours where the template has a file; nothing was changed",
                    hint="move it away, or choose another --dir",
                )
            else:
                plan.append((source, destination, True))
                replaced.append(destination.relative_to(target).as_posix())
    return plan, sorted(replaced)


def _move(source: Path, destination: Path) -> None:
    os.rename(source, destination)
