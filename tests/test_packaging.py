"""charrnn as a user installs it: the wheel and the sdist built from this checkout, the wheel
installed into a fresh virtual environment (no editable mode), and the command used from there.

The fresh environment reuses the torch, click, rich and tqdm already installed (a `.pth` line that
names their folder), so the test needs no network and no second copy of torch; the charrnn it runs
is the wheel's, checked by where `import charrnn` finds it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import DEADLINE, make_text

ROOT = Path(__file__).resolve().parents[1]
# What the build reads: the packaging files and the folders the sdist carries.
SOURCES = ["pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "constraints.txt"]
FOLDERS = ["charrnn", "tests", "bench", "docs"]
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")

pytest.importorskip("build", reason="the packaging test needs the test extra (pip install .[test])")


def _run(args, cwd, env=None, input=None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args, cwd=cwd, env=env, input=input, capture_output=True, text=True, timeout=DEADLINE
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist and the wheel, built as `python -m build` builds them: the wheel from the sdist,
    so a file the sdist lacks shows up as a broken wheel. From a copy of the checkout, so that no
    build leftovers land in it."""
    work = tmp_path_factory.mktemp("build")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copy2(ROOT / name, src / name)
    for name in FOLDERS:
        shutil.copytree(ROOT / name, src / name, ignore=JUNK)
    out = work / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)], work)
    return out


def _only(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_the_wheel_holds_every_file_of_the_package_and_nothing_else(dist):
    names = set(zipfile.ZipFile(_only(dist, "*.whl")).namelist())
    shipped = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "charrnn").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert "charrnn/cli/__init__.py" in shipped and "charrnn/text/catalog.json" in shipped
    assert shipped - names == set(), "files of charrnn/ missing from the wheel"
    meta = {n for n in names if n.split("/")[0].endswith(".dist-info")}
    assert names - meta == shipped, "the wheel holds more than the package (tests, benches...)"
    assert any(n.endswith("licenses/LICENSE") for n in meta)
    metadata = zipfile.ZipFile(_only(dist, "*.whl")).read(
        next(n for n in meta if n.endswith("/METADATA"))
    )
    text = metadata.decode()
    assert "License-Expression: MIT" in text and "Requires-Python: >=3.10" in text
    from charrnn import __version__

    assert f"Version: {__version__}\n" in text


def test_the_sdist_holds_what_it_takes_to_build_and_test(dist):
    with tarfile.open(_only(dist, "*.tar.gz")) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in [
        *SOURCES,
        "tests/conftest.py",
        "tests/data/v1/last.pt",
        "charrnn/text/catalog.json",
        "docs/performance.md",  # the README links its measurements
    ]:
        assert needed in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> dict:
    """A fresh virtual environment with the wheel installed (not editable), and the environment
    variables that run it from an empty folder."""
    home = tmp_path_factory.mktemp("installed")
    env_dir = home / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    _run([*pip, "--no-index", str(_only(dist, "*.whl"))], home)
    # torch and the rest from this environment: a path line in a .pth file adds the folder
    # itself, and does not run the .pth files in it (such as an editable install of charrnn).
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], home)
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(purelib.stdout.strip(), "_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(
        PATH=f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}",
        HOME=str(home),
        CHARRNN_CHECKPOINT_DIR=str(home / "checkpoints"),
        CHARRNN_CACHE_DIR=str(home / "cache"),
        OMP_NUM_THREADS="1",
    )
    where = _run([python, "-c", "import charrnn; print(charrnn.__file__)"], home, env)
    assert Path(where.stdout.strip()).is_relative_to(env_dir), "charrnn came from the checkout"
    return {"cwd": home, "env": env, "python": str(python)}


def test_the_installed_command_trains_samples_scores_lists_inspects_and_exports(installed):
    cwd, env = installed["cwd"], installed["env"]

    def charrnn(*args, input=None) -> subprocess.CompletedProcess:
        return _run(["charrnn", *args], cwd, env, input)

    from charrnn import __version__

    assert charrnn("--version").stdout.strip() == f"charrnn, version {__version__}"
    assert "sample" in charrnn("--help").stdout
    module = _run([installed["python"], "-m", "charrnn", "--help"], cwd, env)
    assert module.stdout == charrnn("--help").stdout
    (cwd / "notes.txt").write_text(make_text(6000), encoding="utf-8")
    tiny = ["--layers", "1", "--hidden", "16", "--embedding", "8", "--batch-size", "4"]
    best = charrnn("train", "notes.txt", "--steps", "20", "--seq-len", "16", *tiny, "-q").stdout
    assert Path(best.strip()).name == "best.pt"
    text = charrnn("sample", "-l", "40", "--seed", "1").stdout
    assert len(text) >= 40 and set(text) <= set(make_text(6000))
    assert 0 < float(charrnn("score", "notes.txt").stdout) < 8  # bits per character
    listed = [json.loads(line) for line in charrnn("runs", "--json").stdout.splitlines()]
    assert [(run["run"], run["status"]) for run in listed] == [("notes", "ok")]
    charrnn("inspect", "notes.txt", "--html", "page.html")
    assert (cwd / "page.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    charrnn("export", "writer.html")  # its template comes with the wheel too
    assert (cwd / "writer.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    # a reader that leaves early (`| head`): a quiet exit 0, no traceback
    p = subprocess.Popen(
        ["charrnn", "sample", "-l", "1000000"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stdout.read(10)
    p.stdout.close()
    assert p.wait(timeout=DEADLINE) == 0 and p.stderr.read() == b""
