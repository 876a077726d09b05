"""Writers of a SQLite store on a network filesystem (store/writer_hosts.py): the risk said once, one writing
host at a time. Real CLI processes on real SQLite stores; the network filesystem is injected
(``ALIGN_TRACK_STORE_FS``), the other host is a claim written as that host would write it."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from align_track.demo.generate import generate_demo
from align_track.store import writer_hosts
from align_track.store.filesystems import Filesystem
from tests.support.server_fixtures import cli_env, run_align_track

NFS = Filesystem("nfs", 0x6969, True)
RISK = "where SQLite's locks are unreliable"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "exps"
    generate_demo(root, run_folders=3, scenes=2, seed=3)
    return root


def _ingest(tree: Path, db: Path, *extra: str, fs: str = "nfs") -> subprocess.CompletedProcess:
    return run_align_track("ingest", "--experiments-dir", str(tree), "--mlflow-uri", f"sqlite:///{db}", *extra,
                           env=cli_env(ALIGN_TRACK_STORE_FS=fs))


def _runs(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def _other_host_claim(db: Path, host: str = "node-b", pid: int = 4242, age_s: float = 0.0) -> Path:
    """The claim ``host``'s writer leaves: the ``host`` file naming it, and its process's file, renewed ``age_s``
    ago."""
    directory = writer_hosts.claims_dir(db)
    directory.mkdir(parents=True, exist_ok=True)
    token = f"{host}:{pid}:12345"
    renewed = time.time() - age_s
    for path in (directory / writer_hosts.HOST_FILE, directory / token.replace(":", "+")):
        path.write_text(f"{token}\n")
        os.utime(path, (renewed, renewed))
    return directory / writer_hosts.HOST_FILE


def test_a_writer_says_the_risk_once_and_readers_say_nothing(tree: Path, tmp_path: Path):
    db = tmp_path / "store" / "mlflow.db"
    done = _ingest(tree, db)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(RISK) == 1, done.stderr
    assert "team server" in done.stderr and "mlflow server" in done.stderr
    assert list(writer_hosts.claims_dir(db).iterdir()) == []  # released at the end
    for command in ("search", "list-runs"):
        read = run_align_track(command, "--mlflow-uri", f"sqlite:///{db}", env=cli_env(ALIGN_TRACK_STORE_FS="nfs"))
        assert read.returncode == 0 and read.stdout.strip(), read.stderr
        assert read.stderr == "", read.stderr
    local = _ingest(tree, tmp_path / "local" / "mlflow.db", fs="")
    assert local.returncode == 0 and RISK not in local.stderr, local.stderr


def test_a_live_claim_of_another_host_refuses_the_second_writer_naming_that_host(tree: Path, tmp_path: Path):
    db = tmp_path / "store" / "mlflow.db"
    assert _ingest(tree, db).returncode == 0
    before = _runs(db)
    claim = _other_host_claim(db)
    done = _ingest(tree, db, "--force")
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: refusing to write") and "host node-b (pid 4242)" in error, done.stderr
    assert "team server" in error and "Traceback" not in done.stderr
    assert _runs(db) == before  # nothing written
    assert sorted(p.name for p in writer_hosts.claims_dir(db).iterdir()) == ["host", "node-b+4242+12345"]
    assert claim.read_text() == "node-b:4242:12345\n"  # ours withdrawn, theirs kept
    watch = run_align_track("ingest", "--watch", "--experiments-dir", str(tree), "--mlflow-uri", f"sqlite:///{db}",
                            env=cli_env(ALIGN_TRACK_STORE_FS="lustre"))
    assert watch.returncode == 2 and "host node-b" in watch.stderr, watch.stderr


def test_allowing_the_risk_writes_despite_the_other_host(tree: Path, tmp_path: Path):
    db = tmp_path / "store" / "mlflow.db"
    _other_host_claim(db)
    done = _ingest(tree, db, "--allow-sqlite-on-network-fs")
    assert done.returncode == 0, done.stderr
    assert _runs(db) >= 3


def test_a_lapsed_claim_of_another_host_is_removed_and_writing_goes_on(tree: Path, tmp_path: Path):
    db = tmp_path / "store" / "mlflow.db"
    _other_host_claim(db, age_s=writer_hosts.LEASE_S + 60)
    done = _ingest(tree, db)
    assert done.returncode == 0, done.stderr
    assert list(writer_hosts.claims_dir(db).iterdir()) == []  # the dead host's files, then ours, removed
    assert _runs(db) >= 3


def test_writers_on_one_host_share_the_store(tree: Path, tmp_path: Path):
    """Another live process of this host holds a claim: SQLite's locks work between them."""
    db = tmp_path / "store" / "mlflow.db"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        from align_track.store.claims import process_start

        token = f"{socket.gethostname()}:{sleeper.pid}:{process_start(sleeper.pid)}"
        directory = writer_hosts.claims_dir(db)
        directory.mkdir(parents=True)
        (directory / writer_hosts.HOST_FILE).write_text(token + "\n")
        (directory / token.replace(":", "+")).write_text(token + "\n")
        done = _ingest(tree, db)
        assert done.returncode == 0, done.stderr
        assert (directory / writer_hosts.HOST_FILE).read_text() == token + "\n"  # still held by the other writer
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_host_claim_is_taken_joined_refused_and_taken_over(tmp_path: Path):
    db = tmp_path / "mlflow.db"
    host_file = writer_hosts.claims_dir(db) / writer_hosts.HOST_FILE
    mine = writer_hosts.claim_store(db, NFS)
    assert mine is not None and host_file.read_text().startswith(socket.gethostname() + ":")
    killed = host_file.parent / f"{socket.gethostname()}+999999999+1"  # a writer of this host killed with -9
    killed.write_text(f"{socket.gethostname()}:999999999:1\n")
    writer_hosts.release(mine)
    assert not mine.exists() and not host_file.exists()  # the last writer of the host removes it
    assert not killed.exists()

    _other_host_claim(db, host="node-d")
    with pytest.raises(writer_hosts.OtherHostWriting, match=r"host node-d \(pid 4242\)"):
        writer_hosts.claim_store(db, NFS)
    assert host_file.read_text().startswith("node-d:")
    allowed = writer_hosts.claim_store(db, NFS, allow=True)
    writer_hosts.release(allowed)
    assert host_file.read_text().startswith("node-d:")  # the other host's claim is left alone

    _other_host_claim(db, host="node-d", age_s=writer_hosts.LEASE_S + 1)
    taken = writer_hosts.claim_store(db, NFS)
    try:
        assert host_file.read_text().startswith(socket.gethostname() + ":")
        assert not (host_file.parent / "node-d+4242+12345").exists()
    finally:
        writer_hosts.release(taken)


def test_without_hard_links_the_host_file_is_created_exclusively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """SMB without unix extensions refuses link(2): the claim falls back to O_EXCL, with the same outcome."""
    def no_links(src, dst, *args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    db = tmp_path / "mlflow.db"
    mine = writer_hosts.claim_store(db, NFS)
    host_file = writer_hosts.claims_dir(db) / writer_hosts.HOST_FILE
    try:
        assert host_file.read_text().startswith(socket.gethostname() + ":")
    finally:
        writer_hosts.release(mine)
    _other_host_claim(db, host="node-e")
    with pytest.raises(writer_hosts.OtherHostWriting, match="host node-e"):
        writer_hosts.claim_store(db, NFS)


def test_a_held_claim_is_renewed_and_shared_by_the_writers_of_one_process(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(writer_hosts, "HEARTBEAT_S", 0.05)
    db = tmp_path / "mlflow.db"
    first = writer_hosts.claim_store(db, NFS)
    second = writer_hosts.claim_store(db, NFS)
    assert first == second and first is not None
    os.utime(first, (1.0, 1.0))
    deadline = time.monotonic() + 30
    while first.stat().st_mtime == 1.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.stat().st_mtime > 1.0  # renewed by the heartbeat
    host_file = first.parent / writer_hosts.HOST_FILE
    os.utime(host_file, (1.0, 1.0))
    while host_file.stat().st_mtime == 1.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert host_file.stat().st_mtime > 1.0
    writer_hosts.release(first)
    assert first.exists() and host_file.exists()  # the second writer still holds it
    writer_hosts.release(second)
    assert not first.exists() and not host_file.exists()


def _as_host(name: str, *command: str) -> list[str]:
    """``command`` in a UTS namespace of its own whose hostname is ``name``: another host, as far as claims go."""
    return ["unshare", "--uts", "sh", "-c", f'hostname {name} && exec "$@"', "sh", *command]


def _can_rename_host() -> bool:
    try:
        return subprocess.run(_as_host("probe", "true"), capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _can_rename_host(), reason="needs `unshare --uts` (root or CAP_SYS_ADMIN)")
def test_a_watcher_on_one_host_keeps_a_second_host_out_until_it_stops(tree: Path, tmp_path: Path):
    """Two real processes under two host names: a watcher holds the store; an ingest from the other host is refused
    naming the watcher's host, and goes through once the watcher has stopped."""
    import signal

    db = tmp_path / "store" / "mlflow.db"
    uri = f"sqlite:///{db}"
    env = cli_env(ALIGN_TRACK_STORE_FS="nfs")
    second = [sys.executable, "-m", "align_track", "ingest", "--experiments-dir", str(tree), "--mlflow-uri", uri]
    watcher = subprocess.Popen(_as_host("node-a", sys.executable, "-m", "align_track", "ingest", "--watch",
                                        "--experiments-dir", str(tree), "--mlflow-uri", uri),
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
    try:
        assert watcher.stderr is not None
        seen = []
        while not any(line.startswith("watching") for line in seen):
            line = watcher.stderr.readline()
            assert line, f"the watcher ended: {''.join(seen)}"
            seen.append(line)
        refused = subprocess.run(_as_host("node-b", *second), env=env, capture_output=True, text=True, timeout=180)
        assert refused.returncode == 2, refused.stderr
        assert "refusing to write" in refused.stderr and "host node-a (pid " in refused.stderr, refused.stderr
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.communicate(timeout=120)
    assert watcher.returncode == 0
    assert list(writer_hosts.claims_dir(db).iterdir()) == []  # the watcher released its claim
    after = subprocess.run(_as_host("node-b", *second, "--force"), env=env, capture_output=True, text=True,
                           timeout=180)
    assert after.returncode == 0, after.stderr


RACER = """
import sys, time
from pathlib import Path
from align_track.store import writer_hosts
from align_track.store.filesystems import Filesystem
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
try:
    claim = writer_hosts.claim_store(Path(sys.argv[1]), Filesystem("nfs", 0x6969, True))
except writer_hosts.OtherHostWriting:
    print("refused", flush=True)
else:
    print("writing", flush=True)
    sys.stdin.read()  # hold the claim until the test has seen every racer's answer
    writer_hosts.release(claim)
"""


@pytest.mark.skipif(not _can_rename_host(), reason="needs `unshare --uts` (root or CAP_SYS_ADMIN)")
def test_of_writers_on_three_hosts_starting_at_once_only_one_hosts_write(tmp_path: Path):
    """Nine processes, three per host name, claim one store at the same instant: every process of exactly one
    host gets it (the host file is hard-linked into place), all the others are refused."""
    db = tmp_path / "mlflow.db"
    start = f"{time.time() + 3:.3f}"
    racers = [(host, subprocess.Popen(_as_host(host, sys.executable, "-c", RACER, str(db), start), env=cli_env(),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
              for host in ("node-a", "node-b", "node-c") for _ in range(3)]
    answers = []
    try:
        for host, racer in racers:
            assert racer.stdout is not None
            answers.append((host, racer.stdout.readline().strip()))
    finally:
        for _, racer in racers:
            racer.communicate("", timeout=60)
    writing = {host for host, answer in answers if answer == "writing"}
    assert len(writing) == 1, answers
    assert sorted(answer for host, answer in answers if host in writing) == ["writing"] * 3, answers
    assert all(answer == "refused" for host, answer in answers if host not in writing), answers
    assert list(writer_hosts.claims_dir(db).iterdir()) == []
