"""Every ``mlkit.*`` tag key and artifact name mlkit writes to the tracking store and the registry.

Readers and writers import these constants; no module spells a tag key itself. Tags sit on runs, on
model versions (the lineage is copied there so a version answers "which code and which data" alone), and
on registered models (the audit trail).
"""

PREFIX = "mlkit."

# --- lineage: on the run and on its model version -----------------------------------------------------
GIT_COMMIT = "mlkit.git.commit"
GIT_BRANCH = "mlkit.git.branch"
GIT_DIRTY = "mlkit.git.dirty"  # "true" / "false"
GIT_DIFF = "mlkit.git.diff_artifact"  # run-relative artifact path of the uncommitted diff, when dirty
DIFF_SHA256 = "mlkit.git.diff_sha256"  # sha256 of that diff, checked before `mlkit reproduce` applies it
DIFF_OMITTED = "mlkit.git.diff_omitted"  # why the diff was not logged (over the size limit): only its hash was
UNTRACKED = "mlkit.git.untracked_artifact"  # artifact listing untracked and secret files (names, never contents)
DATA_MD5_PREFIX = "mlkit.data.md5."  # + the input's path relative to the project root
PARAMS = "mlkit.params"  # JSON of the resolved params.yaml values
SEED = "mlkit.seed"
SPLIT = "mlkit.split"  # JSON: test_size, cv_folds, stratify, seed, test file
PYTHON = "mlkit.python"
PACKAGE_LOCK = "mlkit.package_lock"  # sha256 of the lock logged as an artifact
PACKAGE_LOCK_ARTIFACT = "mlkit.package_lock_artifact"
MLKIT_VERSION = "mlkit.version"
COMMAND = "mlkit.command"
PREDICTIONS_SHA256 = "mlkit.predictions.sha256"  # fingerprint of the test-split predictions
PROFILE_SHA256 = "mlkit.monitoring.profile_sha256"  # sha256 of the reference profile logged as an artifact
# where the model was fitted, and what chose it (`mlkit reproduce` replays it)
BACKEND = "mlkit.training.backend"  # "local" / "dask"
BACKEND_SOURCE = "mlkit.training.backend_source"  # default, mlkit.yaml, MLKIT_DASK_SCHEDULER, --set, mlkit reproduce
DASK_SCHEDULER = "mlkit.dask.scheduler"  # host:port only: never a scheme's credentials
DASK_WORKERS = "mlkit.dask.workers"  # how many workers the cluster had when the run started
DASK_THREADS = "mlkit.dask.threads_per_worker"  # "1", or "1,2" when workers differ
DASK_MEMORY = "mlkit.dask.memory_per_worker"  # bytes, the smallest worker's limit; "" when unlimited
DASK_VERSIONS = "mlkit.dask.versions"  # JSON: dask and distributed on the client and on the workers
DASK_DATA_READ = "mlkit.dask.data_read"  # JSON: input path -> where the workers read it (DVC remote or cache)

# --- the run ------------------------------------------------------------------------------------------
FAILURE = "mlkit.failure"  # why a run ended FAILED or KILLED
LABEL_MAPPING = "mlkit.label_mapping"  # JSON: the data's class labels by their integer codes
REPRODUCES = "mlkit.reproduces"  # on a reproducing run: the run it rebuilt

# --- the run's process: whether a RUNNING run is still alive (`mlkit runs list`, `mlkit runs end-lost`) --
HOST = "mlkit.host"  # the host name of the machine running the training
PID = "mlkit.pid"  # its process id there
PROCESS_START = "mlkit.process_start"  # the process's start time on that host (tells a reused pid apart)
HEARTBEAT = "mlkit.heartbeat"  # UTC time of the last beat, rewritten while the run is RUNNING
HEARTBEAT_SECONDS = "mlkit.heartbeat_seconds"  # how often the run beats

# --- a monitoring run (`mlkit monitor`): the version it watched and its verdict ----------------------
MONITORED_MODEL = "mlkit.monitoring.model"
MONITORED_VERSION = "mlkit.monitoring.version"
MONITORED_STAGE = "mlkit.monitoring.stage"
MONITORING_CROSSED = "mlkit.monitoring.crossed"  # "true" / "false": the policy was crossed
MONITORING_RUN_TYPE = "monitoring"  # value of mlkit.run_type on monitoring runs
# on the watched version: its latest monitoring run, that run's verdict and when it ended
MONITORING_LATEST_RUN = "mlkit.monitoring.latest_run"
MONITORING_LATEST_CROSSED = "mlkit.monitoring.latest_crossed"
MONITORING_LATEST_TIME = "mlkit.monitoring.latest_time"
RUN_TYPE = "mlkit.run_type"

# --- the model version --------------------------------------------------------------------------------
RUN_ID = "mlkit.run_id"
METRIC_PREFIX = "mlkit.metric."  # + metric name: the run's metrics, copied onto the version
STAGE = "mlkit.stage"
REPRODUCED = "mlkit.reproduced"  # "true" / "false", set by `mlkit reproduce`
REPRODUCED_BY_RUN = "mlkit.reproduced_by_run"
REPRODUCED_AT = "mlkit.reproduced_at"
# a reproduction on another backend or cluster shape that did not match: evidence of neither verdict, so
# the one above is left alone and this says which run tried and why it does not count
REPRODUCTION_INCONCLUSIVE = "mlkit.reproduction_inconclusive"

# --- the registered model -----------------------------------------------------------------------------
AUDIT_PREFIX = "mlkit.audit."  # + UTC time + random suffix: one audit entry (JSON)

# --- artifact paths inside a run ----------------------------------------------------------------------
MODEL_ARTIFACT = "model"
PLOTS_DIR = "plots"
LABELS_ARTIFACT = "label_mapping.json"
DIFF_ARTIFACT = "lineage/uncommitted.diff"
UNTRACKED_ARTIFACT = "lineage/untracked.json"
LOCK_ARTIFACT = "lineage/requirements.lock"
PROFILE_ARTIFACT = "monitoring/reference_profile.json"  # on the training run
REPORT_JSON_ARTIFACT = "monitoring/report.json"  # on a monitoring run
REPORT_HTML_ARTIFACT = "monitoring/report.html"
