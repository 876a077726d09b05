"""A run folder with several alignment targets is all or nothing (issue 20, item 4).

The fault is real: the store's own database refuses the second target's run (a SQLite trigger on the tag
that names it, as a full disk or a refused row would), on the direct SQL writer (SQLite and PostgreSQL), through
MLflow (``ALIGN_TRACK_DIRECT=0``) and through a real ``mlflow server`` on that database (one folder at a time).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from align_track.ingest.pipeline import ingest
from align_track.schema import TAG_PATH, TAG_TARGET
from tests.support import server_fixtures
from tests.support.factory import config, scene, write_run_folder
from tests.support.server_fixtures import running_server

pg_db = server_fixtures.pg_db

FIRST, SECOND = "ADEPT-June2025-merit-0.0", "ADEPT-June2025-affiliation-1.0"


def _sql(db: str, *statements: str, params: tuple = ()) -> list:
    """Run ``statements`` on the store's database (a SQLAlchemy URL), the last one's rows returned."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(db)
    try:
        with engine.begin() as conn:
            rows: list = []
            for statement in statements:
                result = conn.exec_driver_sql(statement, params) if params else conn.exec_driver_sql(statement)
                rows = result.fetchall() if result.returns_rows else []
            return rows
    finally:
        engine.dispose()


def _refuse(db: str, target: str) -> None:
    if db.startswith("sqlite"):
        _sql(db, f"CREATE TRIGGER refuse_target BEFORE INSERT ON tags WHEN NEW.key = '{TAG_TARGET}' "
                 f"AND NEW.value = '{target}' BEGIN SELECT RAISE(ABORT, 'the store refused this run'); END")
        return
    _sql(db, "CREATE FUNCTION refuse_target() RETURNS trigger AS $$ BEGIN "
             f"IF NEW.key = '{TAG_TARGET}' AND NEW.value = '{target}' THEN "
             "RAISE EXCEPTION 'the store refused this run'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
         "CREATE TRIGGER refuse_target BEFORE INSERT ON tags FOR EACH ROW EXECUTE FUNCTION refuse_target()")


def _allow(db: str) -> None:
    _sql(db, "DROP TRIGGER refuse_target" if db.startswith("sqlite") else "DROP TRIGGER refuse_target ON tags")


def _runs(db: str, path: str) -> tuple[int, int]:
    """(complete, active) runs of the folder ``path``."""
    mark = "?" if db.startswith("sqlite") else "%s"
    rows = _sql(db,
                "SELECT c.value FROM runs r JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = "
                f"{mark} AND p.value = {mark} LEFT JOIN tags c ON c.run_uuid = r.run_uuid "
                "AND c.key = 'align_track.complete' WHERE r.lifecycle_stage = 'active'", params=(TAG_PATH, path))
    return sum(1 for (value,) in rows if value == "true"), len(rows)


@contextmanager
def _store(kind: str, tmp_path: Path, monkeypatch, request) -> Iterator[tuple[str, str]]:
    """(the URI ingest writes to, the SQLAlchemy URL of the database behind it)."""
    if kind == "postgresql":
        monkeypatch.setenv("ALIGN_TRACK_ARTIFACTS_ROOT", str(tmp_path / "pg-artifacts"))
        uri = request.getfixturevalue("pg_db")
        yield uri, uri
        return
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    if kind == "http":
        with running_server(f"sqlite:///{db}", tmp_path / "store" / "artifacts", tmp_path / "server.log") as server:
            yield server.url, f"sqlite:///{db}"
        return
    monkeypatch.setenv("ALIGN_TRACK_DIRECT", "0" if kind == "mlflow" else "1")
    yield f"sqlite:///{db}", f"sqlite:///{db}"


@pytest.mark.parametrize("kind", ["direct", "mlflow", "http", "postgresql"])
def test_a_folder_whose_second_target_fails_publishes_no_target(tmp_path: Path, monkeypatch, request,
                                                                 kind: str) -> None:
    root = tmp_path / "tree"
    write_run_folder(root / "a_first")
    with _store(kind, tmp_path, monkeypatch, request) as (uri, db):
        assert ingest(root, uri).count("ingested") == 1  # the store exists; now it refuses the second target
        _refuse(db, SECOND)
        write_run_folder(root / "b_mixed", scenes=[scene("A1", target=FIRST), scene("B1", target=SECOND)],
                         cfg=config(adm="pipeline_kaleido"), timing=[4.0, 5.0])
        write_run_folder(root / "c_after")
        summary = ingest(root, uri)
        by_path = {o.path: o for o in summary.outcomes}
        assert by_path["b_mixed"].status == "failed", by_path["b_mixed"]
        assert "store error" in by_path["b_mixed"].error  # over HTTP the server words the refusal its way
        assert kind == "http" or "the store refused this run" in by_path["b_mixed"].error
        assert by_path["b_mixed"].runs == 0 and by_path["b_mixed"].run_ids == []
        assert _runs(db, "b_mixed") == (0, 0), "no target of a failed folder is left, complete or not"
        assert by_path["c_after"].status == "ingested" and _runs(db, "c_after") == (1, 1)

        _allow(db)
        again = {o.path: o for o in ingest(root, uri).outcomes}
        assert again["b_mixed"].status == "ingested" and again["b_mixed"].runs == 2
        assert _runs(db, "b_mixed") == (2, 2)
        assert (again["a_first"].status, again["c_after"].status) == ("skipped", "skipped")
