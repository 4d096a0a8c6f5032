"""Small helpers for URIs that may carry credentials.

Every URI mlkit shows (tables, JSON, errors) or records (tags, the recorded command line) goes through
:func:`redact` or :func:`redact_text`. Only what is secret is replaced, so the rest stays recognisable;
a URI with nothing to hide comes back unchanged, byte for byte.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "***"

# A query or fragment parameter is secret when its name, lower case with only letters kept, is one of
# these or contains one of the words (password, access_token, X-Amz-Signature, apiKey, ...).
_SECRET_NAMES = frozenset({"sig", "sas", "pwd", "pass", "auth", "code"})
_SECRET_WORDS = ("password", "passwd", "token", "secret", "key", "signature", "credential", "authorization")
# Web schemes, where a user name without a password is a token (https://TOKEN@host); elsewhere
# (postgresql://mlflow@db, ssh://git@host) it is an account name and stays.
_TOKEN_USER_SCHEMES = frozenset({"http", "https", "git+https", "ws", "wss"})
# a URI in prose: punctuation that ends a sentence or closes a bracket is not part of it
_URI_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]*[^\s'\"<>`.,;:!?)\]}]")
_PARAM = re.compile(r"([^&;=]+)=([^&;]*)")


def redact(uri: str) -> str:
    """Return ``uri`` with passwords, tokens used as user names and secret query parameters replaced by
    ``***``, so it can be shown or logged. Never raises: an unparsable URI is masked by pattern."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return _redact_by_pattern(uri)
    shown = uri
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        if colon:
            userinfo = f"{user}:{MASK}"
        elif parts.scheme.lower() in _TOKEN_USER_SCHEMES:
            userinfo = MASK  # https://TOKEN@host: the user name is the credential
        shown = shown.replace(f"//{parts.netloc}", f"//{userinfo}@{host}", 1)
    if parts.query:
        shown = shown.replace(f"?{parts.query}", f"?{_redact_params(parts.query)}", 1)
    if parts.fragment and "=" in parts.fragment:
        shown = shown.replace(f"#{parts.fragment}", f"#{_redact_params(parts.fragment)}", 1)
    return shown


def redact_text(text: str) -> str:
    """``text`` (an error message, a command line) with every URI in it redacted."""
    return _URI_IN_TEXT.sub(lambda match: redact(match.group(0)), text)


def is_secret_param(name: str) -> bool:
    """Whether a query parameter called ``name`` carries a credential."""
    letters = re.sub(r"[^a-z]", "", unquote(name).lower())
    return letters in _SECRET_NAMES or any(word in letters for word in _SECRET_WORDS)


def _redact_params(query: str) -> str:
    return _PARAM.sub(
        lambda m: f"{m.group(1)}={MASK}" if m.group(2) and is_secret_param(m.group(1)) else m.group(0), query
    )


def _redact_by_pattern(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    authority, tail = re.match(r"([^/?#]*)(.*)", rest, re.DOTALL).group(1, 2)  # type: ignore[union-attr]
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        masked = f"{user}:{MASK}" if colon else (MASK if scheme.lower() in _TOKEN_USER_SCHEMES else userinfo)
        authority = f"{masked}@{host}"
    head, mark, params = tail.partition("?")
    if mark:
        tail = f"{head}?{_redact_params(params)}"
    return f"{scheme}://{authority}{tail}"
