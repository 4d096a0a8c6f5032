"""The engines mlkit drives: git (``git``), DVC (``dvc``) and MLflow (``mlflow``).

Each module here is the only place in mlkit that talks to its engine, so retries, timeouts, environment
and error wording are decided once. Their heavy libraries are imported inside functions.
"""
