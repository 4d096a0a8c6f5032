"""Logging the self-contained model: the fitted Pipeline behind the raw rows of the data file.

One MLflow model directory with two flavors over the same cloudpickled Pipeline (``model.pkl``):

* ``python_function``, loaded by :mod:`mlkit.serving.mlkit_model` (shipped in ``code/`` with the
  project's package that holds ``data.hook``): raw rows in, labels out. This is what
  ``mlflow.pyfunc.load_model``, ``mlflow models serve`` and ``mlkit serve`` run.
* ``sklearn``: the bare Pipeline (features after the hook in, class codes out), for
  ``mlflow.sklearn.load_model`` and the evaluation code that works on encoded features.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkit import tags
from mlkit.serving import mlkit_model as M

if TYPE_CHECKING:
    from mlkit.project import Project

LOADER_MODULE = "mlkit_model"  # the module name of mlkit_model.py inside the model's code/ folder
EXAMPLE_ROWS = 5


def raw_schema(raw: Any, *, target: str, drop: Sequence[str]) -> list[dict[str, Any]]:
    """The input columns of the data file (target left out) with their types; dropped columns optional."""
    columns = []
    for name, dtype in raw.dtypes.items():
        if name == target:
            continue
        columns.append({"name": str(name), "type": column_type(dtype), "required": name not in drop})
    return columns


def column_type(dtype: Any) -> str:
    """The MLflow schema type of a pandas dtype: integers stay ``long`` (a gap is accepted at request time)."""
    kind = getattr(dtype, "kind", "O")
    if kind in "iu":
        return M.LONG
    if kind == "f":
        return M.DOUBLE
    if kind == "b":
        return M.BOOLEAN
    return M.STRING


def serving_config(project: Project, raw: Any, classes: Sequence[Any] | None) -> dict[str, Any]:
    """What :mod:`mlkit_model` needs besides the Pipeline (written next to it as ``mlkit_model.json``)."""
    data = project.config.data
    return {
        "format": M.FORMAT,
        "task": project.config.model.task,
        "columns": raw_schema(raw, target=data.target, drop=data.drop),
        "target": data.target,
        "drop": list(data.drop),
        "hook": data.hook or None,
        "classes": [_plain(c) for c in classes] if classes is not None else None,
    }


def log_model(
    pipeline: Any,
    raw: Any,
    *,
    project: Project,
    classes: Sequence[Any] | None,
    pip_requirements: Sequence[str],
) -> Any:
    """Log the model of the active run from its fitted Pipeline and the raw training rows; its ModelInfo.

    ``raw`` is the training data as read from the data file, before the hook (the target may be in it).
    """
    from mlflow.models import Model

    config = serving_config(project, raw, classes)
    example = raw.head(EXAMPLE_ROWS)
    if hasattr(example, "compute"):  # a dask frame's head is already pandas; keep the type checker honest
        example = example.compute()
    example = example.drop(columns=[c for c in (config["target"],) if c in example.columns])
    metadata = {tags.LABEL_MAPPING: {str(i): c for i, c in enumerate(config["classes"])}} if classes else None
    with tempfile.TemporaryDirectory(prefix="mlkit-model-code-") as scratch:
        code_paths = [str(Path(M.__file__))]
        if config["hook"]:
            code_paths.append(_copy_package(project.root, config["hook"], Path(scratch)))
        return Model.log(
            artifact_path=None,
            name=tags.MODEL_ARTIFACT,
            flavor=_Flavor,
            flavor_name="mlkit",
            metadata=metadata,
            sk_model=pipeline,
            config=config,
            signature=signature(config),
            input_example=example,
            pip_requirements=list(pip_requirements),
            code_paths=code_paths,
            # the example is checked by the tests of this format, not by reloading every model logged
            validate_serving_input=False,
        )


def signature(config: dict[str, Any]) -> Any:
    """Raw columns in (types of the data file), labels out, and a ``probabilities`` flag."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec(c["type"], c["name"], required=c["required"]) for c in config["columns"]])
    classes = config["classes"]
    if classes is None:
        output = M.DOUBLE
    elif all(isinstance(c, bool) for c in classes):
        output = M.BOOLEAN
    elif all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        output = M.LONG
    elif all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        output = M.DOUBLE
    else:
        output = M.STRING
    outputs = Schema([ColSpec(output)])
    if classes is None:
        return ModelSignature(inputs=inputs, outputs=outputs)
    flag = ParamSchema([ParamSpec(M.PROBABILITIES, "boolean", False)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=flag)


class _Flavor:
    """What :meth:`mlflow.models.Model.log` calls to write the model directory."""

    @staticmethod
    def save_model(
        path: str,
        mlflow_model: Any,
        *,
        sk_model: Any,
        config: dict[str, Any],
        signature: Any,
        input_example: Any,
        pip_requirements: list[str],
        code_paths: list[str],
        **_ignored: Any,
    ) -> None:
        import mlflow.sklearn

        # cloudpickle, not MLflow 3's default skops: skops refuses tree models unless every type is trusted
        mlflow.sklearn.save_model(
            sk_model,
            path,
            mlflow_model=mlflow_model,
            serialization_format="cloudpickle",
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements,
            code_paths=code_paths,
        )
        (Path(path) / M.CONFIG_FILE).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
        pyfunc = mlflow_model.flavors["python_function"]
        pyfunc["loader_module"] = LOADER_MODULE
        pyfunc["data"] = M.CONFIG_FILE
        pyfunc["predict_fn"] = "predict"
        pyfunc.pop("model_path", None)
        mlflow_model.save(str(Path(path) / "MLmodel"))


def _copy_package(root: Path, hook: str, scratch: Path) -> str:
    """The project's top-level package of ``hook`` copied without byte code, for the model's code/."""
    top = hook.partition(":")[0].split(".")[0]
    source = root / "src" / top
    target = scratch / top
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:  # a single-module hook: src/<top>.py
        target = scratch / f"{top}.py"
        shutil.copy2(root / "src" / f"{top}.py", target)
    return str(target)


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value
