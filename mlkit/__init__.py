"""mlkit: versioned code, data and models, tracked runs, gated promotion and CI from one command."""

__version__ = "0.1.0"
