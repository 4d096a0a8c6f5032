"""`mlkit monitor`: compare current data (a file or the serve prediction log) with the reference profile of
a model version, and say whether the monitoring policy of mlkit.yaml was crossed.

The current data are read once, in chunks, into the same summaries the profile holds, so memory does not
grow with the number of rows. For a file the model's predictions are computed chunk by chunk (prediction
drift, and decay when labels are given); the prediction log already holds them. Labels come from the
target column of the current file, or from ``--labels FILE`` joined on ``--id COLUMN``; only the labelled
rows' predictions are kept for the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkit import constants as C
from mlkit import tags
from mlkit.errors import ConfigError, UsageError, first_line
from mlkit.monitoring import assess as A
from mlkit.monitoring import reader
from mlkit.monitoring.profile import ReferenceProfile
from mlkit.monitoring.sketch import CategoricalSketch, NumericSketch, category_key, numeric_values
from mlkit.progress import Progress, or_silent

if TYPE_CHECKING:
    from mlkit.config import MonitoringSection
    from mlkit.project import Project

# metrics that need class probabilities, which the prediction log does not hold
_SCORE_METRICS = ("roc_auc", "log_loss")
_PROGRESS_EVERY_S = 1.0
_COLUMN_GROUP = 10


@dataclass
class MonitorOptions:
    """What to compare: ``current`` (a file) or the prediction log ``since`` a time span ago."""

    current: Path | None = None
    since: timedelta | None = None
    labels: Path | None = None
    id_column: str | None = None
    predict: bool = True  # compute the model's predictions on a current file
    log_run: bool = True  # record a monitoring run in the tracking store
    html: bool = True  # render the HTML report (for the run and for --html)
    now: datetime | None = None  # the end of the --since window (tests)


@dataclass
class MonitorReport:
    model: str
    version: str
    stage: str | None
    training_run_id: str
    profile_sha256: str
    source: str
    reference_rows: int
    current_rows: int
    labelled_rows: int
    assessment: A.Assessment
    drift_share_limit: float
    skipped_rows: int = 0  # prediction-log rows of other models or versions
    monitoring_run_id: str | None = None
    version_marked: bool = False  # the version's tags point at this monitoring run
    seconds: float = 0.0
    html: str | None = field(default=None, repr=False)

    @property
    def crossed(self) -> bool:
        return self.assessment.crossed

    @property
    def target(self) -> str:
        return f"{self.model}@{self.stage}" if self.stage else f"{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        a = self.assessment
        return {
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "training_run_id": self.training_run_id,
            "profile_sha256": self.profile_sha256,
            "source": self.source,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "skipped_rows": self.skipped_rows,
            "labelled_rows": self.labelled_rows,
            "crossed": self.crossed,
            "reasons": a.reasons,
            "drifted_features": [f.name for f in a.drifted],
            "drifted_share": round(a.drifted_share, 6),
            "drift_share_limit": self.drift_share_limit,
            "features": [f.to_dict() for f in a.features],
            "prediction": a.prediction.to_dict() if a.prediction else None,
            "target": a.target.to_dict() if a.target else None,
            "findings": [f.to_dict() for f in a.findings],
            "metrics": [m.to_dict() for m in a.metrics],
            "monitoring_run_id": self.monitoring_run_id,
            "version_marked": self.version_marked,
            "seconds": self.seconds,
        }


def monitor(project: Project, target: str, options: MonitorOptions, progress: Progress | None = None) -> MonitorReport:
    """Compare current data with the reference profile of the version ``target`` points at.

    Returns the report; crossing the policy is in ``report.crossed`` (the CLI turns it into exit code 5).
    """
    from mlkit.monitoring import store

    say = or_silent(progress)
    started = time.perf_counter()
    policy = project.config.monitoring
    floors = _floors(project, policy)
    if options.current is not None and options.since is not None:
        raise UsageError(
            "give either --current FILE or --since SPAN (the prediction log), not both",
            hint="e.g. `mlkit monitor churn@production --current data/new.csv`",
        )
    if options.current is None and options.since is None:
        options = _from_settings(project, options)
    if (options.labels is None) != (options.id_column is None):
        raise UsageError("--labels and --id go together", hint="e.g. --labels labels.csv --id customer_id")

    if options.current is not None:
        source = reader.open_file(options.current)
        start = None
    else:
        assert options.since is not None
        source, start = reader.open_log(project.root, options.since, options.now)
    say(f"resolving {target}")
    watched = store.resolve(project, target)
    profile = store.load_profile(project, watched)

    labels = _read_labels(options, project, profile) if options.labels is not None else None
    scan = _Scan(
        project,
        profile,
        source,
        watched,
        labels=labels,
        id_column=options.id_column,
        since_start=start,
        predict=options.predict and source.log is False,
    )
    say(f"reading {source.description}")
    model = store.load_model(project, watched) if scan.needs_model else None
    scan.run(model, say)

    if scan.rows == 0:
        raise UsageError(
            f"no rows to monitor in {source.description}"
            + (f" for {watched.name} version {watched.version}" if source.log else ""),
            hint="pass a file with rows, or a longer --since",
        )
    current_metrics = scan.metrics(project)
    checks = A.metric_checks(project.config.metrics, current_metrics, profile.metrics, floors)
    assessment = A.assess(
        profile,
        scan.sketches,
        policy,
        columns=scan.columns,
        ignored_columns=scan.ignored,
        prediction=scan.prediction,
        target=scan.target_sketch,
        metrics=checks,
    )
    report = MonitorReport(
        model=watched.name,
        version=watched.version,
        stage=watched.stage,
        training_run_id=watched.run_id,
        profile_sha256=profile.sha256,
        source=source.description,
        reference_rows=profile.rows,
        current_rows=scan.rows,
        labelled_rows=scan.labelled_rows,
        assessment=assessment,
        drift_share_limit=policy.drift_share,
        skipped_rows=scan.skipped,
    )
    from mlkit.monitoring import render

    if options.html or options.log_run:
        say("drawing the report")
        report.html = render.html_report(report, profile, scan.sketches, scan.prediction)
    report.seconds = round(time.perf_counter() - started, 3)
    if options.log_run:
        say("logging the monitoring run")
        report.monitoring_run_id = store.log_run(
            project,
            watched,
            metrics=_run_metrics(report),
            run_tags={tags.MONITORING_CROSSED: str(report.crossed).lower(), tags.PROFILE_SHA256: profile.sha256},
            files={
                tags.REPORT_JSON_ARTIFACT: render.json_text(report),
                **({tags.REPORT_HTML_ARTIFACT: report.html} if report.html else {}),
            },
        )
        report.version_marked = store.mark_version(project, watched, report.monitoring_run_id, report.crossed)
    return report


def _from_settings(project: Project, options: MonitorOptions) -> MonitorOptions:
    """``monitoring.current`` (and ``labels``/``id`` unless given) from mlkit.yaml, for a bare `mlkit monitor`."""
    policy = project.config.monitoring
    if policy.current is None:
        raise UsageError(
            "nothing to monitor: give --current FILE or --since SPAN, or set monitoring.current in mlkit.yaml",
            hint="e.g. `mlkit monitor churn@production --current data/new.csv`",
        )
    current = project.root / policy.current
    if not current.is_file():
        raise UsageError(
            f"monitoring.current: {policy.current} not found",
            hint="run `mlkit data pull` to fetch the versioned data, or fix monitoring.current in mlkit.yaml",
        )
    if not current.resolve().is_relative_to(project.root.resolve()):
        raise UsageError(
            f"monitoring.current: {policy.current} leads outside the project",
            hint="name a file inside the project, tracked with `mlkit data add`",
        )
    labels, id_column = options.labels, options.id_column
    if labels is None and id_column is None and policy.labels is not None:
        labels, id_column = project.root / policy.labels, policy.id
    return replace(options, current=current, labels=labels, id_column=id_column)


def compare_file(
    profile: ReferenceProfile, path: Path, policy: MonitoringSection | None = None, progress: Progress | None = None
) -> A.Assessment:
    """Data drift and quality of the file at ``path`` against ``profile``, with no model and no tracking
    store: the part of :func:`monitor` that reads the data (what the benchmark measures)."""
    from mlkit.config import MonitoringSection

    say = or_silent(progress)
    source = reader.open_file(path)
    sketches = {f.name: f.empty_sketch() for f in profile.features if f.name in source.columns}
    categorical = [f.name for f in profile.features if f.kind == "categorical"]
    names = list(sketches)
    # with no model to feed whole rows, a Parquet file is read a few columns at a time: Arrow keeps read
    # buffers per column, so this lowers the peak; a CSV file has to be parsed whole, so it is read once
    step = _COLUMN_GROUP if source.files[0].suffix in (".parquet", ".pq") else max(len(names), 1)
    rows, shown = 0, time.monotonic()
    for start in range(0, len(names), step):
        group, rows = names[start : start + step], 0
        for chunk in reader.chunks(source, group, categorical=[c for c in categorical if c in group]):
            for name in group:
                _Scan._add(sketches[name], chunk[name])
            rows += len(chunk)
            if time.monotonic() - shown >= _PROGRESS_EVERY_S:
                say(f"read {rows:,} rows of {len(group)} columns")
                shown = time.monotonic()
    say(f"read {rows:,} rows")
    return A.assess(profile, sketches, policy or MonitoringSection(), columns=source.columns)


def _floors(project: Project, policy: MonitoringSection) -> list[tuple[str, str, float]]:
    allowed = C.DEFAULT_METRICS[project.config.model.task]
    floors = policy.parsed_floors()
    for metric, _, _ in floors:
        if metric not in allowed:
            raise ConfigError(
                f"{C.CONFIG_FILE}: monitoring.metric_floors: unknown metric {metric!r}; allowed: " + ", ".join(allowed),
                hint=f"fix {C.CONFIG_FILE} and run the command again",
            )
    return floors


def _read_labels(options: MonitorOptions, project: Project, profile: ReferenceProfile) -> dict[str, Any]:
    """``--labels``: id -> label (classification: the label's category key; regression: a float)."""
    assert options.labels is not None and options.id_column is not None
    from mlkit.training.datasets import read_table

    path, target = options.labels, project.config.data.target
    if not path.is_file():
        raise UsageError(f"{path}: labels file not found", hint="pass an existing CSV or Parquet file to --labels")
    frame = read_table(path)
    for column in (options.id_column, target):
        if column not in frame.columns:
            raise UsageError(
                f"{path.name}: no column {column!r}; columns: " + ", ".join(map(str, frame.columns[:20])),
                hint=f"the labels file needs the id column and the target column {target!r}",
            )
    frame = frame[[options.id_column, target]].dropna()
    ids = [category_key(v) for v in frame[options.id_column].tolist()]
    values = frame[target].tolist()
    if profile.task == "classification":
        return dict(zip(ids, (category_key(v) for v in values), strict=True))
    return dict(zip(ids, (float(v) for v in values), strict=True))


class _Scan:
    """One pass over the current data, chunk by chunk, into summaries comparable with the profile."""

    def __init__(
        self,
        project: Project,
        profile: ReferenceProfile,
        source: reader.Source,
        watched: Any,
        *,
        labels: dict[str, Any] | None,
        id_column: str | None,
        since_start: datetime | None,
        predict: bool,
    ) -> None:
        config = project.config
        self.project, self.profile, self.source, self.watched = project, profile, source, watched
        self.features = profile.feature_names
        self.target_column = config.data.target
        raw = [c for c in source.columns if c not in reader.LOG_COLUMNS] if source.log else list(source.columns)
        missing = [name for name in self.features if name not in raw]
        # the profile describes the columns the model was fitted on, after the data hook: derive them the same way
        self.hook = config.data.hook if missing and config.data.hook else None
        self.columns = raw
        self.ignored = {self.target_column, *config.data.drop, *([id_column] if id_column else [])}
        self.labels, self.id_column = labels, id_column
        self.labels_in_data = not source.log and labels is None and self.target_column in raw
        self.since_start = since_start
        self.predict = predict and profile.prediction is not None and not missing_after_hook(missing, self.hook)
        self.sketches: dict[str, NumericSketch | CategoricalSketch] = {}
        self.prediction: NumericSketch | CategoricalSketch | None = (
            profile.prediction.empty_sketch() if profile.prediction is not None else None
        )
        self.target_sketch: NumericSketch | CategoricalSketch | None = None
        if profile.target is not None and (labels is not None or self.labels_in_data):
            self.target_sketch = profile.target.empty_sketch()
        self.rows = self.skipped = 0
        self.truth: list[Any] = []
        self.predicted: list[Any] = []
        self.scores: list[Any] = []

    @property
    def needs_model(self) -> bool:
        return self.predict

    @property
    def labelled_rows(self) -> int:
        return len(self.truth)

    def run(self, model: Any, say: Progress) -> None:
        wanted = None if self.hook else self._wanted()
        categorical = [] if self.hook else [f.name for f in self.profile.features if f.kind == "categorical"]
        if self.id_column and self.id_column not in self.source.columns:
            raise UsageError(
                f"--id {self.id_column!r}: no such column in {self.source.description}",
                hint="name a column both the current data and the labels file have",
            )
        shown = time.monotonic()
        for chunk in reader.chunks(self.source, wanted, categorical=categorical):
            chunk = self._filter_log(chunk)
            if not len(chunk):
                continue
            if self.hook:
                chunk = self._apply_hook(chunk)
            self.rows += len(chunk)
            self._add_features(chunk)
            predicted, scores = self._predictions(chunk, model)
            if predicted is not None and self.prediction is not None:
                self._add(self.prediction, predicted)
            self._add_labels(chunk, predicted, scores)
            if time.monotonic() - shown >= _PROGRESS_EVERY_S:
                say(f"read {self.rows:,} rows")
                shown = time.monotonic()
        say(f"read {self.rows:,} rows")
        for reference in self.profile.features:
            if reference.name in self.columns or self.hook:
                self.sketches.setdefault(reference.name, reference.empty_sketch())
        if self.hook:
            self.columns = list(dict.fromkeys([*self.columns, *self.sketches]))

    def _wanted(self) -> list[str]:
        meta = [reader.LOG_PREDICTION, reader.LOG_MODEL, reader.LOG_VERSION, reader.LOG_TIME] if self.source.log else []
        extra = [self.target_column] if self.labels_in_data else []
        ids = [self.id_column] if self.id_column else []
        return list(dict.fromkeys([*self.features, *meta, *extra, *ids]))

    def _filter_log(self, chunk: Any) -> Any:
        if not self.source.log:
            return chunk
        import pandas as pd

        keep = pd.Series(True, index=chunk.index)
        if reader.LOG_MODEL in chunk.columns:
            keep &= chunk[reader.LOG_MODEL].astype(str) == self.watched.name
        if reader.LOG_VERSION in chunk.columns:
            keep &= chunk[reader.LOG_VERSION].map(category_key) == self.watched.version
        self.skipped += int((~keep).sum())
        if self.since_start is not None and reader.LOG_TIME in chunk.columns:
            times = pd.to_datetime(chunk[reader.LOG_TIME], utc=True)
            keep &= times >= pd.Timestamp(self.since_start)
        return chunk[keep]

    def _apply_hook(self, chunk: Any) -> Any:
        from mlkit.training.datasets import apply_hook

        assert self.hook is not None
        try:
            return apply_hook(chunk, self.hook, self.project.root)
        except UsageError:
            raise
        except Exception as exc:
            raise UsageError(
                f"{C.CONFIG_FILE}: data.hook: {self.hook} failed on the current data: "
                f"{first_line(exc, with_type=True)}",
                hint="the current data must have the columns of the training data",
            ) from None

    def _add_features(self, chunk: Any) -> None:
        for reference in self.profile.features:
            if reference.name not in chunk.columns:
                continue
            sketch = self.sketches.get(reference.name)
            if sketch is None:
                sketch = self.sketches[reference.name] = reference.empty_sketch()
            self._add(sketch, chunk[reference.name])

    @staticmethod
    def _add(sketch: NumericSketch | CategoricalSketch, values: Any) -> None:
        import pandas as pd

        series = values if isinstance(values, pd.Series) else pd.Series(values)
        if isinstance(sketch, NumericSketch):
            array, unparsable = numeric_values(series)
            sketch.update(array, unparsable)
        else:
            sketch.update(series)

    def _predictions(self, chunk: Any, model: Any) -> tuple[Any, Any]:
        """The predictions for ``chunk``, as labels (classification) or floats; and class scores if any."""
        import pandas as pd

        if self.source.log:
            if reader.LOG_PREDICTION not in chunk.columns:
                return None, None
            values = chunk[reader.LOG_PREDICTION]
            if self.profile.task == "regression":
                return pd.to_numeric(values, errors="coerce").reset_index(drop=True), None
            return values.map(lambda v: None if v is None or v != v else category_key(v)).reset_index(drop=True), None
        if model is None:
            return None, None
        features = chunk[self.features]
        try:
            raw = model.predict(features)
            scores = (
                model.predict_proba(features)
                if self.profile.task == "classification" and hasattr(model, "predict_proba")
                else None
            )
        except Exception as exc:
            raise UsageError(
                f"the model cannot predict on {self.source.description}: {first_line(exc)}",
                hint="check that the current data has the training data's columns and types",
            ) from None
        if self.profile.task == "regression":
            return pd.Series(raw, dtype="float64"), None
        classes = self.profile.classes or []
        return pd.Series([classes[int(v)] if 0 <= int(v) < len(classes) else category_key(v) for v in raw]), scores

    def _add_labels(self, chunk: Any, predicted: Any, scores: Any) -> None:
        import numpy as np
        import pandas as pd

        if self.labels_in_data:
            truth = chunk[self.target_column].reset_index(drop=True)
            keep = truth.notna().to_numpy()
            values = truth[keep]
        elif self.labels is not None and self.id_column is not None:
            ids = chunk[self.id_column].map(category_key).reset_index(drop=True)
            keep = ids.isin(self.labels.keys()).to_numpy()
            values = ids[keep].map(self.labels)
        else:
            return
        if self.target_sketch is not None:
            self._add(self.target_sketch, values.map(category_key) if self.profile.task == "classification" else values)
        if predicted is None:
            return
        self.truth += [category_key(v) if self.profile.task == "classification" else float(v) for v in values]
        self.predicted += list(pd.Series(predicted)[keep])
        if scores is not None:
            self.scores.append(np.asarray(scores)[keep])

    def metrics(self, project: Project) -> dict[str, float]:
        """The project's metrics on the labelled rows (score-based ones only when scores were computed)."""
        import numpy as np

        from mlkit.training.evaluation import compute_metrics

        if not self.truth:
            return {}
        names = list(project.config.metrics)
        if self.profile.task == "regression":
            truth = np.asarray(self.truth, dtype=np.float64)
            predicted = np.asarray(self.predicted, dtype=np.float64)
            ok = ~np.isnan(predicted)
            return compute_metrics(names, "regression", truth[ok], predicted[ok], None)
        classes = list(self.profile.classes or [])
        index = {c: i for i, c in enumerate(classes)}
        unseen = len(classes)
        truth = np.asarray([index.get(v, unseen) for v in self.truth], dtype=np.int64)
        predicted = np.asarray([index.get(v, unseen) for v in self.predicted], dtype=np.int64)
        scores = np.concatenate(self.scores) if self.scores else None
        if scores is None or unseen in truth:
            names = [n for n in names if n not in _SCORE_METRICS]
        return compute_metrics(names, "classification", truth, predicted, scores)


def missing_after_hook(missing: Sequence[str], hook: str | None) -> bool:
    """Whether some profiled columns stay missing (no hook to derive them)."""
    return bool(missing) and hook is None


def _run_metrics(report: MonitorReport) -> Mapping[str, float]:
    a = report.assessment
    out: dict[str, float] = {
        "drifted_share": a.drifted_share,
        "drifted_features": float(len(a.drifted)),
        "current_rows": float(report.current_rows),
        "labelled_rows": float(report.labelled_rows),
    }
    for feature in a.features:
        out[f"drift.{_metric_name(feature.name)}.{feature.test}"] = feature.value
    if a.prediction is not None:
        out[f"drift.prediction.{a.prediction.test}"] = a.prediction.value
    for check in a.metrics:
        if check.current is not None:
            out[f"current_{check.name}"] = check.current
    return out


def _metric_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
