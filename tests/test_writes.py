"""Every write charrnn makes, refused for real by the system: a file-size limit (`ulimit -f`, set in
the process that writes), a full disk and a read-only folder (small tmpfs mounts, where the tests
run as root). Each ends in one `Error:` line that names the file and says what to do, with no
traceback, no temporary file left, and the files that were there before as they were."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DEADLINE, TINY_CLI, make_text

from charrnn import checkpoint
from charrnn.cli import cli

LIMIT = 64 * 1024  # bytes a process may write to one file: less than a tiny model's checkpoint


def charrnn(args, cwd: Path, limit: int | None = None, input: str | None = None):
    """The command, run here (CliRunner) in folder `cwd`, with the process's file-size limit at
    `limit` bytes while it runs (Python ignores SIGXFSZ: a write over the limit fails, EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        r = CliRunner().invoke(
            cli, args, input=input, env={"CHARRNN_CACHE_DIR": str(cwd / "cache")}
        )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        os.chdir(here)
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


def in_a_process(args, cwd: Path, limit: int):
    """The real command in a process of its own, its file-size limit at `limit` bytes."""
    return subprocess.run(
        [sys.executable, "-m", "charrnn", *args],
        cwd=cwd,
        env={**os.environ, "CHARRNN_CACHE_DIR": str(cwd / "cache")},
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )


def one_error(r, *words: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and r.stdout == ""
    last = r.stderr.splitlines()[-1]
    assert last.startswith("Error: ") and r.stderr.count("Error") == 1, r.stderr
    for word in words:
        assert word in last, (word, last)
    return last


def no_temporaries(folder: Path) -> None:
    assert not [p for p in folder.rglob(".*.tmp")], list(folder.rglob(".*.tmp"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A folder with notes.txt and a tiny run 'notes' trained on it."""
    home = tmp_path_factory.mktemp("writes")
    (home / "notes.txt").write_text(make_text(6000), encoding="utf-8")
    r = charrnn(["train", "notes.txt", *TINY_CLI, "--steps", "20", "-q"], home)
    assert r.returncode == 0, r.stderr
    return home


def test_a_checkpoint_over_the_file_size_limit(tmp_path):
    """torch's zip writer turns the EFBIG of its write into a RuntimeError of its own. In a
    process of its own: nothing at its end (a final flush) may turn it into a traceback."""
    (tmp_path / "notes.txt").write_text(make_text(6000), encoding="utf-8")
    r = in_a_process(["train", "notes.txt", *TINY_CLI, "--steps", "20"], tmp_path, LIMIT)
    one_error(r, "cannot write checkpoints/notes/", ".pt: File too large", "ulimit -f")
    for written in (tmp_path / "checkpoints" / "notes").glob("*.pt"):  # the first ones fitted
        checkpoint.load(written)
    no_temporaries(tmp_path)


def test_a_later_checkpoint_over_the_limit_keeps_the_earlier_ones(trained, tmp_path):
    """Resuming a run whose next checkpoint is bigger than the limit allows: the run's files stay
    as they were and load."""
    import shutil

    shutil.copytree(trained / "checkpoints", tmp_path / "checkpoints")
    run = tmp_path / "checkpoints" / "notes"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    limit = len(before["last.pt"]) - 1000  # the files there fit, a new checkpoint does not
    r = charrnn(["train", "--resume", "notes", "--steps", "40"], tmp_path, limit)
    one_error(r, "cannot write checkpoints/notes/", "File too large", "ulimit -f")
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for name in ("best.pt", "last.pt"):
        assert after[name] == before[name]
        checkpoint.load(run / name)
    lines = after["metrics.jsonl"].decode().splitlines()
    assert [json.loads(line) for line in lines]  # every line whole
    no_temporaries(tmp_path)


def test_metrics_that_cannot_grow_are_left_whole(tmp_path):
    """An append cut short by the limit is taken back: no half line to join the next one."""
    script = (
        "import resource, sys\n"
        "from charrnn.runs import RunDir\n"
        "from charrnn.errors import RunError\n"
        "run = RunDir(sys.argv[1])\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT}))\n"
        "try:\n"
        "    run.append_metrics({'kind': 'eval', 'note': 'x' * 500})\n"
        "except RunError as e:\n"
        "    print(e)\n"
    )
    metrics = tmp_path / "metrics.jsonl"
    first = json.dumps({"kind": "eval", "step": 1}) + "\n"
    metrics.write_text(first + " " * (LIMIT - len(first) - 100) + "\n")
    before = metrics.read_bytes()
    r = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert r.stdout.startswith(f"cannot write {metrics}: File too large; ")
    assert metrics.read_bytes() == before


@pytest.mark.parametrize(
    "args, target",
    [
        (["sample", "-c", "notes", "-l", "30000", "-o", "out.txt"], "out.txt"),
        (["inspect", "notes.txt", "-c", "notes", "--html", "out.html"], "out.html"),
        (["corpus", "get", "recall"], "recall-py"),
    ],
)
def test_an_output_over_the_limit_keeps_the_file_that_was_there(trained, args, target):
    old = trained / "out.txt"
    old.write_text("the previous text\n")
    (trained / "out.html").write_text("the previous page\n")
    r = charrnn(args, trained, 8192)
    one_error(r, target, "File too large", "ulimit -f")
    assert old.read_text() == "the previous text\n"
    assert (trained / "out.html").read_text() == "the previous page\n"
    no_temporaries(trained)


def test_an_encoded_corpus_over_the_limit(tmp_path):
    (tmp_path / "big.txt").write_text(make_text(200_000), encoding="utf-8")
    r = charrnn(["train", "big.txt", *TINY_CLI, "--steps", "5"], tmp_path, LIMIT)
    one_error(r, "cannot write the encoded corpus", "File too large", "CHARRNN_CACHE_DIR")
    no_temporaries(tmp_path)


@contextlib.contextmanager
def mounted(folder: Path, options: str):
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "notes.txt", *TINY_CLI, "--steps", "20", "--checkpoint-dir", "{disk}"],
        ["sample", "-c", "notes", "-l", "30000", "-o", "{disk}/out.txt"],
        ["inspect", "notes.txt", "-c", "notes", "--html", "{disk}/out.html"],
    ],
)
@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_a_full_or_read_only_disk(trained, tmp_path, args, disk):
    options = "size=8k" if disk == "full" else "size=8k,ro"
    with mounted(tmp_path / "disk", options) as folder:
        r = charrnn([a.replace("{disk}", str(folder)) for a in args], trained)
        if disk == "full":
            one_error(r, str(folder), "No space left on device", "free some space")
        else:
            one_error(r, str(folder), "Read-only file system", "read-only")
        no_temporaries(folder)
