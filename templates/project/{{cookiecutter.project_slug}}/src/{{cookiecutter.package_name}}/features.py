"""Feature engineering hook: mlkit calls ``build_features`` on the data before every training run.

Edit it freely; it receives a pandas DataFrame with every column of the data set (target included)
and returns the DataFrame to train on. Keep it deterministic so runs can be reproduced.
"""

from __future__ import annotations

import pandas as pd


def build_features(frame: pd.DataFrame) -> pd.DataFrame:
{%- if cookiecutter.sample_data == 'no' %}
    # Add your features here, e.g. a ratio of two columns:
    #     frame = frame.copy()
    #     frame["price_per_room"] = frame["price"] / frame["rooms"]
    # and give tests/test_features.py rows with the columns they read.
    return frame
{%- elif cookiecutter.task == 'classification' %}
    frame = frame.copy()
    # A ratio the raw measurements do not carry on their own.
    frame["mean_area_to_perimeter"] = frame["mean_area"] / frame["mean_perimeter"]
    return frame
{%- else %}
    frame = frame.copy()
    # Body mass index and blood pressure interact in disease progression.
    frame["bmi_x_bp"] = frame["bmi"] * frame["bp"]
    return frame
{%- endif %}
