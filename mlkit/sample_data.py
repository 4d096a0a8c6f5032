"""Real sample data sets for new projects, written from the files scikit-learn ships.

The files are read straight from scikit-learn's package folder (found without importing scikit-learn,
which takes seconds), so `mlkit init` stays fast.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
from pathlib import Path

_PARTS = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
)
BREAST_CANCER_COLUMNS = [f"mean_{p}" for p in _PARTS] + [f"{p}_error" for p in _PARTS] + [f"worst_{p}" for p in _PARTS]
DIABETES_COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]

# name -> (file written in the project, target column)
DATASETS = {
    "breast_cancer": ("data/breast_cancer.csv", "diagnosis"),
    "diabetes": ("data/diabetes.csv", "progression"),
}


def _sklearn_data_dir() -> Path:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise RuntimeError("scikit-learn is not installed")
    return Path(spec.origin).parent / "datasets" / "data"


def write_breast_cancer(path: Path) -> int:
    """Wisconsin breast cancer diagnostic data: 569 rows, 30 numeric features, target malignant/benign."""
    source = _sklearn_data_dir() / "breast_cancer.csv"
    with source.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        labels = header[2:]
        rows = [[*row[:-1], labels[int(row[-1])]] for row in reader if row]
    return _write(path, [*BREAST_CANCER_COLUMNS, "diagnosis"], rows)


def write_diabetes(path: Path) -> int:
    """Diabetes progression data (Efron et al.), unscaled: 442 rows, 10 features, numeric target."""
    folder = _sklearn_data_dir()
    with gzip.open(folder / "diabetes_data_raw.csv.gz", "rt") as handle:
        features = [line.split() for line in handle if line.strip()]
    with gzip.open(folder / "diabetes_target.csv.gz", "rt") as handle:
        target = [_number(line.strip()) for line in handle if line.strip()]
    rows = [[*row, value] for row, value in zip(features, target, strict=True)]
    return _write(path, [*DIABETES_COLUMNS, "progression"], rows)


def write_dataset(name: str, root: Path) -> Path:
    relative, _ = DATASETS[name]
    path = root / relative
    {"breast_cancer": write_breast_cancer, "diabetes": write_diabetes}[name](path)
    return path


def _number(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else repr(value)


def _write(path: Path, header: list[str], rows: list[list[str]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)
