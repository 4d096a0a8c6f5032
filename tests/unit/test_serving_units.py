"""Request decoding, the plain-list column checks and the batching policy, without a server or a model."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from mlkit.serving.batching import MicroBatcher
from mlkit.serving.metrics import Histogram
from mlkit.serving.mlkit_model import RawInputModel
from mlkit.serving.payload import PayloadError, Rows, parse
from mlkit.serving.server import is_loopback

CONFIG = {
    "format": 1,
    "task": "classification",
    "target": "plan",
    "drop": [],
    "hook": None,
    "classes": ["a", "b"],
    "columns": [
        {"name": "usage", "type": "double", "required": True},
        {"name": "tenure", "type": "long", "required": True},
        {"name": "region", "type": "string", "required": True},
        {"name": "member", "type": "boolean", "required": False},
    ],
}


def _json(document: object) -> bytes:
    return json.dumps(document).encode()


def test_the_three_json_formats_and_csv_give_the_same_columns():
    expected = {"usage": [1.5, None], "tenure": [3, 4]}
    split = parse(_json({"dataframe_split": {"columns": ["usage", "tenure"], "data": [[1.5, 3], [None, 4]]}}), "")
    records = parse(_json({"dataframe_records": [{"usage": 1.5, "tenure": 3}, {"tenure": 4}]}), "application/json")
    inputs = parse(_json({"inputs": {"usage": [1.5, None], "tenure": [3, 4]}}), "application/json; charset=utf-8")
    rows = parse(_json({"inputs": [{"usage": 1.5, "tenure": 3}, {"usage": None, "tenure": 4}]}), "")
    csv = parse(b"usage,tenure\n1.5,3\n,4\n", "text/csv")
    for decoded in (split, records, inputs, rows, csv):
        assert (decoded.columns, decoded.count) == (expected, 2)
    assert parse(_json({"inputs": {"usage": [1.0]}, "params": {"probabilities": True}}), "").params == {
        "probabilities": True
    }


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (
            b"{",
            "application/json",
            400,
            "malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (b"[]", "", 400, "the body must be a JSON object with one of: dataframe_split, dataframe_records, inputs"),
        (
            _json({"inputs": {}, "dataframe_records": []}),
            "",
            400,
            "the body must hold exactly one of: dataframe_split, dataframe_records, inputs",
        ),
        (
            _json({"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}),
            "",
            400,
            "dataframe_split: a column name is repeated",
        ),
        (_json({"dataframe_records": [1]}), "", 400, "dataframe_records: row 0 is not an object"),
        (_json({"inputs": {"a": [1], "b": [1, 2]}}), "", 400, "inputs: the columns have different lengths"),
        (_json({"inputs": {"a": [1]}, "params": [1]}), "", 400, "params must be a JSON object"),
        (b"a", "application/xml", 415, "unsupported content type 'application/xml'; send application/json or text/csv"),
    ],
)
def test_malformed_bodies_are_payload_errors(body, content_type, status, message):
    with pytest.raises(PayloadError) as caught:
        parse(body, content_type)
    assert (caught.value.status, caught.value.body()) == (status, {"error": message})


def test_column_checks_on_plain_lists():
    model = RawInputModel(pipeline=None, config=CONFIG, hook=None)
    model.check_columns({"usage": [1, 2.5, None], "tenure": [3, 4.0, None], "region": ["x", None, "y"]})
    cases = [
        ({"usage": [1.0], "tenure": [1]}, "missing column 'region': expected string (a string or null)"),
        (
            {"usage": [1.0], "tenure": [1], "region": ["x"], "zone": [1]},
            "unexpected column 'zone'; the model takes: usage, tenure, region, member",
        ),
        (
            {"usage": [True], "tenure": [1], "region": ["x"]},
            "column 'usage': expected double (a number or null), got True",
        ),
        (
            {"usage": [1.0], "tenure": [1.5], "region": ["x"]},
            "column 'tenure': expected long (an integer or null), got 1.5",
        ),
        ({"usage": [1.0], "tenure": [1], "region": [2]}, "column 'region': expected string (a string or null), got 2"),
        (
            {"usage": [1.0], "tenure": [1], "region": ["x"], "member": ["yes"]},
            "column 'member': expected boolean (true, false or null), got 'yes'",
        ),
    ]
    for columns, message in cases:
        with pytest.raises(ValueError) as caught:
            model.check_columns(columns)
        assert str(caught.value) == message
    frame = model.frame_from_columns({"usage": [1, None], "tenure": [3, None], "region": ["x", None]})
    assert [str(t) for t in frame.dtypes] == ["float64", "float64", "object"]
    assert str(model.frame_from_columns({"usage": [1.0], "tenure": [3], "region": ["x"]})["tenure"].dtype) == "int64"


def test_concurrent_requests_share_a_batch_and_each_gets_its_rows():
    calls: list[int] = []

    class Model:
        def __init__(self) -> None:
            self.types = {"x": "long"}
            self.classes = None

        def frame_from_columns(self, columns):
            return columns["x"]

        def predict_frame(self, rows, probabilities=False):
            import numpy as np

            calls.append(len(rows))
            return np.asarray(rows) * 10

    loaded = SimpleNamespace(model=Model(), version="7")

    async def scenario() -> list:
        batcher = MicroBatcher(lambda: loaded, max_rows=100, max_wait_ms=0).start()
        first = asyncio.ensure_future(batcher.submit(Rows({"x": [1]}, 1), False))
        await asyncio.sleep(0)  # the batcher takes the first request alone
        rest = [asyncio.ensure_future(batcher.submit(Rows({"x": [i, i]}, 2), False)) for i in range(2, 6)]
        answers = await asyncio.gather(first, *rest)
        await batcher.stop()
        return answers

    answers = asyncio.run(scenario())
    assert [list(a) for a, _ in answers] == [[10], [20, 20], [30, 30], [40, 40], [50, 50]]
    assert all(model.version == "7" for _, model in answers)
    assert calls == [1, 8]  # the four that queued behind the first went in one call


def test_histogram_buckets_are_cumulative():
    histogram = Histogram((1, 5))
    for value in (0.5, 3, 3, 9):
        histogram.observe(value)
    assert histogram.lines("h") == [
        'h_bucket{le="1"} 1',
        'h_bucket{le="5"} 3',
        'h_bucket{le="+Inf"} 4',
        "h_sum 15.500000",
        "h_count 4",
    ]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback
