"""Times as mlkit shows and records them: UTC, to the second, ISO 8601 with a ``Z``."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_iso(millis: float | None) -> str:
    """Milliseconds since the epoch (MLflow's timestamps) as ``2026-11-27T14:15:00Z``; '' for none."""
    if not millis:
        return ""
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
