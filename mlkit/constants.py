"""Names shared by the core and the command line: files, folders and environment variables.

Kept free of imports so the command line can quote them in help text without slowing down startup.
"""

CONFIG_FILE = "mlkit.yaml"
PARAMS_FILE = "params.yaml"
METRICS_FILE = "metrics.json"
STATE_DIR = ".mlkit"
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
TEMPLATE_RECORD = "template.json"

ENV_DEBUG = "MLKIT_DEBUG"
ENV_TRACKING_URI = "MLKIT_TRACKING_URI"
ENV_MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_EXPERIMENT = "MLKIT_EXPERIMENT"
ENV_DASK_SCHEDULER = "MLKIT_DASK_SCHEDULER"
ENV_DATA_REMOTE = "MLKIT_DATA_REMOTE"
ENV_DATA_LOCK_TIMEOUT = "MLKIT_DATA_LOCK_TIMEOUT"
ENV_HEARTBEAT_SECONDS = "MLKIT_HEARTBEAT_SECONDS"
ENV_SERVER_BACKEND_URI = "MLKIT_SERVER_BACKEND_URI"
ENV_S3_ENDPOINT_URL = "MLFLOW_S3_ENDPOINT_URL"

CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "precision", "recall", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
DEFAULT_METRICS = {
    "classification": ("accuracy", "f1", "roc_auc", "precision", "recall", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
