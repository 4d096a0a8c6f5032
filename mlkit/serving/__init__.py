"""Serving the registered model: the self-contained model format, the HTTP server, batch prediction.

Light on purpose: the command line quotes these names in its help text without importing the server.
"""

ENV_TOKEN = "MLKIT_SERVE_TOKEN"  # when set, `mlkit serve` wants `Authorization: Bearer <token>`
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
PREDICTION_COLUMN = "prediction"  # the column `mlkit predict` adds to the input rows
