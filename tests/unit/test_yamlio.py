"""The settings loader: plain YAML as usual; duplicate keys, aliases, deep nesting, size and encoding refused."""

from __future__ import annotations

import time

import pytest
import yaml

from mlkit import yamlio
from mlkit.config import parse_assignment, read_yaml
from mlkit.errors import ConfigError, ExitCode

# nine levels of nine aliases: about 700 bytes that expand to 9**9 leaves when walked
BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


def refused(text: str, name: str = "params.yaml") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        yamlio.loads(text, name)
    assert caught.value.exit_code == ExitCode.USAGE
    return caught.value


def test_plain_settings_load_as_with_safe_load():
    text = "seed: 42\nestimator:\n  max_depth: 4\n  tags: [a, b]\nmerged:\n  <<: {x: 1}\n  y: 2\n"
    assert yamlio.loads(text, "params.yaml") == yaml.safe_load(text)
    assert yamlio.loads("", "params.yaml") is None


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            "seed: 1\nestimator:\n  max_depth: 4\nseed: 2\n",
            "params.yaml: line 4: duplicate key 'seed' (first at line 1)",
            "keep one 'seed' in params.yaml",
        ),
        (
            "estimator: {max_depth: 4, max_depth: 5}\n",
            "params.yaml: line 1: duplicate key 'max_depth' (first at line 1)",
            "keep one 'max_depth' in params.yaml",
        ),
        (
            "a:\n  b: 1\n  c: 2\n  b: 3\n",
            "params.yaml: line 4: duplicate key 'b' (first at line 2)",
            "keep one 'b' in params.yaml",
        ),
        (
            "x: &v 1\ny: *v\n",
            "params.yaml: line 2: YAML aliases (*v) are not allowed",
            "write the value out where it is used",
        ),
        (
            "[" * 60 + "]" * 60,
            "params.yaml: line 1: nested deeper than 50 levels",
            "settings are a few levels deep; flatten the structure",
        ),
    ],
)
def test_refusals_name_the_file_and_line(text, message, hint):
    error = refused(text)
    assert (error.message, error.hint) == (message, hint)


def test_alias_bomb_is_refused_at_once():
    assert len(BOMB.encode()) < 800
    started = time.perf_counter()
    error = refused(BOMB)
    assert error.message == "params.yaml: line 2: YAML aliases (*a) are not allowed"
    assert time.perf_counter() - started < 1


def test_very_deep_nesting_is_refused_not_a_recursion_error():
    assert refused("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200))).message == (
        "params.yaml: line 50: nested deeper than 50 levels"
    )
    assert refused("[" * 100_000 + "]" * 100_000).message == "params.yaml: line 1: nested deeper than 50 levels"


def test_files_over_1_mb_and_not_utf8_are_refused(tmp_path):
    big = tmp_path / "mlkit.yaml"
    big.write_text("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError) as caught:
        read_yaml(big)
    assert caught.value.message == "mlkit.yaml: larger than 1 MB; settings files are small"
    latin = tmp_path / "params.yaml"
    latin.write_bytes("seed: 1\nname: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        read_yaml(latin)
    assert (caught.value.message, caught.value.hint) == (
        "params.yaml: not UTF-8 text (byte 0xe9 at line 2)",
        "save params.yaml as UTF-8",
    )


def test_read_yaml_refuses_duplicate_keys(tmp_path):
    path = tmp_path / "mlkit.yaml"
    path.write_text("model:\n  name: a\nmodel:\n  name: b\n")
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    assert caught.value.message == "mlkit.yaml: line 3: duplicate key 'model' (first at line 1)"


def test_set_values_go_through_the_same_loader():
    assert parse_assignment("params.estimator.max_depth=6") == (["params", "estimator", "max_depth"], 6)
    with pytest.raises(ConfigError) as caught:
        parse_assignment("params.x={a: 1, a: 2}")
    assert caught.value.message == "--set params.x: line 1: duplicate key 'a' (first at line 1)"


def test_a_folder_or_a_pipe_in_place_of_a_settings_file_is_refused(tmp_path):
    import os

    folder = tmp_path / "params.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError) as caught:
        yamlio.read_text(folder)
    assert caught.value.message == "params.yaml: is a folder, not a file"
    folder.rmdir()
    os.mkfifo(folder)  # opening it would wait for a writer forever
    with pytest.raises(ConfigError) as caught:
        yamlio.read_text(folder)
    assert caught.value.message == "params.yaml: not a regular file (a pipe, socket or device)"
    assert caught.value.exit_code == 2
