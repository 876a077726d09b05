"""Whole-process start: each command from launch to its end (or to its first effect), in fresh processes, against
``python -c "import mlflow"`` and against today's path forced (``ALIGN_TRACK_DIRECT=0``: MLflow's client opened
at start-up, every config parsed), best of ``--repeat``, the three interleaved.

A user feels the whole process, not the per-scene cost: a researcher ingests after every experiment, and a sweep
of 1,000 Hydra jobs pays the callback 1,000 times. Commands (goal: under 1 s each, the HTTP ingest under 2 s):

* ``sqlite-1``, ``sqlite-10``: ``ingest`` of 1 / 10 new run folders into an existing SQLite store holding
  ``--existing`` (100) run folders of the same tree (each new folder its own ADM: no sibling is renamed);
* ``sqlite-rerun``: ``ingest`` of an unchanged tree of ``--rerun-runs`` (1,000) run folders;
* ``postgresql-1``, ``postgresql-10`` (``--postgres``): the same as the SQLite ones into a PostgreSQL database;
* ``watch``: ``ingest --watch`` launched on the existing tree plus one new finished folder, until that folder
  is reported ingested (the ``watching`` line comes before: in the notes);
* ``hydra``: the time a Hydra job (tests/support/hydra_app.py, 10 scenes, its own process) takes with the
  align-track callback (ingesting into the existing store, variants from the whole tree) minus without it;
* ``http-first``: launch of a 1-folder ``ingest`` over HTTP to the first request the server receives (a TCP
  proxy in front of a real ``mlflow server`` timestamps it); ``http-1``: the whole 1-folder ingest.

Children run with cached bytecode (``cli_env``: what a pip-installed tool has); the load average at the start is
in the notes. Results: bench-results/start.json.

usage: python -m tests.benchmarks.bench_start [--repeat 3] [--existing 100] [--rerun-runs 1000] [--postgres]
       [--skip-http] [--only sqlite-1,watch,...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from tests.benchmarks.results import Figure, Results
from tests.support.server_fixtures import align_track_cmd, cli_env, fresh_database, start_server, stop_server

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ALIGN_TRACK_SHARED", REPO.parent / "shared")).resolve()
MAKE_CORPUS = SHARED / "bench" / "make_corpus.py"
REAL = SHARED / "real-experiments"
TODAY = {"ALIGN_TRACK_DIRECT": "0"}
TODAY_NAME = "today's path (ALIGN_TRACK_DIRECT=0)"
IMPORT_NAME = "python -c 'import mlflow'"
CALLBACK = "+hydra.callbacks.align_track._target_=align_track.hydra.IngestCallback"
COMMANDS = ("sqlite-1", "sqlite-10", "sqlite-rerun", "postgresql-1", "postgresql-10", "watch", "hydra",
            "http-first", "http-1")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of one process, launch to exit (it must succeed)."""
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(cmd, env=cli_env(**(env or {})), cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout[-3000:]}")
    return wall, _children_cpu() - cpu


def ingest_cmd(tree: Path, uri: str, *extra: str) -> list[str]:
    return align_track_cmd("ingest", "-q", "--experiments-dir", str(tree), "--mlflow-uri", uri, *extra)


def make_corpus(out: Path, experiments: int, scenes: int = 10) -> Path:
    if not out.exists():
        subprocess.run([sys.executable, str(MAKE_CORPUS), str(REAL), str(out), str(experiments), str(scenes)],
                       check=True, stdout=subprocess.DEVNULL)
    return out


_new = iter(range(1_000_000))


def add_folders(tree: Path, count: int) -> list[Path]:
    """``count`` new run folders (copies of a real one), each its own ADM: alone in its group, so none renames a
    sibling's run variant."""
    made = []
    for _ in range(count):
        n = next(_new)
        folder = tree / "new" / f"job-{n:05d}"
        shutil.copytree(REAL / "pipeline_baseline_adept_1", folder)
        config = folder / ".hydra" / "config.yaml"
        cfg = yaml.safe_load(config.read_text())
        cfg.setdefault("adm", {})["name"] = f"bench_new_{n}"
        config.write_text(yaml.safe_dump(cfg))
        made.append(folder)
    return made


def remove(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


class Best:
    """Per command and side (align-track, today, import), the best wall and CPU seen."""

    def __init__(self) -> None:
        self.wall: dict[str, dict[str, float]] = {}
        self.cpu: dict[str, dict[str, float]] = {}

    def keep(self, command: str, side: str, wall: float, cpu: float = 0.0) -> None:
        for table, value in ((self.wall, wall), (self.cpu, cpu)):
            row = table.setdefault(command, {})
            row[side] = min(row.get(side, float("inf")), value)
        print(f"{command:13} {side:11} wall_s={wall:.3f} cpu_s={cpu:.3f}", flush=True)


# --------------------------------------------------------------------------- database stores


def sqlite_copy(template: Path, where: Path) -> str:
    """A copy of the template store (its experiment's artifacts stay where the template put them)."""
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, where / "mlflow.db")
    return f"sqlite:///{where / 'mlflow.db'}"


@contextlib.contextmanager
def pg_copy(template: str) -> Iterator[str]:
    """A clone of the template database (CREATE DATABASE ... TEMPLATE), dropped after."""
    import psycopg2

    base, name = template.rsplit("/", 1)
    clone = f"{name}_c{next(_new)}"
    admin = psycopg2.connect(f"{base}/postgres".replace("+psycopg2", ""), connect_timeout=5)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{clone}" TEMPLATE "{name}"')
    try:
        yield f"{base}/{clone}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{clone}" WITH (FORCE)')
        admin.close()


def new_folders_into(best: Best, command: str, tree: Path, count: int,
                     store: Callable[[], contextlib.AbstractContextManager]) -> None:
    """One round of ``command``: ``count`` new folders ingested by align-track and by today's path, each into a
    fresh copy of the existing store."""
    for side, env in (("align-track", {}), ("today", TODAY)):
        folders = add_folders(tree, count)
        try:
            with store() as uri:
                wall, cpu = run(ingest_cmd(tree, uri), env)
        finally:
            remove(folders)
        best.keep(command, side, wall, cpu)


# --------------------------------------------------------------------------- watch


def watch_once(tree: Path, uri: str, env: dict[str, str]) -> tuple[float, float]:
    """Launch ``ingest --watch`` on ``tree`` (one new finished folder in it); seconds to its ``watching`` line and
    to the new folder reported ingested."""
    [folder] = add_folders(tree, 1)
    lines: queue.Queue = queue.Queue()
    started = time.perf_counter()
    proc = subprocess.Popen(align_track_cmd("ingest", "--watch", "--experiments-dir", str(tree), "--mlflow-uri", uri),
                            env=cli_env(**env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    threading.Thread(target=lambda: [lines.put((time.perf_counter(), line)) for line in proc.stderr],
                     daemon=True).start()
    watching = ingested = None
    try:
        deadline = started + 300
        while ingested is None:
            try:
                at, line = lines.get(timeout=max(0.1, deadline - time.perf_counter()))
            except queue.Empty:
                sys.exit("the watcher never reported the new folder")
            if line.startswith("watching"):
                watching = at - started
            elif line.startswith("ingested") and folder.name in line:
                ingested = at - started
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        remove([folder])
    return watching or 0.0, ingested


# --------------------------------------------------------------------------- HTTP


class FirstRequest:
    """A TCP proxy in front of the server that notes when the first connection of a launch arrives."""

    def __init__(self, port: int):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.first: float | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self.first = None

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            if self.first is None:
                self.first = time.perf_counter()
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3, help="best of R, the same R for every side")
    parser.add_argument("--existing", type=int, default=100, help="run folders already in the store")
    parser.add_argument("--rerun-runs", type=int, default=1000, help="run folders of the unchanged tree")
    parser.add_argument("--postgres", action="store_true", help="also into PostgreSQL (127.0.0.1:5432)")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated commands (default: all)")
    args = parser.parse_args()
    if not MAKE_CORPUS.exists():
        sys.exit(f"needs {MAKE_CORPUS} (the shared benchmark material)")
    only = set(filter(None, args.only.split(","))) or set(COMMANDS)
    if not args.postgres:
        only -= {"postgresql-1", "postgresql-10"}
    if args.skip_http:
        only -= {"http-first", "http-1"}
    work = Path(tempfile.mkdtemp(prefix="bench-start-"))
    out = Results("start")
    out.notes["load_average_at_start"] = round(os.getloadavg()[0], 2)
    out.notes["children"] = "cached bytecode (PYTHONPYCACHEPREFIX), as a pip-installed tool has"
    best = Best()
    repeats = args.repeat
    tree = make_corpus(work / "tree", args.existing)
    corpus = f"a store of {args.existing} run folders (make_corpus.py) and the same tree"
    template = work / "template" / "mlflow.db"
    run(ingest_cmd(tree, f"sqlite:///{template}"))  # the existing store
    rerun_tree = make_corpus(work / "rerun", args.rerun_runs) if "sqlite-rerun" in only else None
    if rerun_tree is not None:
        run(ingest_cmd(rerun_tree, f"sqlite:///{work / 'rerun-store' / 'mlflow.db'}"))
    pg = contextlib.ExitStack()
    pg_template = None
    if only & {"postgresql-1", "postgresql-10"}:
        os.environ["ALIGN_TRACK_ARTIFACTS_ROOT"] = str(work / "pg-artifacts")
        pg_template = pg.enter_context(fresh_database("align_track_start"))
        run(ingest_cmd(tree, pg_template))
    server = proxy = None
    if only & {"http-first", "http-1"}:
        server = start_server(f"sqlite:///{work / 'server' / 'backend.db'}", work / "server" / "artifacts",
                              work / "server.log")
        proxy = FirstRequest(server.port)
        run(ingest_cmd(make_corpus(work / "http-base", 5), f"http://127.0.0.1:{proxy.port}"))  # the experiment
    watching: dict[str, float] = {}
    counter = iter(range(1_000_000))
    try:
        for attempt in range(repeats):
            print(f"-- round {attempt + 1}/{repeats} (load {os.getloadavg()[0]:.2f})", flush=True)
            wall, cpu = run([sys.executable, "-c", "import mlflow"])
            best.keep("import-mlflow", "mlflow", wall, cpu)

            @contextlib.contextmanager
            def sqlite_store() -> Iterator[str]:
                yield sqlite_copy(template, work / f"s{next(counter)}")

            for count in (1, 10):
                if f"sqlite-{count}" in only:
                    new_folders_into(best, f"sqlite-{count}", tree, count, sqlite_store)
                if f"postgresql-{count}" in only:
                    new_folders_into(best, f"postgresql-{count}", tree, count, lambda: pg_copy(pg_template))
            if rerun_tree is not None:
                rerun_uri = f"sqlite:///{work / 'rerun-store' / 'mlflow.db'}"
                for side, env in (("align-track", {}), ("today", TODAY)):
                    best.keep("sqlite-rerun", side, *run(ingest_cmd(rerun_tree, rerun_uri), env))
            if "watch" in only:
                for side, env in (("align-track", {}), ("today", TODAY)):
                    with sqlite_store() as uri:
                        seen, done = watch_once(tree, uri, env)
                    watching[side] = min(watching.get(side, float("inf")), seen)
                    best.keep("watch", side, done)
            if "hydra" in only:
                for side, env in (("align-track", {}), ("today", TODAY)):
                    with sqlite_store() as uri:
                        job = tree / "hydra" / f"job-{next(counter)}"
                        app = [sys.executable, "-m", "tests.support.hydra_app", f"hydra.run.dir={job}", "scenes=10"]
                        without, _ = run(app, env, cwd=REPO)
                        remove([job])
                        hooked = [*app, CALLBACK, f"+hydra.callbacks.align_track.mlflow_uri={uri}",
                                  f"+hydra.callbacks.align_track.experiments_dir={tree}"]
                        with_cb, _ = run(hooked, env, cwd=REPO)
                        remove([job])
                    best.keep("hydra", side, with_cb - without)
            if proxy is not None:
                for side, env in (("align-track", {}), ("today", TODAY)):
                    one = work / f"http-tree-{next(counter)}"
                    add_folders(one, 1)
                    proxy.arm()
                    started = time.perf_counter()
                    wall, cpu = run(ingest_cmd(one, f"http://127.0.0.1:{proxy.port}"), env)
                    assert proxy.first is not None
                    best.keep("http-first", side, proxy.first - started)
                    best.keep("http-1", side, wall, cpu)
    finally:
        if server is not None:
            stop_server(server)
        pg.close()

    mlflow_s = best.wall["import-mlflow"]["mlflow"]
    labels = {
        "sqlite-1": ("ingest of 1 new run folder into an existing SQLite store", corpus),
        "sqlite-10": ("ingest of 10 new run folders into an existing SQLite store", corpus),
        "sqlite-rerun": ("rerun of an unchanged tree, whole process", f"{args.rerun_runs} run folders of 10 scenes"),
        "postgresql-1": ("ingest of 1 new run folder into an existing PostgreSQL database", corpus),
        "postgresql-10": ("ingest of 10 new run folders into an existing PostgreSQL database", corpus),
        "watch": ("ingest --watch: launch -> a new finished folder ingested", corpus),
        "hydra": ("Hydra callback: added time of one job (its own process)", f"{corpus}; a 10-scene job"),
        "http-first": ("ingest over HTTP: launch -> first request at the server", "1 new run folder, mlflow server"),
        "http-1": ("ingest of 1 new run folder over HTTP, whole process", "1 new run folder, mlflow server"),
    }
    for command in COMMANDS:
        if command not in best.wall:
            continue
        figure, described = labels[command]
        mine, today = best.wall[command]["align-track"], best.wall[command]["today"]
        out.add(Figure(figure, "s", mine, today, TODAY_NAME, repeats, described))
        out.add(Figure(f"{figure} (against importing mlflow alone)", "s", mine, mlflow_s, IMPORT_NAME, repeats,
                       described))
        if best.cpu[command].get("align-track"):
            out.notes[f"{command}_cpu_s"] = round(best.cpu[command]["align-track"], 3)
            out.notes[f"{command}_today_cpu_s"] = round(best.cpu[command]["today"], 3)
    out.notes["import_mlflow_s"] = round(mlflow_s, 3)
    for side, seconds in watching.items():
        out.notes[f"watch_watching_line_s_{'today' if side == 'today' else 'align_track'}"] = round(seconds, 3)
    out.save()


if __name__ == "__main__":
    main()
