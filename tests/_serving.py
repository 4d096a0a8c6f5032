"""A served project for the serving tests: Parquet data with gaps, integer columns, a string category, a
string target and a feature hook of its own; trained and promoted with the installed `mlkit`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MLKIT = str(Path(sys.executable).with_name("mlkit"))
LABELS = {"basic", "premium", "standard"}
HOOK = '''"""Serving-test hook: a ratio of two raw columns, so a model without its hook cannot score."""


def build(frame):
    frame = frame.copy()
    frame["usage_per_year"] = frame["usage"] / (frame["tenure"] + 1)
    return frame
'''


def mlkit(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([MLKIT, *args], cwd=cwd, capture_output=True, text=True, env=os.environ.copy())
    if check and result.returncode != 0:
        raise AssertionError(f"mlkit {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def plans_frame(rows: int = 600, seed: int = 7):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    usage = rng.gamma(2.0, 10.0, rows)
    frame = pd.DataFrame(
        {
            "usage": usage,
            "tenure": rng.integers(1, 60, rows),  # int64, no gaps
            "year": rng.integers(2015, 2025, rows),  # int64
            "region": rng.choice(np.array(["north", "south", "east", None], dtype=object), rows),
            "plan": np.where(usage > 30, "premium", np.where(usage > 12, "standard", "basic")),
        }
    )
    frame.loc[rng.random(rows) < 0.03, "usage"] = np.nan
    return frame


def make_plans_project(base: Path) -> Path:
    """`mlkit init plans`, the data added with DVC and committed, the hook committed; not trained."""
    base.mkdir(parents=True, exist_ok=True)
    mlkit("init", "plans", "--data-remote", str(base / "remote"), cwd=base)
    root = base / "plans"
    plans_frame().to_parquet(root / "data" / "plans.parquet", index=False)
    (root / "src" / "plans" / "usage.py").write_text(HOOK)
    mlkit("data", "add", "data/plans.parquet", cwd=root)
    config = (root / "mlkit.yaml").read_text()
    config = config.replace("train: data/breast_cancer.csv", "train: data/plans.parquet")
    config = config.replace("target: diagnosis", "target: plan")
    config = config.replace("hook: plans.features:build_features", "hook: plans.usage:build")
    (root / "mlkit.yaml").write_text(config)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "plans data and hook"], cwd=root, check=True)
    return root


def train(root: Path, trees: int = 30) -> str:
    """Train (a version per call); its version number."""
    import json

    result = mlkit("train", "--json", "--set", f"params.estimator.n_estimators={trees}", cwd=root)
    return str(json.loads(result.stdout)["model_version"])


def tracking_uri(root: Path) -> str:
    return f"sqlite:///{root / '.mlkit' / 'mlflow.db'}"
