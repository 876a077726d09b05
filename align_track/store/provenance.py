"""Who wrote a run or trace: the ``mlflow.user`` and ``mlflow.source.*`` values MLflow's fluent API records.

MLflow's ``start_run``/``start_span`` take them from the process (the OS user, the main script, LOCAL);
align-track writes runs and traces without that machinery, so it computes the same values once here and
every write path (bulk SQL, PostgreSQL, tracking server) stores them alike.
"""

from __future__ import annotations

import functools
import getpass
import sys

from align_track.schema import SOURCE_NAME, SOURCE_TYPE, SOURCE_TYPE_LOCAL, USER

UNKNOWN_USER = "unknown"
"""MLflow's fallback when the OS cannot name the user (no passwd entry, no $USER)."""


@functools.cache
def provenance() -> dict[str, str]:
    """``mlflow.user``, ``mlflow.source.name`` and ``mlflow.source.type`` of this process."""
    try:
        user = getpass.getuser()
    except (ImportError, KeyError, OSError):
        user = UNKNOWN_USER
    source = sys.argv[0] if sys.argv and sys.argv[0] else "<console>"
    return {USER: user, SOURCE_NAME: source, SOURCE_TYPE: SOURCE_TYPE_LOCAL}
