"""MLflow store access: the bottom layer. Nothing here imports from ingest, query, CLI or TUI."""
