"""Every trace's decision fields (scene, scenario, choice, true KDMA values), straight from MLflow's SQL tables.

The scenes-across-runs index needs, of each of an experiment's 80,000 traces, a handful of values buried in the
root span's JSON: the scene and scenario ids, the chosen index and action text, the choices' texts and their true
KDMA values. Fetching every span's JSON (5 KB each, the scene's state and characters included) into Python and
decoding it is most of the cost; here the database cuts the few fields out of the JSON itself (SQLite's
``json_extract``, PostgreSQL's ``jsonb``), rows stream to Python while the database works on the next ones, and
only small arrays cross over. Values a database could render differently from Python's own ``json`` (a number
where a text is expected) are re-read exactly from the span's JSON; a span the database's JSON parser refuses
(Python's is laxer: ``NaN``) makes the read continue on the span JSON, decoded in Python, as ``spans_reader`` does.

Gated like ``spans_reader``: SQLite/PostgreSQL stores of an MLflow version whose schema revision the equality test
(tests/store/test_scenes_reader.py) covers; anything else (a tracking server, another MLflow) is read through
MLflow's ``search_traces`` with the same result.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from align_track import scene_summary
from align_track.scene_summary import choice_texts
from align_track.schema import (
    ATTR_CHOICE_INDEX,
    ATTR_CHOSEN_ACTION,
    ATTR_PREDICTED_KDMA,
    ATTR_SCENARIO_ID,
    ATTR_SCENE_INDEX,
    ATTR_TRUE_KDMA,
    IN_CHOICES,
    IN_SCENARIO_ID,
    IN_SCENE_ID,
    META_SOURCE_RUN,
    OUT_ACTION,
    OUT_CHOICE_INDEX,
    TRACE_TAG_SCENE_ID,
    TRACE_TAG_SCENE_SUMMARY,
)
from align_track.store import spans_reader
from align_track.store.runs_reader import _engine, _sql, with_installed_driver
from align_track.store.spans_reader import INPUTS_ATTRIBUTE, OUTPUTS_ATTRIBUTE, Unreadable, _decode_attribute, _literal
from align_track.store.uri import (
    READ_LOCK_WAIT_S,
    StoreError,
    read_failure,
    require_existing_store,
    resolve_tracking_uri,
    sqlite_path,
    store_kind,
)

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()
"""An attribute the span does not have (told apart from one whose value is null)."""

ATTRIBUTES = (ATTR_SCENARIO_ID, ATTR_SCENE_INDEX, ATTR_CHOICE_INDEX, ATTR_CHOSEN_ACTION, ATTR_TRUE_KDMA)
INPUTS = (IN_SCENARIO_ID, IN_SCENE_ID, IN_CHOICES)
SESSION_PG = "SET LOCAL jit = off; SET LOCAL enable_memoize = on; SET LOCAL cursor_tuple_fraction = 1"
"""For the read's transaction. JIT: the JSON-cutting query's cost estimate is over PostgreSQL's threshold, and
compiling it took 1.3 s before the first row (a 200-run read took 3 s). The cursor is read to its end: planned for
its first tenth, it looked each span up by index and memoized nothing (twice the server CPU)."""
BATCH = 4_000
FIRST_BATCH = 1_000
"""Rows handed over at a time: the first rows of a big experiment reach the caller within ~0.1 s."""


@dataclass(slots=True)
class TraceFields:
    """One trace's decision, as its root span and the trace's own rows hold it (absent attributes: MISSING)."""

    trace_id: str
    run_id: str | None
    """The run it belongs to: its ``mlflow.sourceRun`` metadata, else its run link (as ``search_traces`` finds it)."""
    timestamp_ms: int | None
    name: str | None
    """The trace's name (``mlflow.traceName``)."""
    scene_tag: str | None
    """Its ``scene_id`` tag."""
    attributes: tuple[Any, ...]
    """The root span's ATTRIBUTES, decoded as MLflow decodes span attributes (MISSING where absent)."""
    inputs: tuple[Any, ...]
    """The root span inputs' scenario_id, scene_id (None where absent or the inputs are not an object) and the
    choices' texts (:func:`choice_texts`)."""
    output_choice: Any
    """``outputs.choice_index`` where the span has no ``choice_index`` attribute (which wins), else None."""
    output_action: Any
    """``outputs.action.unstructured`` (None where absent)."""


@dataclass(slots=True)
class TraceDetails:
    """What the decisions list shows beside the index: predicted KDMA values and the action (its justification)."""

    trace_id: str
    predicted: Any
    action: Any


# --------------------------------------------------------------------------- SQL


def _sql_kind(uri: str) -> str:
    kind = store_kind(uri)
    if kind not in spans_reader.KINDS or not spans_reader.supported(uri):
        raise Unreadable(f"no fast scene reader for {kind} stores with this MLflow")
    return kind


def _check_schema(uri: str) -> None:
    (schema,) = _sql(uri, ["SELECT version_num FROM alembic_version"])
    tested = spans_reader.TESTED_MLFLOW_SCHEMAS[spans_reader._installed_mlflow() or ""]
    if [r[0] for r in schema] != [tested]:
        raise Unreadable(f"schema revision {[r[0] for r in schema]} is not the one this reader was tested on")


def _fields_sql(kind: str) -> str:
    """The select list: the trace's own columns, then three JSON arrays cut out of the root span's JSON
    (attributes, inputs, outputs), each element still JSON text where the span stores it as such."""
    if kind == "sqlite":
        attrs = ", ".join(f"'$.attributes.\"{a}\"'" for a in ATTRIBUTES)
        inputs = ", ".join(f"'$.\"{k}\"'" for k in INPUTS)
        return (f"json_extract(s.content, {attrs}),"
                f" json_extract(json_extract(s.content, '$.attributes.\"{INPUTS_ATTRIBUTE}\"'), {inputs}),"
                f" json_extract(json_extract(s.content, '$.attributes.\"{OUTPUTS_ATTRIBUTE}\"'),"
                f" '$.\"{OUT_CHOICE_INDEX}\"', '$.\"{OUT_ACTION}\".unstructured')")
    # jsonb: each text parsed once (see _lateral). An absent attribute is SQL NULL, which json_build_array writes
    # as null, and a present one a JSON string: the same arrays as SQLite's.
    attrs = ", ".join(f"u.a -> '{a}'" for a in ATTRIBUTES)
    return f"json_build_array({attrs})::text, w.inputs, w2.outputs"


def _lateral(kind: str, raw: bool) -> str:
    """PostgreSQL: the span's JSON parsed once per row, its inputs and outputs once per distinct text.

    ``OFFSET 0`` keeps each subquery whole: pulled up, PostgreSQL copied its expression into every reference and
    parsed the span's JSON ten times and the inputs three (98 s of server CPU for 80,000 traces). The inputs (the
    scene's state, characters and choices: 4 KB) are the same text in every run that met the scene, and each
    array is a lateral subquery of that text alone, which PostgreSQL memoizes: 10,000 runs' P3 parsed once."""
    if kind != "postgresql" or raw:
        return ""
    inputs = ", ".join(f"i -> '{k}'" for k in INPUTS)
    return (f" CROSS JOIN LATERAL (SELECT a, a ->> '{INPUTS_ATTRIBUTE}' AS itext, a ->> '{OUTPUTS_ATTRIBUTE}' AS otext"
            " FROM (SELECT s.content::jsonb -> 'attributes' AS a OFFSET 0) x OFFSET 0) u"
            f" CROSS JOIN LATERAL (SELECT json_build_array({inputs})::text AS inputs"
            " FROM (SELECT u.itext::jsonb AS i OFFSET 0) v OFFSET 0) w"
            f" CROSS JOIN LATERAL (SELECT json_build_array(o -> '{OUT_CHOICE_INDEX}',"
            f" o -> '{OUT_ACTION}' -> 'unstructured')::text AS outputs"
            " FROM (SELECT u.otext::jsonb AS o OFFSET 0) v OFFSET 0) w2")


def _query(kind: str, eid: int, where: str, raw: bool, whole: bool = False) -> str:
    """Root spans of ``eid``'s traces that also meet ``where``: id, time, name, run (link, else sourceRun
    metadata), scene_id tag, the span's start, then the span's JSON (``raw``) or the three arrays. ``whole``:
    driven by the spans table in its own order (SQLite: a rowid range in ``where``), each trace looked up."""
    link = ("(SELECT min(a.destination_id) FROM entity_associations a WHERE a.source_id = s.trace_id"
            f" AND a.source_type = '{spans_reader.TRACE_ENTITY}' AND a.destination_type = '{spans_reader.RUN_ENTITY}')")
    meta = (f"(SELECT m.value FROM trace_request_metadata m WHERE m.request_id = s.trace_id"
            f" AND m.{{key}} = '{META_SOURCE_RUN}')")
    tag = f"(SELECT g.value FROM trace_tags g WHERE g.request_id = s.trace_id AND g.{{key}} = '{TRACE_TAG_SCENE_ID}')"
    fields = "s.content" if raw else _fields_sql(kind)
    if whole and kind == "sqlite":  # CROSS JOIN: SQLite keeps the spans scan outside, the trace lookup inside
        source = " FROM spans s CROSS JOIN trace_info t" + _lateral(kind, raw)
        match = f"t.request_id = s.trace_id AND +t.experiment_id = {eid}"
    else:
        source = " FROM spans s JOIN trace_info t ON t.request_id = s.trace_id" + _lateral(kind, raw)
        match = f"t.experiment_id = {eid}"
    if kind == "postgresql" and not raw:
        # the traces found first (OFFSET 0: a subquery of its own), their spans' JSON parsed on top, row by row:
        # else PostgreSQL may parse every span into a hash table before the first row (or spans of other
        # experiments before their trace is looked up)
        found = (" FROM (SELECT s.trace_id, s.start_time_unix_nano, s.content, t.timestamp_ms, t.trace_name"
                 f" FROM spans s JOIN trace_info t ON t.request_id = s.trace_id WHERE s.parent_span_id IS NULL"
                 f" AND t.experiment_id = {eid}{where} OFFSET 0) s")
        return (f"SELECT s.trace_id, s.timestamp_ms, s.trace_name, COALESCE({link}, {meta}), NULL, {tag},"
                f" s.start_time_unix_nano, {fields}{found}{_lateral(kind, raw)}")
    # the run link first: the metadata lookup only for a trace without one (COALESCE stops at the first value)
    return (f"SELECT s.trace_id, t.timestamp_ms, t.trace_name, COALESCE({link}, {meta}), NULL, {tag},"
            f" s.start_time_unix_nano, {fields}"
            f"{source} WHERE s.parent_span_id IS NULL AND {match}{where}")


def _where(run_ids: Iterable[str] | None, since_ms: int | None, trace_ids: Iterable[str] | None,
           names: Iterable[str] | None) -> str:
    """SQL conditions on the traces: of these runs (a run link or sourceRun metadata, as search_traces),
    written from ``since_ms`` on, with these ids, named (trace name or scene_id tag) one of ``names``."""
    out = ""
    if since_ms is not None:
        out += f" AND t.timestamp_ms >= {int(since_ms)}"
    if trace_ids is not None:
        out += f" AND s.trace_id IN ({', '.join(map(_lit, trace_ids)) or 'NULL'})"
    if run_ids is not None:
        runs = ", ".join(map(_lit, run_ids)) or "NULL"
        out += (f" AND (s.trace_id IN (SELECT a.source_id FROM entity_associations a"
                f" WHERE a.destination_id IN ({runs}) AND a.source_type = '{spans_reader.TRACE_ENTITY}'"
                f" AND a.destination_type = '{spans_reader.RUN_ENTITY}')"
                f" OR s.trace_id IN (SELECT m.request_id FROM trace_request_metadata m WHERE m.{{key}} ="
                f" '{META_SOURCE_RUN}' AND m.value IN ({runs})))")
    if names is not None:
        listed = ", ".join(map(_lit, names)) or "NULL"
        out += (f" AND (t.trace_name IN ({listed}) OR s.trace_id IN (SELECT g.request_id FROM trace_tags g"
                f" WHERE g.{{key}} = '{TRACE_TAG_SCENE_ID}' AND g.value IN ({listed})))")
    return out


def _lit(text: str) -> str:
    """A SQL string literal that survives the ``{key}`` formatting every query goes through."""
    return _literal(text).replace("{", "{{").replace("}", "}}")


class _JsonRefused(Exception):
    """The database's JSON parser refused a span's JSON that Python's may still read."""


def _json_error(kind: str, exc: BaseException) -> bool:
    if kind == "sqlite":
        import sqlite3

        return isinstance(exc, sqlite3.OperationalError) and "JSON" in str(exc)
    import psycopg2

    return isinstance(exc, psycopg2.DataError)


def _stream(uri: str, kind: str, query: str, batch: int, stop: threading.Event, settings: str = ""
            ) -> Iterator[list[tuple]]:
    """The query's rows a batch at a time, streamed from the database (PostgreSQL: a server-side cursor), so the
    first rows arrive while the database still works on the rest; ``settings``: PostgreSQL SET LOCALs on top of
    SESSION_PG. _JsonRefused for a span's JSON the database
    cannot parse; StoreError for anything else."""
    if kind == "sqlite":
        import sqlite3

        path = sqlite_path(uri)
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=READ_LOCK_WAIT_S)
        except sqlite3.Error as exc:
            raise StoreError(read_failure(uri, exc)) from exc
        try:
            cursor = conn.execute(query.format(key='"key"'))
            sizes = _sizes(batch)
            while not stop.is_set() and (rows := cursor.fetchmany(next(sizes))):
                yield rows
        except sqlite3.Error as exc:
            if _json_error(kind, exc):
                raise _JsonRefused(str(exc)) from exc
            raise StoreError(read_failure(uri, exc)) from exc
        finally:
            conn.close()
        return
    import psycopg2

    engine = _engine(uri)
    key = engine.dialect.identifier_preparer.quote("key")
    try:
        with engine.connect() as conn:
            raw_conn = conn.connection.driver_connection
            try:
                with raw_conn.cursor() as cursor:
                    cursor.execute(SESSION_PG)
                    if settings:
                        cursor.execute(settings)
                with raw_conn.cursor(name=f"align_track_scenes_{threading.get_ident()}") as cursor:
                    cursor.itersize = batch
                    cursor.execute(query.format(key=key))
                    sizes = _sizes(batch)
                    while not stop.is_set() and (rows := cursor.fetchmany(next(sizes))):
                        yield rows
            finally:
                raw_conn.rollback()
    except psycopg2.Error as exc:
        if _json_error(kind, exc):
            raise _JsonRefused(str(exc)) from exc
        raise StoreError(f"cannot read {with_installed_driver(uri)}: {exc}") from exc
    except Exception as exc:
        import sqlalchemy.exc

        if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
            raise StoreError(read_failure(uri, exc)) from exc
        raise


def _sizes(batch: int) -> Iterator[int]:
    """A small first batch (the first scenes show after a thousand rows, not four), then ``batch`` at a time."""
    yield min(batch, FIRST_BATCH)
    while True:
        yield batch


def _prefetched(batches: Iterator[list[tuple]], stop: threading.Event, depth: int = 2) -> Iterator[list[tuple]]:
    """``batches`` read one step ahead in a thread: the database extracts the next batch (SQLite's JSON work runs
    without the GIL) while the caller decodes this one. ``depth`` 0: read to the end whatever the caller's pace.
    The thread starts now, not at the first batch asked for (a second half is read while the first is)."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            with contextlib.closing(batches):  # closed in this thread, which opened its connection
                for rows in batches:
                    while not stop.is_set():
                        try:
                            handoff.put(rows, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        break
            item: Any = done
        except BaseException as exc:  # handed to the reader, which raises it
            item = exc
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="align-track-scenes-read", daemon=True)
    thread.start()
    return _handed(handoff, done, stop)


def _handed(handoff: queue.Queue, done: object, stop: threading.Event) -> Iterator[list[tuple]]:
    try:
        while True:
            item = handoff.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


# --------------------------------------------------------------------------- decoding


def _exact(value: Any, ints: bool) -> bool:
    """A value the database handed over as it was written: text, null, a boolean, an integer where ``ints`` (SQLite
    copies numbers' text; PostgreSQL's jsonb writes 1e+16 as 10000000000000000), or a choices list whose texts
    are text (jsonb also reorders objects' keys)."""
    if value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, int):
        return ints
    if isinstance(value, list):
        return all(not isinstance(c, dict) or c.get("unstructured") is None or isinstance(c.get("unstructured"), str)
                   for c in value)
    return False


def _attribute(value: Any) -> Any:
    return MISSING if value is None else _decode_attribute(value)


def _decoded(text: str | None, size: int, cache: dict[str | None, tuple[tuple, tuple]], attributes: bool,
             ints: bool) -> tuple[tuple, tuple]:
    """One of the JSON arrays the query made, decoded (and each value checked for exactness) once per distinct
    text: runs that met the same scene and chose alike share their texts, so most rows are a dict lookup."""
    found = cache.get(text)
    if found is None:
        values = [None] * size if text is None else json.loads(text)
        if attributes:  # attribute values are JSON texts (MLflow writes them so): exact as they are
            found = (tuple(map(_attribute, values)), tuple(v is None or isinstance(v, str) for v in values))
        else:
            exact = tuple(_exact(v, ints) for v in values)
            if size == len(INPUTS):
                values = [*values[:2], choice_texts(values[2])]
            found = (tuple(values), exact)
        cache[text] = found
    return found


def _from_arrays(row: tuple, caches: tuple[dict, dict, dict], ints: bool) -> TraceFields | None:
    """A row of the JSON-cutting query as TraceFields; None when a value must be read exactly from the span."""
    trace_id, ts, name, meta_run, link_run, tag, _start, a_text, i_text, o_text = row
    attrs, exact_a = _decoded(a_text, len(ATTRIBUTES), caches[0], True, ints)
    inputs, exact_i = _decoded(i_text, len(INPUTS), caches[1], False, ints)
    outputs, exact_o = _decoded(o_text, 2, caches[2], False, ints)
    # outputs.choice_index counts only where the span has no choice_index attribute
    if not (all(exact_a) and all(exact_i) and exact_o[1] and (exact_o[0] or attrs[2] is not MISSING)):
        return None
    return TraceFields(trace_id, meta_run or link_run, None if ts is None else int(ts), name, tag,
                       attrs, inputs, outputs[0] if attrs[2] is MISSING else None, outputs[1])


def fields_from_span(trace_id: str, run_id: str | None, timestamp_ms: int | None, name: str | None,
                     scene_tag: str | None, attributes: dict[str, Any], inputs: Any, outputs: Any) -> TraceFields:
    """TraceFields from a root span's decoded attributes, inputs and outputs (as MLflow's Span reports them)."""
    inp = inputs if isinstance(inputs, dict) else {}
    out = outputs if isinstance(outputs, dict) else {}
    action = out.get(OUT_ACTION)
    attrs = tuple(attributes.get(a, MISSING) for a in ATTRIBUTES)
    return TraceFields(
        trace_id, run_id, timestamp_ms, name, scene_tag, attrs,
        (inp.get(IN_SCENARIO_ID), inp.get(IN_SCENE_ID), choice_texts(inp.get(IN_CHOICES))),
        out.get(OUT_CHOICE_INDEX) if attrs[2] is MISSING else None,
        action.get("unstructured") if isinstance(action, dict) else None)


def _from_content(row: tuple) -> TraceFields:
    """A row of the raw query (the span's whole JSON), decoded in Python as spans_reader decodes it."""
    trace_id, ts, name, meta_run, link_run, tag, _start, content = row
    try:
        data = json.loads(content)
        raw_attrs = data.get("attributes") or {}
        attrs = {k: _decode_attribute(v) for k, v in raw_attrs.items()} if isinstance(raw_attrs, dict) else {}
    except (ValueError, TypeError, AttributeError):
        attrs = {}  # MLflow cannot load this span either; the trace counts with what it has (nothing)
    return fields_from_span(trace_id, meta_run or link_run, None if ts is None else int(ts), name, tag, attrs,
                            attrs.get(INPUTS_ATTRIBUTE), attrs.get(OUTPUTS_ATTRIBUTE))


# --------------------------------------------------------------------------- public API


def read_trace_fields(tracking_uri: str, experiment_id: str, run_ids: Iterable[str] | None = None,
                      since_ms: int | None = None, names: Iterable[str] | None = None,
                      batch: int = BATCH) -> Iterator[list[TraceFields]]:
    """Batches of TraceFields of the experiment's traces (of ``run_ids`` only, written from ``since_ms`` on,
    named one of ``names``: each optional), read straight from SQL. Unreadable where MLflow must read them
    (:func:`read_trace_fields_mlflow`); StoreError when the store cannot be read. Stop iterating at any time.

    Each trace's ``mlflow.align_track.scene_summary`` tag first (a few hundred bytes: align_track/scene_summary.py),
    streamed; then the root spans of the traces without a summary that reads (another tool's, an older mapping's,
    an edited one), their fields cut out of the span's JSON as before."""
    uri = resolve_tracking_uri(tracking_uri)
    kind = _sql_kind(uri)
    require_existing_store(uri)
    try:
        eid = int(experiment_id)
    except ValueError:
        raise Unreadable(f"experiment id {experiment_id!r} is not a number") from None
    _check_schema(uri)
    runs = None if run_ids is None else list(dict.fromkeys(run_ids))
    where = _where(runs, since_ms, None, None if names is None else list(names))
    seen: dict[str, int] = {}  # trace id -> its root span's start (a trace with several roots: the first read)
    untagged: list[str] = []
    garbled: list[str] = []
    yield from _summarised(uri, kind, eid, where, batch, seen, untagged, garbled)
    if untagged and not seen and not garbled:  # no summary at all (another tool's store): every span, one scan
        yield from _span_fields(uri, kind, eid, where, batch, seen)
    else:
        if len(untagged) > ID_LISTS:  # many without (a store partly re-ingested): those, by a condition
            untagged_only = (f" AND NOT EXISTS (SELECT 1 FROM trace_tags g WHERE g.request_id = s.trace_id"
                             f" AND g.{{key}} = '{TRACE_TAG_SCENE_SUMMARY}')")
            yield from _span_fields(uri, kind, eid, where + untagged_only, batch, seen)
            listed = garbled
        else:
            listed = untagged + garbled
        for start in range(0, len(listed), ID_CHUNK):
            part = _where(None, None, listed[start:start + ID_CHUNK], None)
            yield from _span_fields(uri, kind, eid, where + part, batch, seen)
    missing = _without_root_span(uri, eid, where, seen)
    if missing:
        yield from read_trace_fields_mlflow(uri, str(eid), trace_ids=missing)


ID_LISTS = 20_000
"""Up to this many traces without a summary are read by their ids; more, by the absence of the tag."""
ID_CHUNK = 2_000


def _summary_query(kind: str, eid: int, where: str, joined: bool = False) -> str:
    """Every trace of ``eid`` that meets ``where``: id, time, name, run (link, else sourceRun metadata), NULL,
    scene_id tag, scene summary tag. No span is read. Each trace's run link and two tags are looked up by index,
    or (``joined``, PostgreSQL: a whole experiment that is much of the store) joined: three passes over the
    links and the two tags' rows, hashed (run with :data:`SESSION_PG_JOINED`), instead of 240,000 index lookups
    (1.4 s of server time at 80,000 traces, 0.5 s joined). Either way the metadata is looked up only for a trace
    without a link (COALESCE stops at the first value)."""
    meta = (f"(SELECT m.value FROM trace_request_metadata m WHERE m.request_id = t.request_id"
            f" AND m.{{key}} = '{META_SOURCE_RUN}')")
    links = (f"a.source_type = '{spans_reader.TRACE_ENTITY}' AND a.destination_type = '{spans_reader.RUN_ENTITY}'")
    where = where.replace("s.trace_id", "t.request_id")
    if joined:  # trace_tags' key is (key, request_id): one row per trace and key at most, as the lookups
        tag = "LEFT JOIN trace_tags {0} ON {0}.request_id = t.request_id AND {0}.{{key}} = '{1}'"
        return (f"SELECT t.request_id, t.timestamp_ms, t.trace_name, COALESCE(a.run, {meta}), NULL, g.value,"
                f" h.value FROM trace_info t LEFT JOIN (SELECT a.source_id, min(a.destination_id) AS run"
                f" FROM entity_associations a WHERE {links} GROUP BY a.source_id) a ON a.source_id = t.request_id"
                f" {tag.format('g', TRACE_TAG_SCENE_ID)} {tag.format('h', TRACE_TAG_SCENE_SUMMARY)}"
                f" WHERE t.experiment_id = {eid}{where}")
    link = f"(SELECT min(a.destination_id) FROM entity_associations a WHERE a.source_id = t.request_id AND {links})"
    tag = "(SELECT g.value FROM trace_tags g WHERE g.request_id = t.request_id AND g.{key} = '%s')"
    return (f"SELECT t.request_id, t.timestamp_ms, t.trace_name, COALESCE({link}, {meta}), NULL,"
            f" {tag % TRACE_TAG_SCENE_ID}, {tag % TRACE_TAG_SCENE_SUMMARY} FROM trace_info t"
            f" WHERE t.experiment_id = {eid}{where}")


SESSION_PG_JOINED = "SET LOCAL enable_nestloop = off; SET LOCAL work_mem = '64MB'"
"""For the joined summary read: no nested loop (on a store not yet analysed, PostgreSQL guessed the tag tables
tiny and scanned one per trace: quadratic), and room to hash the summaries (18 MB at 80,000 traces) in memory."""


def _joined_summaries(uri: str, kind: str, eid: int, where: str) -> bool:
    """Whether to join the summary read (PostgreSQL, the whole experiment, at least 1/WHOLE_SHARE of the store's
    traces); else look each trace's rows up (a few traces, or a small experiment in a big store: the joins would
    read every trace's tags)."""
    if kind != "postgresql" or where:
        return False
    (counts,) = _sql(uri, [f"SELECT (SELECT count(*) FROM trace_info),"
                           f" (SELECT count(*) FROM trace_info WHERE experiment_id = {eid})"])
    total, mine = counts[0]
    return bool(mine) and mine * WHOLE_SHARE >= total


def _summarised(uri: str, kind: str, eid: int, where: str, batch: int, seen: dict[str, int], untagged: list[str],
                garbled: list[str]) -> Iterator[list[TraceFields]]:
    """The fields of the traces whose summary reads, streamed a batch at a time; the ids of the others in
    ``untagged`` (no summary) and ``garbled`` (one that does not read as a summary)."""
    stop = threading.Event()
    rows_in = _summary_rows(uri, kind, eid, where, batch, stop)
    cache: dict[str, Any] = {}
    try:
        for rows in rows_in:
            out: list[TraceFields] = []
            for trace_id, ts, name, run, _link, tag, text in rows:
                if text is None:
                    untagged.append(trace_id)
                    continue
                found = scene_summary.decode_once(text, cache)
                if found is None:
                    garbled.append(trace_id)
                    continue
                seen[trace_id] = 0
                attrs, inputs, action = found
                out.append(TraceFields(trace_id, run, None if ts is None else int(ts), name, tag, attrs, inputs,
                                       None, action))
            if out:
                yield out
    finally:
        stop.set()
        rows_in.close()


def _summary_rows(uri: str, kind: str, eid: int, where: str, batch: int, stop: threading.Event
                  ) -> Iterator[list[tuple]]:
    """The summary query's rows, streamed. Joined (:func:`_joined_summaries`), its first row comes only once the
    tags are hashed (0.3 s at 80,000 traces): meanwhile a thousand traces are looked up in a second backend and
    handed over first, and the joined rows skip them."""
    if not _joined_summaries(uri, kind, eid, where):
        return _prefetched(_stream(uri, kind, _summary_query(kind, eid, where), batch, stop), stop)
    stops = stop, threading.Event(), threading.Event()
    first = _prefetched(_stream(uri, kind, _summary_query(kind, eid, where) + f" LIMIT {FIRST_BATCH}", batch,
                                stops[1]), stops[1])
    rest = _prefetched(_stream(uri, kind, _summary_query(kind, eid, where, joined=True), batch, stops[2],
                               SESSION_PG_JOINED), stops[2])
    return _first_then_rest(first, rest, stops)


def _first_then_rest(first: Iterator[list[tuple]], rest: Iterator[list[tuple]], stops: Iterable[threading.Event]
                     ) -> Iterator[list[tuple]]:
    """``first``'s rows, then ``rest``'s but for the traces ``first`` gave; closed, every reading thread stops."""
    given: set[str] = set()
    try:
        for rows in first:
            given.update(row[0] for row in rows)
            yield rows
        for rows in rest:
            yield [row for row in rows if row[0] not in given]
    finally:
        for stop in stops:
            stop.set()


def _span_fields(uri: str, kind: str, eid: int, where: str, batch: int, seen: dict[str, int]
                 ) -> Iterator[list[TraceFields]]:
    """TraceFields of the traces that meet ``where`` and are not in ``seen``, cut out of their root spans' JSON."""
    caches: tuple[dict, dict, dict] = ({}, {}, {})
    stop = threading.Event()
    rows_in: Any = None
    try:
        whole = _whole_chunks(uri, kind, eid, batch) if not where else None
        if whole is not None:
            for rows in whole:
                yield _decode(uri, kind, eid, rows, seen, caches)
            return
        rows_in = _rows_in(uri, kind, eid, where, batch, stop)
        raw = False
        while True:
            try:
                for rows in rows_in:
                    yield _decode(uri, kind, eid, rows, seen, caches)
                break
            except _JsonRefused:
                if raw:
                    raise StoreError(f"cannot read the traces of {uri}") from None
                # Python's JSON reads what the database's refused: the rest (and what came before, skipped) raw.
                stop.set()
                stop = threading.Event()
                rows_in = _prefetched(_stream(uri, kind, _query(kind, eid, where, raw=True), batch, stop), stop)
                raw = True
    finally:
        stop.set()
        if rows_in is not None:
            rows_in.close()  # its reading threads stop (PostgreSQL's halves have their own events)


def _decode(uri: str, kind: str, eid: int, rows: list[tuple], seen: dict[str, int],
            caches: tuple[dict, dict, dict]) -> list[TraceFields]:
    out: list[TraceFields] = []
    again: list[str] = []
    for row in rows:
        trace_id = row[0]
        if trace_id in seen:
            continue  # a second root span, or a row the JSON-cutting read already gave
        seen[trace_id] = row[6] or 0
        fields = _from_content(row) if len(row) == 8 else _from_arrays(row, caches, kind == "sqlite")
        if fields is None:
            again.append(trace_id)
        else:
            out.append(fields)
    if again:  # values the database renders its own way: read exactly from the span's JSON
        (rows,) = _sql(uri, [_query(kind, eid, _where(None, None, again, None), raw=True)
                             + " ORDER BY s.start_time_unix_nano"])
        exact: dict[str, TraceFields] = {}
        for row in rows:
            exact.setdefault(row[0], _from_content(row))
        out += exact.values()
    return out


def _rows_in(uri: str, kind: str, eid: int, where: str, batch: int, stop: threading.Event
             ) -> Iterator[list[tuple]]:
    """The JSON-cutting query's rows, streamed. A whole PostgreSQL experiment (most of the store, PostgreSQL 14 or
    later) is read as two halves of the spans table's pages at once, each in its own backend (the JSON work is
    the server's: one backend is one core), the second half kept until the first is through: the rows come in
    the one scan's order."""
    halves = None if where or kind != "postgresql" else _pg_halves(uri, eid)
    if halves is None:
        return _prefetched(_stream(uri, kind, _query(kind, eid, where, raw=False), batch, stop), stop)
    first, second = (_query(kind, eid, h, raw=False) for h in halves)
    stops = threading.Event(), threading.Event()  # each half's own: the first's end must not stop the second
    later = _prefetched(_stream(uri, kind, second, batch, stops[1]), stops[1], depth=0)
    return _chained([_prefetched(_stream(uri, kind, first, batch, stops[0]), stops[0]), later], stops)


def _chained(parts: list[Iterator[list[tuple]]], stops: Iterable[threading.Event]) -> Iterator[list[tuple]]:
    """Each part's batches in turn; closed (a failure, the reader gone), every part's reading thread stops."""
    try:
        for part in parts:
            yield from part
    finally:
        for stop in stops:
            stop.set()


def _pg_halves(uri: str, eid: int) -> tuple[str, str] | None:
    """Conditions splitting the spans table's pages in two (the second open-ended: rows written since are read
    too); None on a PostgreSQL before 14 (a ctid range there reads the whole table) or where the experiment is
    a small part of the store (each half's spans are parsed before their trace's experiment is looked up)."""
    (info,) = _sql(uri, ["SELECT current_setting('server_version_num')::int,"
                         " pg_relation_size('spans') / current_setting('block_size')::int,"
                         f" count(*), sum(CASE WHEN experiment_id = {eid} THEN 1 ELSE 0 END) FROM trace_info"])
    version, pages, total, mine = info[0]
    if version < PG_TID_RANGES or not pages or pages < 2 or not mine or mine * WHOLE_SHARE < total:
        return None
    middle = pages // 2
    return f" AND s.ctid < '({middle},0)'::tid", f" AND s.ctid >= '({middle},0)'::tid"


PG_TID_RANGES = 140000
"""PostgreSQL from 14 on scans a ctid range without reading the rest of the table."""
WHOLE_SHARE = 3
"""Scan the whole spans table (in its own order, in parallel chunks or halves) when the experiment holds at least
1/N of the store's traces; else look its traces up by experiment."""
CHUNKS_IN_FLIGHT = 2


def _whole_chunks(uri: str, kind: str, eid: int, batch: int) -> Iterator[list[tuple]] | None:
    """SQLite: the spans table in rowid ranges, two read at once (each its own connection: the JSON work runs in
    SQLite without the GIL, so two ranges take both cores while Python decodes). None when the experiment is a
    small part of the store (a lookup by experiment is cheaper)."""
    if kind != "sqlite":
        return None
    (counts,) = _sql(uri, [f"SELECT count(*), sum(CASE WHEN experiment_id = {eid} THEN 1 ELSE 0 END),"
                           " (SELECT min(rowid) FROM spans), (SELECT max(rowid) FROM spans) FROM trace_info"])
    total, mine, low, high = counts[0]
    if not mine or mine * WHOLE_SHARE < total or low is None:
        return None
    step = max(batch, 1)
    first = min(step, 1_000)  # a small first range: the first scenes show at once
    ranges = [(low, min(low + first, high + 1))]
    ranges += [(lo, min(lo + step, high + 1)) for lo in range(low + first, high + 1, step)]
    return _chunked(uri, kind, eid, ranges)


def _chunked(uri: str, kind: str, eid: int, ranges: list[tuple[int, int]]) -> Iterator[list[tuple]]:
    from concurrent.futures import ThreadPoolExecutor

    def chunk(bounds: tuple[int, int]) -> list[tuple]:
        where = f" AND s.rowid >= {bounds[0]} AND s.rowid < {bounds[1]}"
        try:
            return _sqlite_rows(uri, _query(kind, eid, where, raw=False, whole=True))
        except _JsonRefused:  # Python's JSON reads what SQLite's refused: this range raw
            return _sqlite_rows(uri, _query(kind, eid, where, raw=True, whole=True))

    pool = ThreadPoolExecutor(max_workers=CHUNKS_IN_FLIGHT, thread_name_prefix="align-track-scenes")
    try:
        pending = [pool.submit(chunk, r) for r in ranges[:CHUNKS_IN_FLIGHT]]
        queued = CHUNKS_IN_FLIGHT
        while pending:
            rows = pending.pop(0).result()
            if queued < len(ranges):
                pending.append(pool.submit(chunk, ranges[queued]))
                queued += 1
            yield rows
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def _sqlite_rows(uri: str, query: str) -> list[tuple]:
    import sqlite3

    try:
        conn = sqlite3.connect(f"{sqlite_path(uri).resolve().as_uri()}?mode=ro", uri=True, timeout=READ_LOCK_WAIT_S)
        try:
            conn.execute("PRAGMA mmap_size = 1073741824")  # pages read in place, not copied (a third faster)
            return conn.execute(query.format(key='"key"')).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if _json_error("sqlite", exc):
            raise _JsonRefused(str(exc)) from exc
        raise StoreError(read_failure(uri, exc)) from exc


def _without_root_span(uri: str, eid: int, where: str, seen: dict[str, int]) -> list[str]:
    """Traces of the read with no root span row (MLflow keeps their spans elsewhere): MLflow reads those."""
    where_t = where.replace("s.trace_id", "t.request_id")
    ((count,),), = _sql(uri, [f"SELECT count(*) FROM trace_info t WHERE t.experiment_id = {eid}{where_t}"])
    if count <= len(seen):
        return []
    (rows,) = _sql(uri, [f"SELECT t.request_id FROM trace_info t WHERE t.experiment_id = {eid}{where_t}"
                         " AND NOT EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.request_id"
                         " AND s.parent_span_id IS NULL)"])
    return [r[0] for r in rows if r[0] not in seen]


def read_trace_fields_mlflow(tracking_uri: str, experiment_id: str, run_ids: Iterable[str] | None = None,
                             since_ms: int | None = None, names: Iterable[str] | None = None,
                             trace_ids: Iterable[str] | None = None) -> Iterator[list[TraceFields]]:
    """:func:`read_trace_fields` through MLflow's client (tracking servers, other MLflow versions): a page of
    ``search_traces`` at a time; ``trace_ids`` reads those traces one by one."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if trace_ids is not None:
        traces = [client.get_trace(t) for t in trace_ids]
        yield [f for t in traces if t is not None and (f := _trace_fields(t)) is not None]
        return
    clauses = []
    if since_ms is not None:
        clauses.append(f"trace.timestamp_ms >= {int(since_ms)}")
    wanted = None if names is None else set(names)
    for run_id in [None] if run_ids is None else list(dict.fromkeys(run_ids)):
        token = None
        while True:
            page = client.search_traces(locations=[str(experiment_id)], run_id=run_id, max_results=500,
                                        page_token=token, filter_string=" AND ".join(clauses) or None)
            found = [f for t in page if (f := _trace_fields(t, run_id)) is not None
                     and (wanted is None or f.name in wanted or f.scene_tag in wanted)]
            if found:
                yield found
            token = page.token
            if not token or not page:
                break


def _trace_fields(trace: Any, run_id: str | None = None) -> TraceFields | None:
    spans = list(trace.data.spans or [])
    root = next((s for s in spans if s.parent_id is None), None)
    if root is None:
        return None
    info = trace.info
    tags = dict(info.tags or {})
    run = run_id or (info.trace_metadata or {}).get(META_SOURCE_RUN) or tags.get("mlflow.runId")
    return fields_from_span(info.trace_id, run, info.request_time, tags.get(spans_reader.TRACE_NAME_TAG),
                            tags.get(TRACE_TAG_SCENE_ID), dict(root.attributes or {}), root.inputs, root.outputs)


def read_details(tracking_uri: str, experiment_id: str, trace_ids: list[str]) -> dict[str, TraceDetails]:
    """Predicted KDMA values and the chosen action (with its justification) of these traces, by trace id."""
    uri = resolve_tracking_uri(tracking_uri)
    if not trace_ids:
        return {}
    try:
        found = _cut_details(uri, experiment_id, trace_ids)
    except Unreadable:
        found = None
    return found if found is not None else details_from_spans(uri, experiment_id, trace_ids)


def details_from_spans(uri: str, experiment_id: str, trace_ids: list[str]) -> dict[str, TraceDetails]:
    """:func:`read_details` from each root span's whole JSON (decoded as MLflow decodes it), else from a tracking
    server's batches of traces, else through MLflow trace by trace."""
    try:
        rows = read_root_spans(uri, experiment_id, trace_ids)
    except Unreadable:
        from align_track.store.traces_over_http import root_spans

        rows = root_spans(uri, experiment_id, trace_ids)
    out = {}
    for trace_id, row in rows.items():
        outputs = row["outputs"] if isinstance(row["outputs"], dict) else {}
        out[trace_id] = TraceDetails(trace_id, row["attributes"].get(ATTR_PREDICTED_KDMA), outputs.get(OUT_ACTION))
    return out


def _cut_details(uri: str, experiment_id: str, trace_ids: list[str], chunk: int = 2_000
                 ) -> dict[str, TraceDetails] | None:
    """:func:`read_details` with the database cutting the two attributes out of each span's JSON: one scene's
    2,700 traces read in a tenth of the time of decoding every span whole in Python. None (read them whole) where
    a span holds something else than JSON texts there, or its JSON is refused, or a trace has no root span."""
    kind = _sql_kind(uri)
    require_existing_store(uri)
    eid = int(experiment_id)
    _check_schema(uri)
    if kind == "sqlite":
        cut = (f"json_extract(s.content, '$.attributes.\"{ATTR_PREDICTED_KDMA}\"',"
               f" '$.attributes.\"{OUTPUTS_ATTRIBUTE}\"')")
        lateral = ""
    else:
        cut = f"json_build_array(j.a -> '{ATTR_PREDICTED_KDMA}', j.a -> '{OUTPUTS_ATTRIBUTE}')::text"
        lateral = " CROSS JOIN LATERAL (SELECT s.content::jsonb -> 'attributes' AS a OFFSET 0) j"
    # SQLite: driven by the listed ids (CROSS JOIN keeps spans outside); else it walks the experiment's traces
    source = ("spans s CROSS JOIN trace_info t ON t.request_id = s.trace_id" if kind == "sqlite"
              else "spans s JOIN trace_info t ON t.request_id = s.trace_id")
    out: dict[str, TraceDetails] = {}
    for start in range(0, len(trace_ids), chunk):
        where = _where(None, None, trace_ids[start:start + chunk], None)
        query = (f"SELECT s.trace_id, {cut} FROM {source}{lateral} WHERE s.parent_span_id IS NULL"
                 f" AND t.experiment_id = {eid}{where} ORDER BY s.start_time_unix_nano")
        try:
            (rows,) = _sql(uri, [query])
        except StoreError:
            return None  # a span's JSON the database refuses (or a failing store: the whole read says which)
        for trace_id, text in rows:
            if trace_id in out:
                continue  # a second root span: the first counts, as read_root_spans
            predicted, outputs = json.loads(text) if text is not None else (None, None)
            if not all(v is None or isinstance(v, str) for v in (predicted, outputs)):
                return None
            outputs = _decode_attribute(outputs)
            action = outputs.get(OUT_ACTION) if isinstance(outputs, dict) else None
            out[trace_id] = TraceDetails(trace_id, _decode_attribute(predicted), action)
    return out if len(out) == len(set(trace_ids)) else None


def read_root_spans(tracking_uri: str, experiment_id: str, trace_ids: list[str],
                    chunk: int = 2_000) -> dict[str, dict[str, Any]]:
    """The root span of each of these traces as spans_reader reports one (inputs, outputs, attributes, ...), plus
    its trace's ``trace_id``, ``tags`` (scene_id) and ``request_time``; Unreadable where MLflow must read them."""
    uri = resolve_tracking_uri(tracking_uri)
    kind = _sql_kind(uri)
    require_existing_store(uri)
    eid = int(experiment_id)
    _check_schema(uri)
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(trace_ids), chunk):
        part = trace_ids[start:start + chunk]
        (rows,) = _sql(uri, [_query(kind, eid, _where(None, None, part, None), raw=True, whole=kind == "sqlite")
                             + " ORDER BY s.start_time_unix_nano"])  # (SQLite: driven by the listed ids)
        for trace_id, ts, name, _meta, _link, tag, _start, content in rows:
            if trace_id in out:
                continue
            span = spans_reader._root_span(content)
            tags = {k: v for k, v in ((spans_reader.TRACE_NAME_TAG, name), (TRACE_TAG_SCENE_ID, tag)) if v is not None}
            out[trace_id] = {"trace_id": trace_id, "request_time": None if ts is None else int(ts), "tags": tags,
                             **span}
    missing = [t for t in trace_ids if t not in out]
    if missing:
        raise Unreadable(f"{len(missing)} traces have no root span in the tracking store")
    return out


def read_all(read: Callable[..., Iterator[list[TraceFields]]], *args: Any, **kwargs: Any) -> list[TraceFields]:
    """Every batch of ``read`` as one list (tests, small reads)."""
    return [f for batch in read(*args, **kwargs) for f in batch]
