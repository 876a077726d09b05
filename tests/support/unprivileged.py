"""Run align-track as an unprivileged user (uid 65534, 'nobody') from any checkout.

Root reads and writes anything, so tests of permissions run the CLI as 'nobody'. That user must reach the
interpreter, its standard library, the venv's packages and align_track itself, which a checkout under /root or
in a 0700 ``mktemp -d`` folder hides (``No module named align_track``). When 'nobody' cannot run this checkout's
Python in place, what it needs is staged once per session in a world-readable temp folder: the interpreter and
its standard library, the venv's site-packages (hard links: no copy of the data, a second or two) and a copy of
``align_track``. Where even that is impossible (another file system for the temp folder, files only root may
read), the test is skipped, saying why.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
REPO = Path(__file__).resolve().parents[2]
_PROBE = ("import importlib.util, align_track; "
          "assert all(importlib.util.find_spec(m) for m in ('mlflow', 'yaml', 'click')), 'packages missing'")


def as_nobody(*args: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command running ``python -m align_track *args`` as uid 65534, and its environment (``env`` plus what
    a staged interpreter needs). Skips the calling test when 'nobody' cannot run align-track at all."""
    python, extra = _python_for_nobody()
    return [*NOBODY, python, "-m", "align_track", *args], {**env, **extra}


@functools.cache
def _python_for_nobody() -> tuple[str, dict[str, str]]:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to run as an unprivileged user")
    if _runs(sys.executable, {}) is None:
        return sys.executable, {}
    try:
        python, env = _stage()
    except OSError as exc:
        pytest.skip(f"uid 65534 cannot import align_track from this checkout ({REPO} is not readable by it) and "
                    f"staging it for that user failed: {exc}")
    problem = _runs(python, env)
    if problem is not None:
        pytest.skip(f"uid 65534 cannot import align_track from this checkout ({REPO}), even staged: {problem}")
    return python, env


def _runs(python: str, env: dict[str, str]) -> str | None:
    """None if 'nobody' can run ``python`` and find align-track's packages, else what went wrong."""
    probe = subprocess.run([*NOBODY, python, "-c", _PROBE], capture_output=True, text=True, timeout=60, cwd="/",
                           env={**os.environ, **env, "PYTHONDONTWRITEBYTECODE": "1"}, stdin=subprocess.DEVNULL)
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["exit status"])[-1]


def _stage() -> tuple[str, dict[str, str]]:
    """A relocated copy of this interpreter with the venv's packages and align_track, readable by everyone."""
    base = Path(tempfile.mkdtemp(prefix="align-track-nobody-"))
    atexit.register(shutil.rmtree, base, True)
    base.chmod(0o755)
    prefix = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    home = base / "python"
    stdlib = Path(os.__file__).parent  # the base interpreter's, also from inside a venv
    _link_tree(prefix / "bin", home / "bin", only=lambda p: p.name.startswith(("python", version)))
    _link_tree(prefix / "lib", home / "lib", only=lambda p: p.name.startswith("libpython"))
    _link_tree(stdlib, home / "lib" / version, skip={"site-packages", "test", "idlelib", "tkinter", "turtledemo"})
    site = home / "lib" / version / "site-packages"
    _link_tree(Path(sysconfig.get_paths()["purelib"]), site, skip={"__editable__", "align_track"},
               only=lambda p: not (p.suffix == ".pth" and "align_track" in p.name))
    shutil.copytree(REPO / "align_track", base / "src" / "align_track",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (site / "align_track_staged.pth").write_text(f"{base / 'src'}\n")
    for path in [base, *base.rglob("*")]:
        if not path.is_symlink() and path.stat().st_uid == os.geteuid() and not path.is_file():
            path.chmod(0o755)
    for path in (base / "src").rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    (site / "align_track_staged.pth").chmod(0o644)
    python = home / "bin" / version
    return str(python), {"LD_LIBRARY_PATH": str(home / "lib"), "PYTHONHOME": str(home),
                         "PYTHONNOUSERSITE": "1"}


def _link_tree(src: Path, dst: Path, skip: set[str] = frozenset(), only=lambda p: True) -> None:  # noqa: B006
    """Hard-link the files of ``src`` into ``dst`` (top-level names in ``skip`` left out, ``only`` choosing
    top-level entries); symlinks are recreated as they are. Raises OSError (EXDEV) across file systems."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        path = Path(entry.path)
        if entry.name in skip or not only(path):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(path), dst / entry.name)
        elif entry.is_dir():
            for folder, dirs, files in os.walk(path):
                rel = Path(folder).relative_to(src)
                (dst / rel).mkdir(parents=True, exist_ok=True)
                for name in files:
                    source = Path(folder, name)
                    if source.is_symlink():
                        os.symlink(os.readlink(source), dst / rel / name)
                    else:
                        os.link(source, dst / rel / name)
                for name in dirs:
                    if Path(folder, name).is_symlink():
                        os.symlink(os.readlink(Path(folder, name)), dst / rel / name)
                dirs[:] = [d for d in dirs if not Path(folder, d).is_symlink()]
        else:
            os.link(path, dst / entry.name)
