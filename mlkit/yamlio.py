"""The one YAML loader for the files a user edits (`mlkit.yaml`, `params.yaml`) and `--set` values.

PyYAML's safe loader builds only plain data, but it still accepts what later breaks mlkit or DVC: a key
given twice (the last one silently wins, and DVC's own parser rejects the file), a 700-byte alias bomb
whose nine levels of nine aliases expand to hundreds of millions of nodes once anything walks the result,
nesting deep enough to exhaust the stack, and files too large to be settings. This loader refuses each of
them with a :class:`ConfigError` (exit code 2) naming the file and the line.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from mlkit.errors import ConfigError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 50


def read_text(path: Path) -> str:
    """The file's text: at most :data:`MAX_BYTES`, UTF-8 (``FileNotFoundError`` passes through)."""
    kind = path.stat().st_mode
    if stat.S_ISDIR(kind):
        raise ConfigError(f"{path.name}: is a folder, not a file", hint=f"replace {path} with the settings file")
    if not stat.S_ISREG(kind):  # a pipe would block the command forever, a device never end
        raise ConfigError(
            f"{path.name}: not a regular file (a pipe, socket or device)",
            hint=f"replace {path} with the settings file",
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except PermissionError:
        raise ConfigError(
            f"{path.name}: cannot be read (permission denied)", hint=f"check the mode of {path}"
        ) from None
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"{path.name}: larger than {MAX_BYTES // 1024 // 1024} MB; settings files are small",
            hint=f"keep data out of {path.name}",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path.name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line})",
            hint=f"save {path.name} as UTF-8",
        ) from None


def loads(text: str, name: str) -> Any:
    """``text`` as plain data, like ``yaml.safe_load``, with the limits above; ``name`` is the file (or
    option) the text comes from, for messages. Syntax errors raise ``yaml.YAMLError`` as usual."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{name}: larger than {MAX_BYTES // 1024 // 1024} MB; settings files are small")
    loader = _LimitedLoader(text)
    loader.source = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _LimitedLoader(yaml.SafeLoader):
    source = ""
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"{self.source}: line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed",
                hint="write the value out where it is used",
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"{self.source}: line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels",
                    hint="settings are a few levels deep; flatten the structure",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if first is not None:
                    raise ConfigError(
                        f"{self.source}: line {line}: duplicate key {key!r} (first at line {first})",
                        hint=f"keep one {key!r} in {self.source}",
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)
