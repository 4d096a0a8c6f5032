"""Redaction of credentials in URIs: every URI mlkit shows or records goes through it."""

from __future__ import annotations

import pytest

from mlkit.lineage import command_line
from mlkit.uris import redact, redact_text


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        # nothing to hide: unchanged, byte for byte
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:////home/me/churn/.mlkit/mlflow.db", "sqlite:////home/me/churn/.mlkit/mlflow.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("/mnt/dvc", "/mnt/dvc"),
        ("s3://bucket/path?region=eu-west-1", "s3://bucket/path?region=eu-west-1"),
        ("ssh://git@example.com/repo.git", "ssh://git@example.com/repo.git"),
        ("postgresql://mlflow@db:5432/mlflow", "postgresql://mlflow@db:5432/mlflow"),
        ("databricks", "databricks"),
        ("", ""),
        # passwords in the user info
        ("http://alice:pw@host:5000/x", "http://alice:***@host:5000/x"),
        ("postgresql://mlflow:s3cr%40t@db.internal:5432/mlflow", "postgresql://mlflow:***@db.internal:5432/mlflow"),
        ("s3://AKIAKEY:SECRET@bucket/path", "s3://AKIAKEY:***@bucket/path"),
        ("https://user:p@ss@host/x", "https://user:***@host/x"),
        ("http://alice:@host", "http://alice:***@host"),
        # a token used as the user name
        ("https://ghp_abcdef123456@github.com/org/repo", "https://***@github.com/org/repo"),
        ("http://TOKEN@host:5000", "http://***@host:5000"),
        # secrets in the query string or fragment
        ("https://host/x?password=hunter2", "https://host/x?password=***"),
        ("https://host/x?user=bob&passwd=hunter2&n=1", "https://host/x?user=bob&passwd=***&n=1"),
        ("https://host/x?token=abc", "https://host/x?token=***"),
        ("https://host/x?access_token=abc&id=1", "https://host/x?access_token=***&id=1"),
        ("s3://bucket/x?access_key=AK&secret_key=SK", "s3://bucket/x?access_key=***&secret_key=***"),
        (
            "https://acct.blob.core.windows.net/c?sv=2020&sig=abc%2Bdef",
            "https://acct.blob.core.windows.net/c?sv=2020&sig=***",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AK%2F2024&X-Amz-Signature=ff",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        ("https://host/x?apiKey=abc", "https://host/x?apiKey=***"),
        ("https://host/x?Secret=abc", "https://host/x?Secret=***"),
        ("https://host/cb#access_token=abc&state=1", "https://host/cb#access_token=***&state=1"),
        ("http://u:pw@host/x?token=t", "http://u:***@host/x?token=***"),
        # unparsable: redacted anyway, never an exception
        ("http://alice:pw@[::1/x", "http://alice:***@[::1/x"),
        ("http://alice:pw@host:99999/x", "http://alice:***@host:99999/x"),
        ("http://host:port/x?token=abc", "http://host:port/x?token=***"),
    ],
)
def test_redact(uri, shown):
    assert redact(uri) == shown


def test_redact_text_masks_every_uri_in_a_message():
    text = "cannot reach http://alice:pw@host:5000 (or s3://K:S@b/p?token=t): timeout"
    assert redact_text(text) == "cannot reach http://alice:***@host:5000 (or s3://K:***@b/p?token=***): timeout"
    assert redact_text("nothing here") == "nothing here"


def test_the_recorded_command_line_holds_no_password():
    argv = [
        "/venv/bin/mlkit",
        "train",
        "--set",
        "tracking.uri=http://alice:pw@host:5000?token=t",
        "--set",
        "params.seed=7",
    ]
    assert (
        command_line(argv) == "mlkit train --set 'tracking.uri=http://alice:***@host:5000?token=***' "
        "--set params.seed=7"
    )


def test_errors_from_dvc_name_remotes_without_credentials():
    from dvc.exceptions import DvcException

    from mlkit.engines.dvc.repo import translate

    for exc in (
        DvcException("unable to reach 's3://AK:SECRET@bucket/p?token=TOK'"),
        ValueError("bad URL https://TOKEN@host/x"),
    ):
        message = translate(exc, "pushing to the DVC remote 'team'").message
        assert "SECRET" not in message and "TOK" not in message and "***" in message, message
