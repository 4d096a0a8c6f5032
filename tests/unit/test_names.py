import json
import keyword
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlkit import names
from mlkit.errors import ExitCode, UsageError
from mlkit.scaffold import package_name, validate_name


@pytest.mark.parametrize(
    ("name", "package"),
    [("churn", "churn"), ("churn-model", "churn_model"), ("Fraud_2", "fraud_2"), ("a", "a")],
)
def test_valid_names_become_packages(name, package):
    assert validate_name(name) == package


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "project name is empty"),
        ("   ", "project name is empty"),
        ("a/b", "project name 'a/b' must not contain path separators or '..'"),
        ("a\\b", "project name 'a\\\\b' must not contain path separators or '..'"),
        ("..", "project name '..' must not contain path separators or '..'"),
        ("x..y", "project name 'x..y' must not contain path separators or '..'"),
        ("1churn", "project name '1churn' must start with a letter and contain only letters, digits, '-' and '_'"),
        (
            "churn model",
            "project name 'churn model' must start with a letter and contain only letters, digits, '-' and '_'",
        ),
        ("class", "project name 'class' cannot become a Python package ('class' is a keyword)"),
        ("json", "project name 'json' would make a package 'json' that shadows Python's standard library"),
        ("a" * 300, "project name is 300 characters long; at most 100 are allowed"),
    ],
)
def test_invalid_names_are_refused_with_the_rule(name, message):
    with pytest.raises(UsageError) as info:
        validate_name(name)
    assert info.value.message == message
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.hint


_name_chars = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=20)


@given(first=st.sampled_from(string.ascii_letters), rest=_name_chars)
def test_any_accepted_name_is_an_identifier_and_not_a_keyword(first, rest):
    name = first + rest
    try:
        package = validate_name(name)
    except UsageError:
        return
    assert package == package_name(name)
    assert package.isidentifier()
    assert not keyword.iskeyword(package)


@given(st.text(max_size=30))
def test_names_with_separators_are_always_refused(text):
    for bad in (f"{text}/x", f"x\\{text}", f"{text}..x"):
        with pytest.raises(UsageError):
            validate_name(bad)


@pytest.mark.parametrize(
    ("package", "message", "hint"),
    [
        (
            "class",
            "error: --set package_name=class cannot become a Python package ('class' is a keyword)",
            "hint: choose another name",
        ),
        (
            "churn-core",
            "error: --set package_name=churn-core cannot become a Python package ('churn-core' is not an identifier)",
            "hint: choose another name",
        ),
        (
            "json",
            "error: --set package_name=json would make a package 'json' that shadows Python's standard library",
            "hint: choose another name, e.g. `mlkit init churn --set package_name=my_json`",
        ),
    ],
)
def test_a_package_name_answer_is_checked_like_a_name(cli, tmp_path, package, message, hint):
    result = cli("init", "churn", "--set", f"package_name={package}", cwd=tmp_path)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines() == [message, hint]
    assert list(tmp_path.iterdir()) == []


def test_a_package_name_answer_is_the_package_init_reports(cli, tmp_path):
    result = cli("init", "churn", "--set", "package_name=churn_core", "--json", "--no-git", "--no-dvc", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["package"] == "churn_core"
    assert (tmp_path / "churn" / "src" / "churn_core" / "features.py").is_file()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "model_name",
            "churn\nentrypoint: x",
            "--set model_name: control characters (newlines, tabs, ...) are not allowed in answers",
        ),
        ("target", "a\u2028b", "--set target: control characters (newlines, tabs, ...) are not allowed in answers"),
        ("target", "label\u202e", "--set target: control characters (newlines, tabs, ...) are not allowed in answers"),
        (
            "model_name",
            "{{ 7 * 7 }}",
            "--set model_name: must start with a letter or digit and contain only letters, digits, '.', '-' and '_'",
        ),
        (
            "target",
            "{% if 1 %}x{% endif %}",
            "--set target: '{{', '{%' and '{#' are not allowed: answers are data, not templates",
        ),
        ("model_name", "m" * 101, "--set model_name: is 101 characters long; at most 100 are allowed"),
    ],
)
def test_hostile_answers_are_refused(key, value, message):
    from mlkit.scaffold import check_answer

    with pytest.raises(UsageError) as info:
        check_answer(key, value)
    assert info.value.message == message
    assert info.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("key", "value"), [("target", 'label: "yes" # x'), ("model_name", "churn.v2"), ("target", "ünïcode 😀")]
)
def test_plain_answers_pass(key, value):
    from mlkit.scaffold import check_answer

    check_answer(key, value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("churn", None),
        ("churn.v2_a-b", None),
        ("team/churn", "'team/churn' " + names.MODEL_NAME_RULE),
        ("churn:v2", "'churn:v2' " + names.MODEL_NAME_RULE),
        ("churn@v2", "'churn@v2' " + names.MODEL_NAME_RULE),
        ("churn\n", "'churn\\n' " + names.MODEL_NAME_RULE),
        ("-churn", "'-churn' " + names.MODEL_NAME_RULE),
        ("c" * 101, "is 101 characters long; at most 100 are allowed"),
    ],
)
def test_model_names_the_registry_and_name_at_alias_can_take(name, problem):
    assert names.model_name_problem(name) == problem
