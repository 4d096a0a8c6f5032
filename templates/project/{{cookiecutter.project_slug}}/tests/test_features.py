import pandas as pd

from {{ cookiecutter.package_name }}.features import build_features
{%- if cookiecutter.sample_data == 'no' %}
{%- set other = 'feature' if cookiecutter.target != 'feature' else 'feature_2' %}

TARGET = {{ cookiecutter.target | py_string }}


def sample() -> pd.DataFrame:
    # a few rows made here: the target and one made-up column. When build_features reads columns of your
    # data, add them here with a few typical values. The tests need neither the DVC-tracked data nor any
    # credential, so CI runs them before anything else.
    return pd.DataFrame({TARGET: {% if cookiecutter.task == 'classification' %}["a", "b", "a"]{% else %}[1.5, 2.0, 0.5]{% endif %}, {{ other | py_string }}: [1.0, None, 3.0]})


def test_build_features_keeps_the_rows_and_the_target():
    frame = sample()
    built = build_features(frame)
    assert isinstance(built, pd.DataFrame)
    assert len(built) == len(frame)
    assert built[TARGET].tolist() == frame[TARGET].tolist()
{%- else %}


def sample() -> pd.DataFrame:
    # a few rows made here, with the columns the hook reads: the tests need neither the DVC-tracked
    # data nor any credential, so CI runs them before anything else
{%- if cookiecutter.task == 'classification' %}
    return pd.DataFrame({"mean_area": [1001.0, 1326.0, 386.1], "mean_perimeter": [122.8, 132.9, 77.58],
                         {{ cookiecutter.target | py_string }}: [0, 0, 1]})
{%- else %}
    return pd.DataFrame({"bmi": [0.0617, -0.0515, 0.0445], "bp": [0.0219, -0.0263, -0.0057],
                         {{ cookiecutter.target | py_string }}: [151.0, 75.0, 141.0]})
{%- endif %}


def test_build_features_keeps_rows_and_adds_a_column():
    frame = sample()
    built = build_features(frame)
    assert len(built) == len(frame)
    assert set(frame.columns) < set(built.columns)
    assert not built.drop(columns=[{{ cookiecutter.target | py_string }}]).isna().all().any()
{%- endif %}
