"""Finding the project a command runs in, and the resolved settings that go with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkit import constants as C
from mlkit.errors import ProjectNotFoundError
from mlkit.uris import redact

if TYPE_CHECKING:  # the schema needs pydantic: loaded by load_project, not by find_root's callers
    from mlkit.config import MlkitConfig, Params


def find_root(start: Path | None = None) -> Path:
    """Walk up from ``start`` (default: the working directory) to the folder holding mlkit.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / C.CONFIG_FILE).is_file():
            return folder
    raise ProjectNotFoundError(str(here))


@dataclass(frozen=True)
class Project:
    root: Path
    config: MlkitConfig
    params: Params

    @property
    def state_dir(self) -> Path:
        return self.root / C.STATE_DIR

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: configured, or the embedded SQLite store inside the project."""
        return self.config.tracking.uri or f"sqlite:///{self.state_dir / C.STORE_FILE}"

    @property
    def experiment(self) -> str:
        return self.config.tracking.experiment or self.config.project.name

    @property
    def model_name(self) -> str:
        return self.config.model.name

    def path(self, relative: str) -> Path:
        return self.root / relative

    def resolved(self) -> dict[str, Any]:
        """Every resolved setting, as plain data (what `mlkit config show` prints); no passwords."""
        config = self.config.model_dump(mode="json")
        if config["tracking"].get("uri"):
            config["tracking"]["uri"] = redact(config["tracking"]["uri"])
        return {
            "root": str(self.root),
            "config": config,
            "params": self.params.model_dump(mode="json"),
            "tracking_uri": redact(self.tracking_uri),
            "experiment": self.experiment,
            "metrics": self.config.metrics,
        }


def load_project(
    start: Path | None = None, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Project:
    """The project around ``start`` (default: the working directory) with its settings resolved.

    ``overrides`` map dotted keys to values, e.g. ``{"params.seed": 7, "tracking.experiment": "exp2"}``
    (see :func:`mlkit.config.parse_overrides` for ``--set KEY=VALUE`` strings).
    """
    from mlkit.config import load_config  # pydantic: not for find_root's callers

    root = find_root(start)
    config, params = load_config(root, overrides, environ)
    return Project(root=root, config=config, params=params)
