"""Serving the registered model: the self-contained model format, the HTTP server, batch prediction."""
