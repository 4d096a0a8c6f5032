"""`mlkit reproduce`: rebuild a run from its lineage in a clean worktree and check the result matches.

The recorded commit is checked out in a temporary git worktree under `.mlkit/` (git-ignored, and on the
project's filesystem so DVC can hard-link data out of the project's cache instead of copying it); the
recorded diff is applied when the run came from a dirty tree; every input is brought back by its md5 from
the cache or the remote; the model is trained with the recorded params and seed; and every metric plus a
fingerprint of the test-split predictions is compared with the original. The user's working tree is never
touched, and the worktree is removed afterwards, on failure and on Ctrl-C too.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from mlkit import constants as C
from mlkit import lineage as L
from mlkit import tags
from mlkit.clock import utc_iso
from mlkit.data import recorded
from mlkit.engines import dvc, git, mlflow
from mlkit.errors import MismatchError, OperationError, UsageError, first_line
from mlkit.progress import Progress
from mlkit.project import Project, load_project
from mlkit.registry import ModelRef
from mlkit.runs import is_timing, resolve_run
from mlkit.training.runner import TrainOptions, TrainResult, train

WORKTREES_DIR = "worktrees"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_RUN_PREFIX = re.compile(r"^[0-9a-f]{1,32}$")
# packages whose version changes are the usual suspects when numbers move
_NUMERIC_STACK = ("numpy", "scipy", "scikit-learn", "xgboost", "pandas", "pyarrow", "threadpoolctl")


FINGERPRINT_NOT_COMPARED = "predictions sha256 (not compared under --tolerance)"


@dataclass
class Check:
    """One compared quantity: a metric, the predictions fingerprint or an input's md5."""

    name: str
    original: Any
    reproduced: Any
    equal: bool
    kind: str = "metric"


@dataclass
class ReproduceResult:
    target: str
    run_id: str
    model_name: str | None
    model_versions: list[str]
    commit: str
    applied_diff: bool
    reproduced_run_id: str | None
    tolerance: float
    matched: bool
    checks: list[Check] = field(default_factory=list)
    likely_causes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    backend: str = "local"  # the recorded backend, e.g. "dask with 2 workers x 1 thread"
    reproduced_backend: str = "local"
    backend_differences: list[str] = field(default_factory=list)
    # False when the verdict tags were left alone: a mismatch on another backend or cluster shape
    verdict_recorded: bool = True

    @property
    def mismatches(self) -> list[Check]:
        return [check for check in self.checks if not check.equal]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mismatches"] = [check.name for check in self.mismatches]
        return data


class ReproductionMismatch(MismatchError):
    """The rebuilt run differs from the original; ``result`` carries every check for the caller to show."""

    def __init__(self, result: ReproduceResult) -> None:
        names = ", ".join(check.name for check in result.mismatches)
        hint = "see the table above for the numbers and the likely causes"
        if not result.verdict_recorded:
            hint = (
                f"it ran on {result.reproduced_backend}, the run on {result.backend}: no evidence either way, so "
                f"{tags.REPRODUCED} was left as it was; reproduce it on the recorded cluster shape"
            )
        super().__init__(f"reproduction of {result.target} does not match: {names}", hint=hint)
        self.result = result


def reproduce(
    project: Project, target: str, *, tolerance: float = 0.0, apply_diff: bool = False, progress: Progress | None = None
) -> ReproduceResult:
    """Rebuild ``target`` (a run id, ``NAME@STAGE`` or ``NAME/VERSION``) and compare it with the original.

    Records the verdict on the original run and on its model versions (``mlkit.reproduced`` and friends),
    which the ``reproduced`` promotion gate reads. Raises for what stops a reproduction from running at all
    (unknown target, a run not made by mlkit, a commit missing from the repository, data in neither the
    cache nor the remote); a reproduction that runs and differs raises :class:`ReproductionMismatch`
    (exit code 4) once the verdict is recorded, with the result (``matched=False``) on it.

    A run trained with uncommitted changes is rebuilt only with ``apply_diff``: the recorded diff comes
    from the tracking store, which anyone with write access to it could have replaced, so it is applied
    only when asked, after its summary is reported and its sha256 matches the one recorded at train time.
    """
    if tolerance < 0:
        raise UsageError(f"--tolerance {tolerance}: must be 0 or more", hint="e.g. --tolerance 1e-9")
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    client = mlflow.client(project)
    run, model_name, versions = resolve_target(client, target)
    run_id = run.info.run_id
    run_tags = dict(run.data.tags)
    if tags.GIT_COMMIT not in run_tags or tags.PARAMS not in run_tags:
        raise UsageError(
            f"run {run_id} was not made by mlkit (it has no mlkit lineage tags)",
            hint="only runs from `mlkit train` can be reproduced",
        )
    original = L.RunLineage.from_tags(run_tags)
    if not original.git_commit:
        raise UsageError(
            f"run {run_id} was trained outside a git repository; there is no commit to rebuild",
            hint="train inside the project's git repository",
        )
    if original.git_dirty and not apply_diff:
        raise UsageError(
            f"run {run_id} was trained with uncommitted changes; their recorded diff is applied only when asked",
            hint=f"run `mlkit reproduce {target} --apply-diff` to apply it (its files and sha256 are shown first)",
        )
    _require_commit(project.root, original.git_commit)
    recorded_backend = L.Backend.from_tags(run_tags, run.data.params)
    backend_overrides = replay_backend(project, recorded_backend)

    say(f"reproducing run {run_id} from commit {original.git_commit[:12]} on {recorded_backend.describe()}")
    with tempfile.TemporaryDirectory() as downloads:
        diff = _verified_diff(client, run_id, run_tags, Path(downloads), say) if original.git_dirty else None
        with _worktree(project.root, original.git_commit) as tree:
            if diff is not None:
                say("applying the recorded uncommitted diff")
                _apply_diff(run_id, diff, tree)
            data_checks = _bring_data(project.root, tree, original.data_md5s, say)
            say("training with the recorded params and seed")
            outcome = _retrain(client, project, tree, run, original, backend_overrides)
    applied = diff is not None
    checks = data_checks + _compare(client, run, outcome, run_tags, tolerance)
    matched = all(check.equal for check in checks)
    differences = recorded_backend.differences(outcome.lineage.backend)
    # the backend first: a model fitted elsewhere differs for that reason before any other
    causes = [] if matched else differences + likely_causes(client, run_id, original, blame_randomness=not differences)
    if matched or not differences:
        _record(client, run_id, matched, outcome.run_id)
    else:  # evidence of neither verdict: leave it, and say which run tried and why it does not count
        _record_inconclusive(client, run_id, outcome.run_id, differences)
    result = ReproduceResult(
        target=target,
        run_id=run_id,
        model_name=model_name,
        model_versions=versions,
        commit=original.git_commit,
        applied_diff=applied,
        reproduced_run_id=outcome.run_id,
        tolerance=tolerance,
        matched=matched,
        checks=checks,
        likely_causes=causes,
        seconds=round(time.perf_counter() - started, 2),
        backend=recorded_backend.describe(),
        reproduced_backend=outcome.lineage.backend.describe(),
        backend_differences=differences,
        verdict_recorded=matched or not differences,
    )
    if not matched:
        raise ReproductionMismatch(result)
    return result


def resolve_target(client: Any, target: str) -> tuple[Any, str | None, list[str]]:
    """(the run, model name, model versions made from that run) for a run id (or a unique prefix of six
    characters or more), NAME@STAGE or NAME/VERSION (parsed as everywhere else in mlkit: ``churn/v3`` is
    version 3)."""
    from mlflow.exceptions import MlflowException

    target = target.strip()
    try:
        if "@" in target or "/" in target:
            ref = ModelRef.parse(target)
            if ref.stage is None and ref.version is None:
                raise UsageError(f"{target!r}: the version after '/' must be a number, e.g. churn/3")
            version = (
                client.get_model_version_by_alias(ref.name, ref.stage)
                if ref.stage
                else client.get_model_version(ref.name, ref.version)
            )
            return client.get_run(version.run_id), ref.name, [str(version.version)]
        if _RUN_PREFIX.match(target) and not _RUN_ID.match(target):
            run = resolve_run(client, target)  # a unique prefix, as `mlkit runs show` takes
        elif not _RUN_ID.match(target):
            raise UsageError(
                f"{target!r} is not a run id, NAME@STAGE or NAME/VERSION",
                hint="see `mlkit runs list` or `mlkit models list`",
            )
        else:
            run = client.get_run(target)
    except MlflowException as exc:
        raise UsageError(
            f"{target!r} not found in the tracking store: {first_line(exc)}",
            hint="see `mlkit runs list` or `mlkit models list`",
        ) from None
    found = client.search_model_versions(f"run_id='{run.info.run_id}'")
    names = {v.name for v in found}
    return run, (names.pop() if len(names) == 1 else None), sorted(str(v.version) for v in found)


def replay_backend(project: Project, recorded: L.Backend) -> dict[str, Any]:
    """The settings that retrain on the recorded backend: in process for a local run, whatever
    ``MLKIT_DASK_SCHEDULER`` says; on a Dask cluster for a dask run, when one is configured here (the
    environment, or training.scheduler in mlkit.yaml), else a refusal (exit code 2) that says why."""
    if recorded.name != "dask":
        return {"training.backend": recorded.name}
    scheduler = project.config.training.scheduler
    if not scheduler:
        raise UsageError(
            f"recorded backend {recorded.describe()}; set {C.ENV_DASK_SCHEDULER} or training.scheduler to reproduce it",
            hint="a reproduction in process would not be evidence either way: the model was fitted on a cluster",
        )
    return {"training.backend": "dask", "training.scheduler": scheduler}


def likely_causes(client: Any, run_id: str, original: L.RunLineage, *, blame_randomness: bool = True) -> list[str]:
    """Differences between the recorded environment and this one, numeric libraries first."""
    import platform

    causes = []
    if original.python_version and original.python_version != platform.python_version():
        causes.append(f"Python {original.python_version} then, {platform.python_version()} now")
    recorded = _recorded_lock(client, run_id)
    current = _parse_lock(L.package_lock())
    changed = []
    for name in sorted(set(recorded) | set(current)):
        then, now = recorded.get(name), current.get(name)
        if then != now and recorded:
            changed.append((name, then, now))
    changed.sort(key=lambda item: (item[0] not in _NUMERIC_STACK, item[0]))
    for name, then, now in changed[:15]:
        causes.append(f"{name} {then or 'absent'} then, {now or 'absent'} now")
    if len(changed) > 15:
        causes.append(f"and {len(changed) - 15} more package differences")
    if not causes and blame_randomness:
        causes.append("the environment is the same: look for unseeded randomness or inputs outside git and DVC")
    return causes


# --- steps -------------------------------------------------------------------------------------------


def _require_commit(root: Path, commit: str) -> None:
    if git.succeeds(root, "cat-file", "-e", f"{commit}^{{commit}}"):
        return
    shallow = git.run(root, "rev-parse", "--is-shallow-repository", check=False, read_only=True) == "true"
    hint = (
        "this clone is shallow: fetch the full history with `git fetch --unshallow`"
        if shallow
        else "fetch the branch that has it, e.g. `git fetch origin`"
    )
    raise OperationError(f"commit {commit} is not in this repository", hint=hint)


@contextmanager
def _worktree(root: Path, commit: str) -> Iterator[Path]:
    parent = root / C.STATE_DIR / WORKTREES_DIR
    parent.mkdir(parents=True, exist_ok=True)
    tree = Path(tempfile.mkdtemp(prefix="reproduce-", dir=parent))
    tree.rmdir()
    try:
        git.run(root, "worktree", "add", "--detach", "--quiet", str(tree), commit)
        yield tree
    finally:
        git.run(root, "worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(tree, ignore_errors=True)
        git.run(root, "worktree", "prune", check=False)


def _verified_diff(client: Any, run_id: str, run_tags: Mapping[str, str], folder: Path, say: Progress) -> Path:
    """The run's recorded diff, downloaded into ``folder``, once its sha256 is the one recorded at train time;
    its summary (files, lines, sha256) is reported first."""
    if run_tags.get(tags.DIFF_OMITTED):
        raise OperationError(
            f"run {run_id} recorded no diff: {run_tags[tags.DIFF_OMITTED]}", hint="the run cannot be rebuilt exactly"
        )
    expected = run_tags.get(tags.DIFF_SHA256, "")
    if not expected:
        raise OperationError(
            f"run {run_id} records no sha256 for its diff ({tags.DIFF_SHA256}); an unverifiable diff is never applied",
            hint="train again from this mlkit version to record one",
        )
    artifact = run_tags.get(tags.GIT_DIFF) or tags.DIFF_ARTIFACT
    try:
        path = Path(client.download_artifacts(run_id, artifact, str(folder)))
    except Exception as exc:
        raise OperationError(
            f"run {run_id} came from a dirty tree but its diff ({artifact}) is missing: {first_line(exc)}",
            hint="the run cannot be rebuilt exactly",
        ) from None
    content = path.read_bytes()
    say(diff_summary(content))
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise OperationError(
            f"the recorded diff of run {run_id} has sha256 {actual}, not {expected} as recorded "
            "at train time: it was changed; nothing was applied",
            hint="reproduce from a store you trust, or train again",
        )
    return path


def diff_summary(content: bytes) -> str:
    """One line: the files a diff touches, the lines it adds and removes, its sha256."""
    files, added, removed = [], 0, 0
    for line in content.decode("utf-8", "replace").splitlines():
        if line.startswith("diff --git "):
            files.append(line.rsplit(" b/", 1)[-1])
        elif line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    shown = ", ".join(files[:10]) + (f", and {len(files) - 10} more" if len(files) > 10 else "")
    return (
        f"recorded diff: {len(files)} file{'' if len(files) == 1 else 's'} ({shown}), +{added} -{removed} "
        f"lines, sha256 {hashlib.sha256(content).hexdigest()}"
    )


def _apply_diff(run_id: str, path: Path, tree: Path) -> None:
    if path.stat().st_size:
        try:
            git.run(tree, "apply", "--binary", "--whitespace=nowarn", str(path))
        except OperationError as exc:
            raise OperationError(
                f"the recorded diff of run {run_id} does not apply to its commit: "
                f"{exc.message.removeprefix('git apply failed: ')}"
            ) from None


def _bring_data(root: Path, tree: Path, md5s: Mapping[str, str], say: Progress) -> list[Check]:
    """Check out every input by md5: from the project's cache (links), else the remote.

    A file whose copy in the remote no longer has its md5 (corrupted or tampered with) is still brought
    in, so the retrained model shows what it changes; its row in the verdict shows both md5s.
    """
    dvc.share_cache(tree, root)
    records = {path: recorded(tree, path, base=tree) for path in md5s}
    for path, md5 in md5s.items():
        if records[path].md5 != md5:
            raise OperationError(
                f"{path}: commit and diff record md5 {records[path].md5}, the run recorded {md5}",
                hint="the run's lineage is inconsistent; it cannot be rebuilt exactly",
            )
    # a directory counts as cached only with every file in it
    cached = dvc.in_cache(tree, [(record.md5, record.hash_name) for record in records.values()])
    checks, to_fetch, to_link = [], [], []
    for path, md5 in md5s.items():
        if cached[md5]:
            to_link.append(tree / path)
            checks.append(Check(f"data {path}", md5, md5, True, kind="data"))
        else:
            say(f"fetching {path} ({md5}) from the DVC remote")
            actual = _inspect_remote_copy(tree, path, md5, records[path].is_dir)
            if actual == md5:
                to_fetch.append(tree / path)
            checks.append(Check(f"data {path}", md5, actual, actual == md5, kind="data"))
    if to_fetch:
        dvc.fetch(tree, to_fetch)
        to_link += to_fetch
    if to_link:
        say("linking data from the cache")
        dvc.checkout_workspace(tree, to_link, force=True)
    return checks


def _inspect_remote_copy(tree: Path, path: str, md5: str, is_dir: bool) -> str:
    """The md5 of the remote's copy of ``md5``; a corrupted file is placed in the worktree as found."""
    if is_dir:  # DVC checks every file of a directory itself; trust its fetch
        return md5
    with tempfile.TemporaryDirectory(dir=tree) as tmp:
        copy = Path(tmp) / "object"
        if not dvc.fetch_raw(tree, md5, copy):
            raise OperationError(
                f"data {path} (md5 {md5}) is in neither the DVC cache nor the remote",
                hint="push it from a machine that has it: `mlkit data push`",
            )
        actual = _md5(copy)
        if actual != md5:
            destination = tree / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.unlink(missing_ok=True)
            shutil.move(str(copy), destination)
            _rewrite_record(tree / f"{path}.dvc", md5, actual, destination.stat().st_size)
    return actual


def _rewrite_record(dvc_file: Path, old: str, new: str, size: int) -> None:
    """Point the worktree's `.dvc` file at the data actually found, so training can run on it."""
    import yaml

    data = yaml.safe_load(dvc_file.read_text())
    for out in data.get("outs", []):
        if out.get("md5") == old:
            out["md5"], out["size"] = new, size
    dvc_file.write_text(yaml.safe_dump(data, sort_keys=False))


def _retrain(
    client: Any, project: Project, tree: Path, run: Any, original: L.RunLineage, backend: Mapping[str, Any]
) -> TrainResult:
    overrides = {
        "tracking.uri": project.tracking_uri,
        **backend,
        **{f"params.{key}": value for key, value in original.params.items()},
    }
    rebuilt = load_project(tree, overrides=overrides)
    experiment = _experiment_name(client, run)
    return train(
        rebuilt,
        TrainOptions(
            experiment=experiment,
            register=False,
            allow_dirty=True,
            write_metrics=False,
            tags={tags.REPRODUCES: run.info.run_id, tags.BACKEND_SOURCE: "mlkit reproduce"},
            command=["mlkit", "reproduce", run.info.run_id],
        ),
    )


def _experiment_name(client: Any, run: Any) -> str | None:
    try:
        return str(client.get_experiment(run.info.experiment_id).name)
    except Exception:
        return None


def _compare(client: Any, run: Any, outcome: Any, run_tags: Mapping[str, str], tolerance: float) -> list[Check]:
    reproduced = client.get_run(outcome.run_id).data.metrics
    checks = []
    for name in sorted(run.data.metrics):
        if is_timing(name):
            continue
        then, now = run.data.metrics[name], reproduced.get(name)
        equal = now is not None and (then == now if tolerance == 0 else abs(then - now) <= tolerance)
        checks.append(Check(name, then, now, equal))
    recorded = run_tags.get(tags.PREDICTIONS_SHA256, "")
    if recorded:
        # a tolerance exists for numbers that differ in the last bits, which any fingerprint of them
        # shows: under --tolerance a different fingerprint is reported as not compared, not as equal
        same = recorded == outcome.predictions_sha256
        name = "predictions sha256" if same or tolerance == 0 else FINGERPRINT_NOT_COMPARED
        checks.append(Check(name, recorded, outcome.predictions_sha256, same or tolerance > 0, kind="fingerprint"))
    return checks


def _record(client: Any, run_id: str, matched: bool, by_run: str | None) -> None:
    """The verdict on the original run and on every model version made from it."""
    values = {
        tags.REPRODUCED: "true" if matched else "false",
        tags.REPRODUCED_BY_RUN: by_run or "",
        tags.REPRODUCED_AT: utc_iso(time.time() * 1000),
    }
    for key, value in values.items():
        mlflow.retry_locked(partial(client.set_tag, run_id, key, value))
    for found in client.search_model_versions(f"run_id='{run_id}'"):
        for key, value in values.items():
            mlflow.retry_locked(partial(client.set_model_version_tag, found.name, found.version, key, value))


def _record_inconclusive(client: Any, run_id: str, by_run: str, differences: list[str]) -> None:
    """On the original run and its versions: which run tried, and the backend differences that make its
    mismatch no evidence; ``mlkit.reproduced`` is left as it was."""
    value = f"run {by_run} did not match on another backend: " + "; ".join(differences)
    mlflow.retry_locked(partial(client.set_tag, run_id, tags.REPRODUCTION_INCONCLUSIVE, value[:5000]))
    for found in client.search_model_versions(f"run_id='{run_id}'"):
        mlflow.retry_locked(
            partial(
                client.set_model_version_tag, found.name, found.version, tags.REPRODUCTION_INCONCLUSIVE, value[:5000]
            )
        )


def _recorded_lock(client: Any, run_id: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, tags.LOCK_ARTIFACT, tmp)
        except Exception:
            return {}
        return _parse_lock(Path(path).read_text())


def _parse_lock(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            out[name.strip().lower()] = version.strip()
    return out


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
