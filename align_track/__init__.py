"""align-track: align-system run folders into MLflow, and a terminal UI to browse them."""

__version__ = "0.1.0"
