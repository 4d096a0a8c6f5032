"""Which version a stage points at, and that version loaded as the self-contained model."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkit import tags
from mlkit.engines import mlflow
from mlkit.engines import mlflow_direct as direct
from mlkit.errors import OperationError, UsageError, first_line
from mlkit.registry import ModelRef

if TYPE_CHECKING:
    from mlkit.project import Project
    from mlkit.serving.mlkit_model import RawInputModel


@dataclass(frozen=True)
class LoadedModel:
    """One registered version, ready to predict."""

    name: str
    version: str
    stage: str | None
    run_id: str
    commit: str
    model: RawInputModel
    load_seconds: float

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "version": self.version,
            "stage": self.stage,
            "run_id": self.run_id,
            "commit": self.commit,
            "load_seconds": round(self.load_seconds, 3),
        }


class ModelSource:
    """``NAME@STAGE`` (or ``NAME/VERSION``, which never moves) in one project's registry."""

    def __init__(self, project: Project, ref: str) -> None:
        parsed = ModelRef.parse(ref)
        if parsed.stage is None and parsed.version is None:
            parsed = ModelRef(parsed.name, stage=project.config.stages[-1])
        if parsed.stage is not None and parsed.stage not in project.config.stages:
            raise UsageError(
                f"{ref!r}: stage {parsed.stage!r} is not one of {', '.join(project.config.stages)}",
                hint="use NAME@STAGE with a stage from `stages` in mlkit.yaml, or NAME/VERSION",
            )
        self.project = project
        self.ref = parsed
        self._client: Any = None
        # the embedded SQLite store is read without MLflow when its schema is a known one (see direct)
        self._registry = direct.sqlite_registry(project.tracking_uri, project.state_dir / mlflow.READY_MARKER)

    @property
    def label(self) -> str:
        return f"{self.ref.name}@{self.ref.stage}" if self.ref.stage else f"{self.ref.name}/{self.ref.version}"

    def client(self) -> Any:
        if self._client is None:
            self._client = mlflow.client(self.project)
        return self._client

    def current_version(self) -> str:
        """The version the stage points at now (for NAME/VERSION: that version)."""
        if self.ref.version is not None:
            return self.ref.version
        if self._registry is not None and self.ref.stage is not None:
            found = self._registry.alias_version(self.ref.name, self.ref.stage)
            if found is not None:
                return found
        from mlflow.exceptions import MlflowException

        try:
            version = self.client().get_model_version_by_alias(self.ref.name, self.ref.stage)
        except MlflowException as exc:
            raise OperationError(
                f"{self.label}: no version holds this stage ({first_line(exc)})",
                hint=f"promote one first: `mlkit promote {self.ref.name} VERSION --to {self.ref.stage}`",
            ) from None
        return str(version.version)

    def load(self, version: str) -> LoadedModel:
        """Load ``version``: an mlkit model in a local folder directly, any other through MLflow's loader."""
        started = time.perf_counter()
        record = self._registry.version(self.ref.name, version) if self._registry is not None else None
        folder = direct.local_folder(record.storage_location) if record is not None else None
        if record is not None and folder is not None:
            try:
                impl = direct.load_mlkit_model(folder)
            except Exception as exc:
                raise OperationError(
                    f"{self.ref.name} version {version}: cannot load the model: {first_line(exc)}",
                    hint="run again with --debug for the traceback",
                ) from exc
            if impl is not None:
                return self._loaded(version, record.run_id, record.commit, impl, started)
        return self._load_with_mlflow(version, started)

    def folder(self, version: str, scratch: Path) -> Path:
        """A local folder holding ``version``'s model directory: where it already is for a local store,
        else downloaded through MLflow into ``scratch``."""
        record = self._registry.version(self.ref.name, version) if self._registry is not None else None
        folder = direct.local_folder(record.storage_location) if record is not None else None
        if folder is not None:
            return folder
        from mlflow import artifacts as mlflow_artifacts

        try:
            where = self.client().get_model_version_download_uri(self.ref.name, version)
            with mlflow.fluent_store(self.project.tracking_uri):
                return Path(mlflow_artifacts.download_artifacts(artifact_uri=where, dst_path=str(scratch)))
        except Exception as exc:
            raise OperationError(
                f"{self.ref.name} version {version}: cannot download the model: {first_line(exc)}",
                hint="run again with --debug for the traceback",
            ) from exc

    def _load_with_mlflow(self, version: str, started: float) -> LoadedModel:
        """Load ``version`` through MLflow's pyfunc loader, exactly as any MLflow user would."""
        from mlflow import pyfunc as mlflow_pyfunc

        info = self.client().get_model_version(self.ref.name, version)
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        try:
            # suppress_warnings skips MLflow's check of the installed packages against the model's pinned
            # requirements: it maps every installed distribution to its modules (seconds of CPU) only to warn
            # the version's own artifact location: the registry was asked once already, no second lookup
            where = self.client().get_model_version_download_uri(self.ref.name, version)
            with mlflow.fluent_store(self.project.tracking_uri):  # artifacts proxied by a server need its URI
                pyfunc = mlflow_pyfunc.load_model(where, suppress_warnings=True)
        except Exception as exc:
            raise OperationError(
                f"{self.ref.name} version {version}: cannot load the model: {first_line(exc)}",
                hint="run again with --debug for the traceback",
            ) from exc
        # the class comes from the model's own copy of mlkit_model (its code/ folder), so it is checked by
        # what it can do, not by identity with mlkit's copy
        impl = getattr(pyfunc, "_model_impl", None)
        return self._loaded(
            version, str(info.run_id or ""), str((info.tags or {}).get(tags.GIT_COMMIT, "")), impl, started
        )

    def _loaded(self, version: str, run_id: str, commit: str, impl: Any, started: float) -> LoadedModel:
        if not all(hasattr(impl, name) for name in ("check_columns", "frame_from_columns", "predict_frame")):
            raise OperationError(
                f"{self.ref.name} version {version} was logged before models took raw rows",
                hint="train again (`mlkit train`) and promote the new version",
            )
        return LoadedModel(
            name=self.ref.name,
            version=version,
            stage=self.ref.stage,
            run_id=run_id,
            commit=commit,
            model=impl,  # duck-typed above
            load_seconds=time.perf_counter() - started,
        )
