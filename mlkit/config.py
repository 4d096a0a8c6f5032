"""Project settings (`mlkit.yaml`) and hyperparameters (`params.yaml`): schema, layering, validation.

Settings resolve in this order: the defaults below, the project's `mlkit.yaml`, `MLKIT_*` environment
variables, then overrides: a mapping of dotted keys to values (the command line's `--set KEY=VALUE`
strings become one with :func:`parse_overrides`). Every error names the file, the field path and what is
allowed, for example ``mlkit.yaml: model.task: must be one of 'classification', 'regression'``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlkit import allowed_code, names, yamlio
from mlkit import constants as C
from mlkit.errors import ConfigError

# ASCII identifiers, matched whole (``$`` would let a trailing newline through)
_IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", re.ASCII)
_ENTRYPOINT = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", re.ASCII)
_SEED_MAX = 2**32 - 1
_THRESHOLD = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(>=|<=|>|<|==)\s*(-?[0-9.]+(?:e-?\d+)?)\s*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,-]+$")
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_AWS_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]+$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_AUDIENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:/_-]*$")
_ENV_VARIABLE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_RESERVED_PREFIXES = ("GITHUB_", "RUNNER_", "CI_", "ACTIONS_")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProjectSection(_Strict):
    name: str
    package: str = Field(description="the project's Python package under src/")

    @field_validator("package")
    @classmethod
    def _package(cls, value: str) -> str:
        if not allowed_code.TOP_LEVEL.fullmatch(value):
            raise ValueError("must be a Python package name like churn_model (letters, digits and _)")
        return value


class DataSection(_Strict):
    train: str = Field(description="DVC-tracked CSV or Parquet file the model is trained on")
    test: str | None = Field(default=None, description="optional held-out file used instead of a split")
    target: str
    numeric: list[str] | None = None
    categorical: list[str] | None = None
    drop: list[str] = Field(default_factory=list)
    hook: str | None = Field(default=None, description="package.module:function applied to the data")

    @field_validator("hook")
    @classmethod
    def _hook(cls, value: str | None) -> str | None:
        if value is not None and not _ENTRYPOINT.fullmatch(value):
            raise ValueError("must look like package.module:function")
        return value

    @field_validator("train", "test")
    @classmethod
    def _tabular(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith((".csv", ".parquet", ".pq")):
            raise ValueError("must be a .csv or .parquet file")
        return value


class ModelSection(_Strict):
    name: str = Field(description="registered model name")
    task: Literal["classification", "regression"]
    estimator: str = Field(description="import path of a scikit-learn compatible estimator class")
    entrypoint: str | None = Field(default=None, description="package.module:function returning an estimator")
    allow_modules: list[str] = Field(
        default_factory=list,
        description="top-level packages trusted for code besides the project's own and the estimator packages",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = names.model_name_problem(value)  # before training, not when registering after it
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("estimator")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not _IMPORT_PATH.fullmatch(value):
            raise ValueError("must be an import path like xgboost.XGBClassifier or sklearn.linear_model.Ridge")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str | None) -> str | None:
        if value is not None and not _ENTRYPOINT.fullmatch(value):
            raise ValueError("must look like package.module:function")
        return value

    @field_validator("allow_modules")
    @classmethod
    def _allow_modules(cls, values: list[str]) -> list[str]:
        for value in values:
            if not isinstance(value, str) or not allowed_code.TOP_LEVEL.fullmatch(value):
                raise ValueError(f"{value!r} must be a top-level package name like mycompany_models")
            reason = allowed_code.never_allowed(value)
            if reason:
                raise ValueError(f"{reason}: it cannot be allowed")
        return values


class TrainingSection(_Strict):
    metrics: list[str] | None = None
    backend: Literal["local", "dask"] = "local"
    scheduler: str | None = Field(default=None, description="Dask scheduler address, tcp://host:port")

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(tcp|tls|inproc)://", value):
            raise ValueError("must be a Dask scheduler address like tcp://127.0.0.1:8786")
        return value


class TrackingSection(_Strict):
    uri: str | None = Field(default=None, description="MLflow tracking URI; default: SQLite in .mlkit/")
    experiment: str | None = None


class BeatCurrent(_Strict):
    metric: str
    margin: float = 0.0


class StageGates(_Strict):
    thresholds: list[str] = Field(default_factory=list, description='e.g. "f1 >= 0.85"')
    beat_current: BeatCurrent | None = None
    clean_commit: bool = False
    previous_stage: bool = False
    reproduced: bool = False

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _THRESHOLD.match(value):
                raise ValueError(f"{value!r} must look like 'f1 >= 0.85' (operators >=, >, <=, <, ==)")
        return values

    def parsed_thresholds(self) -> list[tuple[str, str, float]]:
        out = []
        for value in self.thresholds:
            match = _THRESHOLD.match(value)
            assert match is not None  # validated on load
            out.append((match.group(1), match.group(2), float(match.group(3))))
        return out


class CISecrets(_Strict):
    """Names of CI secrets (never their values): generated workflows read them into the environment."""

    tracking_uri: str | None = Field(default=None, description="secret holding the tracking server URI")
    tracking_token: str | None = None
    tracking_username: str | None = Field(default=None, description="secret holding the tracking server user")
    tracking_password: str | None = Field(default=None, description="secret holding that user's password")
    data_remote: str | None = Field(default=None, description="secret holding the DVC remote URL")
    data_remote_access_key_id: str | None = None
    data_remote_secret_access_key: str | None = None
    # ci.install / extra variables
    index_url: str | None = Field(default=None, description="secret holding an extra package index URL for pip")
    env: dict[str, str] = Field(
        default_factory=dict, description="any other variable the jobs set: ENVIRONMENT_VARIABLE: SECRET_NAME"
    )

    @field_validator("env")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        for variable, secret in value.items():
            if not _ENV_VARIABLE.match(variable) or variable.startswith(_RESERVED_PREFIXES):
                raise ValueError(
                    f"{variable!r} is not an environment variable a job may set (A-Z, 0-9 and _; "
                    "not GITHUB_*, RUNNER_*, CI_* or ACTIONS_*)"
                )
            cls._secret_name(secret)
        return value

    @field_validator(
        "tracking_uri",
        "tracking_token",
        "tracking_username",
        "tracking_password",
        "data_remote",
        "data_remote_access_key_id",
        "data_remote_secret_access_key",
        "index_url",
    )
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET_NAME.match(value):
            raise ValueError(f"{value!r} is not a secret name (letters, digits and _, not starting with a digit)")
        return value


class CIOidc(_Strict):
    """Cloud credentials without stored secrets: jobs exchange the CI's OIDC token for an AWS role."""

    aws_role: str = Field(description="ARN of the IAM role the CI jobs assume")
    aws_region: str
    audience: str = "sts.amazonaws.com"

    @field_validator("aws_role")
    @classmethod
    def _role(cls, value: str) -> str:
        if not _AWS_ROLE.match(value):
            raise ValueError(f"{value!r} is not an IAM role ARN like arn:aws:iam::123456789012:role/mlkit-ci")
        return value

    @field_validator("aws_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _AWS_REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region like eu-central-1")
        return value

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str) -> str:
        if not _AUDIENCE.match(value):
            raise ValueError(f"{value!r} is not an audience like sts.amazonaws.com")
        return value


class CISection(_Strict):
    provider: Literal["github", "gitlab"] = "github"
    python: str = "3.11"
    default_branch: str = "main"
    schedule: str = "0 4 * * 1"
    monitor_schedule: str = Field(
        default="0 5 * * *", description="cron of the monitoring workflow (UTC); it retrains when the policy is crossed"
    )
    production_environment: str = "production"
    # ci.install / pull requests
    install: str | None = Field(
        default=None,
        description="pip requirement for mlkit in CI (default: "
        "requirements.txt's pin): mlkit-ops==X.Y.Z, a VCS URL or a wheel path",
    )
    pull_request_environment: str = "pull-request"
    secrets: CISecrets = Field(default_factory=CISecrets)
    oidc: CIOidc | None = None

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if not re.match(r"^3\.\d+$", value):
            raise ValueError("must be a Python version like 3.11")
        return value

    @field_validator("default_branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if not _BRANCH.match(value) or ".." in value or value.endswith((".", "/", ".lock")):
            raise ValueError(f"{value!r} is not a branch name like main or release/v1")
        return value

    @field_validator("schedule", "monitor_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(field) for field in fields):
            raise ValueError(f"{value!r} must be a cron expression of 5 fields, e.g. '0 4 * * 1'")
        return value

    @field_validator("install")
    @classmethod
    def _install(cls, value: str | None) -> str | None:
        if value is not None and (
            not value.strip() or value != value.strip() or any(c in value for c in "\n\r") or value.startswith("-")
        ):
            raise ValueError(
                f"{value!r} is not one pip requirement like mlkit-ops==0.2.0, "
                "git+https://github.com/ORG/mlkit@TAG or a wheel path"
            )
        return value

    @field_validator("production_environment", "pull_request_environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        if not _ENVIRONMENT.match(value):
            raise ValueError(f"{value!r} is not an environment name (letters, digits, -, _ and .)")
        return value


# --- monitoring (`mlkit monitor`) ---------------------------------------------------------------------


class MonitoringThresholds(_Strict):
    """Where each drift test flags a column: a p-value below (ks, chi2) or a distance above (the others)."""

    ks: float = Field(default=0.05, gt=0.0, lt=1.0, description="p-value of Kolmogorov-Smirnov")
    chi2: float = Field(default=0.05, gt=0.0, lt=1.0, description="p-value of chi-square")
    wasserstein: float = Field(default=0.1, gt=0.0, description="Wasserstein distance / reference std")
    jensenshannon: float = Field(default=0.1, gt=0.0, lt=0.833, description="Jensen-Shannon distance")
    psi: float = Field(default=0.2, gt=0.0, description="population stability index")


class MonitoringSection(_Strict):
    """The monitoring policy: crossing it makes `mlkit monitor` exit with code 5."""

    numeric_test: Literal["auto", "ks", "wasserstein", "psi"] = "auto"
    categorical_test: Literal["auto", "chi2", "jensenshannon"] = "auto"
    small_sample: int = Field(default=1000, ge=1, description="rows up to which `auto` uses ks and chi2")
    thresholds: MonitoringThresholds = Field(default_factory=MonitoringThresholds)
    drift_share: float = Field(
        default=0.5, gt=0.0, le=1.0, description="share of drifted features that crosses the policy"
    )
    prediction_drift: bool = Field(default=True, description="drift of the predictions crosses the policy")
    metric_floors: list[str] = Field(default_factory=list, description='on labelled data, e.g. "f1 >= 0.85"')
    max_missing_increase: float = Field(default=0.1, ge=0.0, le=1.0)
    max_out_of_range_share: float = Field(default=0.05, ge=0.0, le=1.0)
    max_new_category_share: float = Field(default=0.01, ge=0.0, le=1.0)
    fail_on_data_quality: bool = Field(default=False, description="data-quality findings cross the policy")
    # what `mlkit monitor` reads when neither --current nor --since is given (the scheduled CI workflow)
    current: str | None = Field(
        default=None, description="project-relative CSV or Parquet file of recent production inputs (DVC-tracked)"
    )
    labels: str | None = Field(default=None, description="project-relative file of late labels, joined on `id`")
    id: str | None = Field(default=None, description="the column joining `labels` to `current`")

    @field_validator("current", "labels")
    @classmethod
    def _relative_file(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.replace("\\", "/").split("/")
        if value.startswith(("/", "~")) or ".." in parts or not value.endswith((".csv", ".parquet", ".pq")):
            raise ValueError(f"{value!r} must be a .csv or .parquet file inside the project, e.g. data/current.csv")
        return value

    @model_validator(mode="after")
    def _labels_need_id(self) -> MonitoringSection:
        if (self.labels is None) != (self.id is None):
            raise ValueError("labels and id go together, e.g. labels: data/labels.csv and id: customer_id")
        return self

    @field_validator("metric_floors")
    @classmethod
    def _floors(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _THRESHOLD.match(value):
                raise ValueError(f"{value!r} must look like 'f1 >= 0.85' (operators >=, >, <=, <, ==)")
        return values

    def parsed_floors(self) -> list[tuple[str, str, float]]:
        out = []
        for value in self.metric_floors:
            match = _THRESHOLD.match(value)
            assert match is not None  # validated on load
            out.append((match.group(1), match.group(2), float(match.group(3))))
        return out


class MlkitConfig(_Strict):
    version: Literal[1] = 1
    project: ProjectSection
    data: DataSection
    model: ModelSection
    training: TrainingSection = Field(default_factory=TrainingSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    stages: list[str] = Field(default_factory=lambda: ["staging", "production"])
    promotion: dict[str, StageGates] = Field(default_factory=dict)
    ci: CISection = Field(default_factory=CISection)
    monitoring: MonitoringSection = Field(default_factory=MonitoringSection)

    @field_validator("stages")
    @classmethod
    def _stages(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("must name at least one stage")
        if len(set(values)) != len(values):
            raise ValueError("stage names must be unique")
        for value in values:
            if not _STAGE_NAME.match(value) or value == "latest":
                raise ValueError(f"{value!r} is not a valid stage name (lowercase letters, digits, - or _)")
        return values

    def code_settings(self) -> list[tuple[str, str]]:
        """The settings that name code to run, as (setting, value) pairs."""
        named = [("model.estimator", self.model.estimator)]
        if self.model.entrypoint:
            named.append(("model.entrypoint", self.model.entrypoint))
        if self.data.hook:
            named.append(("data.hook", self.data.hook))
        return named

    @model_validator(mode="after")
    def _cross_checks(self) -> MlkitConfig:
        for setting, value in self.code_settings():
            refused = allowed_code.refusal(setting, value, self.project.package, self.model.allow_modules)
            if refused:
                raise _FieldError(tuple(setting.split(".")), refused)
        allowed = C.DEFAULT_METRICS[self.model.task]
        if self.training.metrics is not None:
            for name in self.training.metrics:
                if name not in allowed:
                    raise _FieldError(
                        ("training", "metrics"),
                        f"{name!r} is not a {self.model.task} metric; allowed: " + ", ".join(allowed),
                    )
        for stage, gates in self.promotion.items():
            if stage not in self.stages:
                raise _FieldError(("promotion", stage), "is not a stage; stages are " + ", ".join(self.stages))
            for metric, _, _ in gates.parsed_thresholds():
                if metric not in allowed:
                    raise _FieldError(
                        ("promotion", stage, "thresholds"), f"unknown metric {metric!r}; allowed: " + ", ".join(allowed)
                    )
            if gates.beat_current and gates.beat_current.metric not in allowed:
                raise _FieldError(
                    ("promotion", stage, "beat_current", "metric"),
                    f"unknown metric {gates.beat_current.metric!r}; allowed: " + ", ".join(allowed),
                )
        return self

    @property
    def metrics(self) -> list[str]:
        return list(self.training.metrics or C.DEFAULT_METRICS[self.model.task])


class Params(BaseModel):
    """Hyperparameters. Unknown top-level keys are kept for custom entrypoints."""

    model_config = ConfigDict(extra="allow")

    seed: int = Field(default=42, description="seeds the split and the estimator: 0 to 2**32 - 1")
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    cv_folds: int = Field(default=0, ge=0, description="0 for a single train/test split, else k >= 2")
    early_stopping_rounds: int | None = Field(default=None, ge=1)
    estimator: dict[str, Any] = Field(default_factory=dict)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML's yes/true would silently become seed 1
            raise ValueError(f"must be an integer from 0 to {_SEED_MAX}, got {value}")
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int) -> int:
        # numpy and scikit-learn take seeds in this range only, and say so only after the data is read
        if not 0 <= value <= _SEED_MAX:
            raise ValueError(f"must be an integer from 0 to {_SEED_MAX}, got {value}")
        return value

    @field_validator("cv_folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value == 1:
            raise ValueError("must be 0 (single split) or at least 2")
        return value


class _FieldError(ValueError):
    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _describe(error: Mapping[str, Any], model: type[BaseModel]) -> tuple[str, str]:
    loc = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return loc, "unknown field" + _allowed_fields(model, error["loc"][:-1])
    if kind == "missing":
        return loc, "is required"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "literal_error":
        message = message.replace("Input should be", "must be")
    return loc, message


def _allowed_fields(model: type[BaseModel], parent: tuple[Any, ...]) -> str:
    current: Any = model
    for part in parent:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return ""
        annotation = field.annotation
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if current is None:
            return ""
    names = list(getattr(current, "model_fields", {}))
    return "; allowed: " + ", ".join(names) if names else ""


def _validate(model: type[BaseModel], data: Any, filename: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{filename}: must be a mapping of settings, got {type(data).__name__}",
            hint=f"fix {filename} (see `mlkit config show` in a fresh project)",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        ctx_error = (first.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _FieldError):
            loc, message = ".".join(ctx_error.loc), ctx_error.message
        else:
            loc, message = _describe(first, model)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(
            f"{filename}: {loc}: {message}{more}", hint=f"fix {filename} and run the command again"
        ) from None


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; empty mappings stay as values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def read_yaml(path: Path) -> Any:
    try:
        text = yamlio.read_text(path)  # UTF-8, at most 1 MB
    except FileNotFoundError:
        raise ConfigError(
            f"{path.name}: file not found in {path.parent}", hint="run `mlkit init NAME` to create a project"
        ) from None
    try:
        return yamlio.loads(text, path.name)  # no duplicate keys, aliases or deep nesting
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"{path.name}: not valid YAML{where}: {problem}", hint=f"fix the syntax of {path.name}"
        ) from None


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and a YAML-typed value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"--set {text!r}: must look like KEY=VALUE, e.g. params.estimator.max_depth=6",
            hint="quote the whole KEY=VALUE pair",
        )
    try:
        value = yamlio.loads(raw, f"--set {key}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def parse_overrides(texts: Iterable[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` strings as overrides: dotted keys mapped to YAML-typed values.

    A key given twice keeps its last value, placed where it was last given, so the mapping applies in
    the order of the command line.
    """
    out: dict[str, Any] = {}
    for text in texts:
        path, value = parse_assignment(text)
        if path == ["params"]:
            raise ConfigError(f"--set {text!r}: name a parameter, e.g. params.seed=7")
        key = ".".join(path)
        out.pop(key, None)
        out[key] = value
    return out


def apply_assignments(data: dict[str, Any], assignments: Iterable[tuple[list[str], Any]]) -> dict[str, Any]:
    for path, value in assignments:
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return data


def env_overrides(environ: Mapping[str, str] | None = None) -> list[tuple[list[str], Any]]:
    """`MLKIT_*` (and MLflow's own) variables that override mlkit.yaml, as key paths."""
    env = os.environ if environ is None else environ
    out: list[tuple[list[str], Any]] = []
    uri = env.get(C.ENV_TRACKING_URI) or env.get(C.ENV_MLFLOW_TRACKING_URI)
    if uri:
        out.append((["tracking", "uri"], uri))
    if env.get(C.ENV_EXPERIMENT):
        out.append((["tracking", "experiment"], env[C.ENV_EXPERIMENT]))
    if env.get(C.ENV_DASK_SCHEDULER):
        out.append((["training", "scheduler"], env[C.ENV_DASK_SCHEDULER]))
        out.append((["training", "backend"], "dask"))
    return out


def load_config(
    root: Path, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[MlkitConfig, Params]:
    """Read, layer and validate `mlkit.yaml` and `params.yaml` of the project at ``root``.

    ``overrides`` map dotted keys to values (``{"params.seed": 7}``), applied in order; keys starting
    with ``params.`` go to params.yaml's values, all others to mlkit.yaml's.
    """
    settings = read_yaml(root / C.CONFIG_FILE) or {}
    params_path = root / C.PARAMS_FILE
    params = (read_yaml(params_path) if params_path.exists() else {}) or {}
    if not isinstance(settings, dict):
        _validate(MlkitConfig, settings, C.CONFIG_FILE)
    apply_assignments(settings, env_overrides(environ))
    setting_overrides: list[tuple[list[str], Any]] = []
    param_overrides: list[tuple[list[str], Any]] = []
    for key, value in (overrides or {}).items():
        path = key.split(".")
        if any(not part for part in path):
            raise ConfigError(f"override {key!r}: must be a dotted key, e.g. params.estimator.max_depth")
        if path == ["params"]:
            raise ConfigError(f"override {key!r}: name a parameter, e.g. params.seed")
        # a copy: the caller's values must not change when later keys are set inside them
        if path[0] == "params":
            param_overrides.append((path[1:], copy.deepcopy(value)))
        else:
            setting_overrides.append((path, copy.deepcopy(value)))
    if isinstance(params, dict):
        apply_assignments(params, param_overrides)
    apply_assignments(settings, setting_overrides)
    config = _validate(MlkitConfig, settings, C.CONFIG_FILE)
    allowed_code.check_sources(root, config.project.package, config.code_settings())
    return config, _validate(Params, params, C.PARAMS_FILE)
