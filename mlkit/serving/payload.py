"""Request bodies in MLflow's scoring formats, turned into plain column lists; responses as JSON.

Accepted on ``/invocations`` (as ``mlflow models serve`` accepts them):

* ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``
* ``{"dataframe_records": [{"col": value, ...}, ...]}``
* ``{"inputs": {"col": [values...]}}`` or ``{"inputs": [{"col": value}, ...]}``
* ``text/csv`` with a header row.

An optional ``"params": {"probabilities": true}`` asks for class probabilities instead of labels.
Nothing here imports pandas for JSON: requests are decoded and checked one by one, and the batcher
builds one DataFrame per batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("dataframe_split", "dataframe_records", "inputs")


class PayloadError(Exception):
    """A request the server answers with a 4xx status and a JSON error."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **{k: v for k, v in self.extra.items() if v is not None}}


@dataclass
class Rows:
    """One request's rows as column lists."""

    columns: dict[str, list[Any]]
    count: int
    params: dict[str, Any] = field(default_factory=dict)


def parse(body: bytes, content_type: str) -> Rows:
    """Decode a request body; raises :class:`PayloadError` (400 for a malformed one, 415 for a media type)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("text/csv", "application/csv"):
        return _parse_csv(body)
    # curl -d sends application/x-www-form-urlencoded unless told otherwise: its body is the JSON typed
    if media not in ("", "application/json", "application/x-www-form-urlencoded") and not media.endswith("+json"):
        raise PayloadError(415, f"unsupported content type {media!r}; send application/json or text/csv")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(400, f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PayloadError(400, "the body must be a JSON object with one of: " + ", ".join(FORMATS))
    present = [key for key in FORMATS if key in document]
    if len(present) != 1:
        raise PayloadError(400, "the body must hold exactly one of: " + ", ".join(FORMATS))
    params = document.get("params") or {}
    if not isinstance(params, dict):
        raise PayloadError(400, "params must be a JSON object")
    kind = present[0]
    value = document[kind]
    if kind == "dataframe_split":
        columns, count = _split(value)
    elif kind == "dataframe_records" or isinstance(value, list):
        columns, count = _records(value, kind)
    elif isinstance(value, dict):
        columns, count = _column_lists(value)
    else:
        raise PayloadError(400, "inputs must be a list of row objects or an object of column lists")
    if count == 0:
        raise PayloadError(400, "the request has no rows")
    return Rows(columns, count, params)


def _split(value: Any) -> tuple[dict[str, list[Any]], int]:
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("columns"), list)
        or not isinstance(value.get("data"), list)
    ):
        raise PayloadError(400, "dataframe_split must be an object with a columns list and a data list")
    names = value["columns"]
    if len(set(map(str, names))) != len(names):
        raise PayloadError(400, "dataframe_split: a column name is repeated")
    width = len(names)
    rows = value["data"]
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise PayloadError(400, f"dataframe_split: row {number} does not have {width} values")
    columns = {str(name): [row[i] for row in rows] for i, name in enumerate(names)}
    return columns, len(rows)


def _records(value: Any, kind: str) -> tuple[dict[str, list[Any]], int]:
    if not isinstance(value, list):
        raise PayloadError(400, f"{kind} must be a list of row objects")
    names: dict[str, None] = {}
    for number, row in enumerate(value):
        if not isinstance(row, dict):
            raise PayloadError(400, f"{kind}: row {number} is not an object")
        for name in row:
            names.setdefault(name, None)
    # a key left out of a record is a missing value, as pandas reads records
    columns = {name: [row.get(name) for row in value] for name in names}
    return columns, len(value)


def _column_lists(value: Mapping[str, Any]) -> tuple[dict[str, list[Any]], int]:
    lengths = {len(v) if isinstance(v, list) else 1 for v in value.values()}
    if len(lengths) > 1:
        raise PayloadError(400, "inputs: the columns have different lengths")
    columns = {str(k): (v if isinstance(v, list) else [v]) for k, v in value.items()}
    return columns, lengths.pop() if lengths else 0


def _parse_csv(body: bytes) -> Rows:
    import io

    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PayloadError(400, f"malformed CSV: {reason}") from None
    columns: dict[str, list[Any]] = {}
    for name in frame.columns:
        values = frame[name].tolist()
        columns[str(name)] = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    return Rows(columns, len(frame))


def predictions_json(predictions: Any) -> bytes:
    """``{"predictions": [...]}`` as MLflow's server writes it (probabilities: one object per row)."""
    if hasattr(predictions, "to_dict"):
        values: Any = predictions.to_dict(orient="records")
    else:
        values = predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)
    return json.dumps({"predictions": values}, allow_nan=False, default=_plain).encode()


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)
