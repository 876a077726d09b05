"""The align-track terminal UI: runs, scenes, compare, ingest, reports and the MLflow web UI, keyboard only.

Importing this package stays light (textual only); mlflow and pandas load in workers.
"""
