"""A client's credentials for a tracking server behind authentication, read from the environment only.

MLflow's client reads the same variables itself (``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` for HTTP basic authentication, or ``MLFLOW_TRACKING_TOKEN`` for a bearer
token; ``MLFLOW_TRACKING_SERVER_CERT_PATH`` or ``REQUESTS_CA_BUNDLE`` to trust a server certificate). This
module lets mlkit's own HTTP calls (the health probe, `mlkit server user ...`, the permission check before
a stage move) send exactly what MLflow would send, and names the signed-in user for the audit trail.
Nothing here is ever written to a file, a tag or a command line.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

ENV_USERNAME = "MLFLOW_TRACKING_USERNAME"
ENV_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
ENV_TOKEN = "MLFLOW_TRACKING_TOKEN"
ENV_CERT_PATH = "MLFLOW_TRACKING_SERVER_CERT_PATH"
ENV_INSECURE_TLS = "MLFLOW_TRACKING_INSECURE_TLS"
ENV_CA_BUNDLE = "REQUESTS_CA_BUNDLE"


@dataclass(frozen=True, repr=False)
class Credentials:
    """A username and password, or a token; ``repr`` never shows the secret."""

    username: str | None = None
    password: str | None = None
    token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r})"

    @property
    def present(self) -> bool:
        return bool(self.token or (self.username and self.password is not None))

    def header(self) -> str | None:
        """The ``Authorization`` header value, or None without credentials."""
        if self.username and self.password is not None:
            pair = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if self.token:
            return f"Bearer {self.token}"
        return None


def from_environment(environ: Mapping[str, str] | None = None) -> Credentials:
    """What MLflow's client would send: basic authentication first, else the token."""
    env = os.environ if environ is None else environ
    username, password = env.get(ENV_USERNAME) or None, env.get(ENV_PASSWORD)
    if username and password is not None:
        return Credentials(username=username, password=password)
    return Credentials(token=env.get(ENV_TOKEN) or None)


def is_http(uri: str | None) -> bool:
    return bool(uri) and str(uri).lower().startswith(("http://", "https://"))


def signed_in_user(uri: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The user a server at ``uri`` authenticates, when ``uri`` is http(s) and credentials are set.

    A token names no user by itself: the server is asked (``users/current``); None when it cannot say.
    """
    if not is_http(uri):
        return None
    creds = from_environment(environ)
    if creds.username and creds.password is not None:
        return creds.username
    if creds.token:
        return current_user(str(uri), creds, environ)
    return None


def current_user(
    uri: str, creds: Credentials, environ: Mapping[str, str] | None = None, timeout: float = 10.0
) -> str | None:
    """The name the server gives the holder of ``creds``; None when it does not answer."""
    data = _get_json(uri.rstrip("/") + "/api/2.0/mlflow/users/current", creds, environ, timeout)
    user = data.get("user", data) if isinstance(data, dict) else None
    name = user.get("username") if isinstance(user, dict) else None
    return str(name) if name else None


def ssl_context(uri: str, environ: Mapping[str, str] | None = None) -> ssl.SSLContext | None:
    """The TLS context for ``uri`` that trusts what MLflow's client trusts; None for plain http."""
    if not str(uri).lower().startswith("https://"):
        return None
    import ssl  # only for https: `mlkit --help` loads this module

    env = os.environ if environ is None else environ
    if env.get(ENV_INSECURE_TLS, "").lower() == "true":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = env.get(ENV_CERT_PATH) or env.get(ENV_CA_BUNDLE) or None
    return ssl.create_default_context(cafile=cafile)


@dataclass(frozen=True)
class ModelAccess:
    """What the server says the signed-in user may do with one registered model."""

    username: str
    permission: str  # READ | USE | EDIT | MANAGE | NO_PERMISSIONS ... as MLflow names them
    is_admin: bool

    @property
    def can_manage(self) -> bool:
        return self.is_admin or self.permission == "MANAGE"


def model_access(
    uri: str | None, model: str, environ: Mapping[str, str] | None = None, timeout: float = 10.0
) -> ModelAccess | None:
    """The signed-in user's effective permission on registered model ``model``, as the server resolves it.

    None when ``uri`` is not http(s), no credentials are set, or the server runs without authentication
    (its user endpoints are missing). MLflow lets every user ask about themselves.
    """
    from urllib.parse import urlencode

    if not is_http(uri):
        return None
    creds = from_environment(environ)
    if not creds.present:
        return None
    base = str(uri).rstrip("/")
    me = _get_json(base + "/api/2.0/mlflow/users/current", creds, environ, timeout)
    user = me.get("user", me) if isinstance(me, dict) else None
    if not isinstance(user, dict) or not user.get("username"):
        return None
    username = str(user["username"])
    query = urlencode({"username": username, "resource_type": "registered_model", "resource_id": model})
    found = _get_json(f"{base}/api/3.0/mlflow/users/permissions/get?{query}", creds, environ, timeout)
    permission = str(found.get("permission", "UNKNOWN")) if isinstance(found, dict) else "UNKNOWN"
    return ModelAccess(username=username, permission=permission, is_admin=bool(user.get("is_admin")))


def _get_json(url: str, creds: Credentials, environ: Mapping[str, str] | None, timeout: float) -> object:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url)
    header = creds.header()
    if header:
        request.add_header("Authorization", header)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ssl_context(url, environ)) as response:
            return json.loads(response.read().decode() or "{}")
    except (OSError, ValueError):  # HTTPError is an OSError: no auth app, or not allowed to ask
        return None
