import pandas as pd

from {{ cookiecutter.package_name }}.features import build_features


def test_build_features_keeps_rows_and_adds_a_column():
    frame = pd.read_csv({{ cookiecutter.data_file | py_string }})
    built = build_features(frame)
    assert len(built) == len(frame)
    assert set(frame.columns) < set(built.columns)
    assert not built.drop(columns=[{{ cookiecutter.target | py_string }}]).isna().all().any()
