"""Jinja filters of mlkit's project template, loaded by cookiecutter through ``_extensions``.

Answers are data: a value goes into YAML through a YAML emitter and into Python source as a string
literal, so quotes, colons or ``#`` in an answer can neither break the file nor add keys or code to it.
"""

from __future__ import annotations

from typing import Any

from jinja2.ext import Extension


def yaml_value(value: Any) -> str:
    """``value`` as one YAML flow scalar: plain when YAML reads it back as the same string, else quoted."""
    import yaml

    def dump(style: str | None) -> str:
        text = yaml.safe_dump(value, allow_unicode=True, default_flow_style=True, width=2**31,
                              default_style=style)
        return text.removesuffix("\n...\n").removesuffix("\n")

    text = dump(None)
    return dump('"') if text.startswith("'") else text  # double quotes, as the rest of the file has


def py_string(value: Any) -> str:
    """``value`` as a double-quoted Python string literal (JSON's string escapes are Python's too)."""
    import json

    return json.dumps(str(value), ensure_ascii=False)


class AnswerFilters(Extension):
    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        environment.filters["yaml_value"] = yaml_value
        environment.filters["py_string"] = py_string
