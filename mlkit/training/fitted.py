"""What a fit returns, whichever backend fitted it (``fitting`` in process, ``distributed`` on Dask)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FittedModel:
    """A fitted scikit-learn Pipeline and what was learned on the way (``*_`` attributes: learned)."""

    pipeline: Any
    history_: dict[str, list[float]] = field(default_factory=dict)
    best_iteration_: int | None = None

    @property
    def estimator(self) -> Any:
        return self.pipeline.steps[-1][1]

    def feature_names(self) -> list[str]:
        if len(self.pipeline.steps) < 2:
            return []
        try:
            return [str(n) for n in self.pipeline[:-1].get_feature_names_out()]
        except Exception:
            return []
