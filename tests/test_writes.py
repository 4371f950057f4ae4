"""Every write charrnn makes, refused: a checkpoint, the metrics, an output file, stdout, the
encoded corpus. Refused for real by the system where it can be (a file-size limit, `ulimit -f`, set
in the process that writes; a full disk and a read-only folder: small tmpfs mounts, where the tests
run as root), and simulated where it cannot. Each ends in one `Error:` line that names the file and
says what to do, with no traceback, no temporary file left, and the files that were there before as
they were."""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import DEADLINE, TINY_CLI, make_text
from helpers.cli import assert_one_error, command, invoke, popen, run

from charrnn import checkpoint
from charrnn.cli import main
from charrnn.errors import CheckpointError, RunError
from charrnn.model.network import CharRNN
from charrnn.runs import RunDir
from charrnn.use.sampler import Sampler

LIMIT = 64 * 1024  # bytes a process may write to one file: less than a tiny model's checkpoint


def charrnn(args, cwd: Path, limit: int | None = None):
    """The command, run here in folder `cwd`, with the process's file-size limit at `limit` bytes
    while it runs (Python ignores SIGXFSZ: a write over the limit fails, EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        return invoke(args, env={"CHARRNN_CACHE_DIR": str(cwd / "cache")})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        os.chdir(here)


def in_a_process(args, cwd: Path, limit: int):
    """The real command in a process of its own, its file-size limit at `limit` bytes."""
    return run(
        args,
        cwd,
        env={**os.environ, "CHARRNN_CACHE_DIR": str(cwd / "cache")},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )


def one_error(r, *words: str) -> str:
    """One `Error:` line, its last (after what training wrote before the write failed), holding
    `words`; and the word Error nowhere else."""
    last = assert_one_error(r, 1, *words, alone=False)
    assert r.stderr.count("Error") == 1, r.stderr
    return last


def no_temporaries(folder: Path) -> None:
    assert not [p for p in folder.rglob(".*.tmp")], list(folder.rglob(".*.tmp"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A folder with notes.txt and a tiny run 'notes' trained on it."""
    home = tmp_path_factory.mktemp("writes")
    (home / "notes.txt").write_text(make_text(6000), encoding="utf-8")
    r = charrnn(["train", "notes.txt", *TINY_CLI, "--steps", "20", "-q"], home)
    assert r.exit_code == 0, r.stderr
    return home


# ---------------------------------------------------------------------------------- checkpoints


def test_a_failed_write_leaves_the_previous_checkpoint_untouched(
    trained_run, tmp_path, monkeypatch
):
    target = tmp_path / "last.pt"
    payload = checkpoint.load(trained_run.last)
    checkpoint.save(payload, target)
    before = target.read_bytes()

    def half_write(obj, f):
        f.write(b"partial garbage")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_write)
    with pytest.raises(CheckpointError, match="No space left"):
        checkpoint.save(payload, target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]  # no temp file left behind


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


def test_disk_full_mid_run_is_one_line_and_keeps_the_previous_checkpoint(
    env, tmp_path, monkeypatch, corpus_file
):
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) >= 3:  # step 0, step 10 (last.pt; best.pt a copy), then the disk is full
            f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    r = env(["train", str(corpus_file), *TINY_CLI, "--steps", "40"])
    # the run has steps to keep: its folder goes elsewhere with them, not a new run
    last = one_error(r, "No space left on device", "free some space", "--resume COPY")
    assert last.startswith("Error: cannot write") and "--checkpoint-dir" not in last
    run = RunDir(tmp_path / "checkpoints" / "tiny")
    assert checkpoint.load(run.last)["trainer"]["step"] == 10  # untouched, loads
    assert checkpoint.load(run.best)["trainer"]["step"] == 10
    assert not list(run.path.glob(".*.tmp"))


def test_a_read_only_checkpoint_folder_is_one_line(env, tmp_path, monkeypatch, corpus_file):

    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if "checkpoints" in str(dir):  # the run's folder; the cache takes its encoding
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    r = env(["train", str(corpus_file), *TINY_CLI, "--steps", "10"])
    # nothing saved yet: the run starts over wherever it can be written
    last = one_error(r, "Read-only file system", "train with another --checkpoint-dir")
    assert last.startswith("Error: cannot write")
    assert not (tmp_path / "checkpoints" / "tiny" / "last.pt").exists()


def test_too_many_open_files_says_to_raise_the_limit(env, tmp_path, monkeypatch, corpus_file):
    """`ulimit -n 5`: the save that finds no descriptor left says which limit to raise."""
    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if "checkpoints" in str(dir):
            raise OSError(errno.EMFILE, "Too many open files")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    r = env(["train", str(corpus_file), *TINY_CLI, "--steps", "10"])
    one_error(r, "Too many open files; this process may open no more files; raise the limit")


@pytest.fixture
def tiny_disk(tmp_path):
    """A real, nearly full disk: a tmpfs with room for 2.5 tiny checkpoints (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    size = 2 * 130_000 + 65_000  # a tiny run's checkpoint is ~129 KB
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk(env, corpus_file, tiny_disk):
    args = [
        "train",
        str(corpus_file),
        *TINY_CLI,
        "--steps",
        "40",
        "--checkpoint-dir",
        str(tiny_disk),
    ]
    r = env(args)
    # step 0: last.pt; step 10: last.pt and best.pt; step 20: no room for a third file
    assert one_error(r, "No space left on device").startswith("Error: cannot write")
    run = tiny_disk / "tiny"
    assert checkpoint.load(run / "last.pt")["trainer"]["step"] == 10
    assert checkpoint.load(run / "best.pt")["trainer"]["step"] == 10
    assert not list(run.glob(".*.tmp"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_a_really_read_only_folder(env, tmp_path, corpus_file):
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    r = env(["train", str(corpus_file), "--checkpoint-dir", "ro", *TINY_CLI])
    assert_one_error(r, 1)


def test_a_stop_signal_mid_write_stays_a_stop_and_leaves_the_previous_checkpoint(
    trained_run, tmp_path, monkeypatch
):
    """A second Ctrl-C that lands inside torch.save: its zip writer, closing, raises a
    RuntimeError of its own over the interrupt. The interrupt is what comes out (the CLI exits
    130 on it, without a traceback), and the file before is kept whole."""
    from charrnn import fsutil
    from charrnn.cli.signals import Interrupted

    target = tmp_path / "last.pt"
    payload = checkpoint.load(trained_run.last)
    checkpoint.save(payload, target)
    before = target.read_bytes()
    writes = [0]
    real_write = fsutil._Watched.write

    def write(self, data):
        writes[0] += 1
        if writes[0] == 3:
            raise Interrupted(2)
        return real_write(self, data)

    monkeypatch.setattr(fsutil._Watched, "write", write)
    with pytest.raises(Interrupted):
        checkpoint.save(payload, target)
    assert writes[0] == 3  # torch wrote on through the wrapper: the interrupt came mid-write
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    (run.path / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    with run.session():
        assert not list(run.path.glob(".*.tmp"))


# ----------------------------------------------------------- the metrics and the encoded corpus


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


def test_an_encoded_corpus_over_the_limit(tmp_path):
    (tmp_path / "big.txt").write_text(make_text(200_000), encoding="utf-8")
    r = charrnn(["train", "big.txt", *TINY_CLI, "--steps", "5"], tmp_path, LIMIT)
    one_error(r, "cannot write the encoded corpus", "File too large", "CHARRNN_CACHE_DIR")
    no_temporaries(tmp_path)


# -------------------------------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    "args, target",
    [
        (["sample", "-c", "notes", "-l", "30000", "-o", "out.txt"], "out.txt"),
        (["inspect", "notes.txt", "-c", "notes", "--html", "out.html"], "out.html"),
        (["corpus", "get", "recall"], "recall.txt"),
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


def test_output_file_is_all_or_nothing(sample, tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("the previous text\n")
    real_fsync = os.fsync

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)  # the disk fills as the file is made durable
    r = sample("-o", str(target), "-l", "300")
    assert_one_error(r, 1)
    assert "cannot write the output" in r.stderr and "No space left on device" in r.stderr
    assert target.read_text() == "the previous text\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temp file left
    monkeypatch.setattr(os, "fsync", real_fsync)
    ok = sample("-o", str(target), "-l", "40", "-s", "4", "--prime", "ANNA:")
    assert ok.exit_code == 0 and ok.stdout == ""
    assert target.read_text() == sample("-l", "40", "-s", "4", "--prime", "ANNA:").stdout
    full = sample("-o", "/dev/full", "-l", "40")  # a device is written in place, never replaced
    assert_one_error(full, 1)
    assert "/dev/full: No space left on device" in full.stderr
    assert Path("/dev/full").is_char_device()


def test_output_where_no_file_can_be_made_says_why(sample, tmp_path):
    """ "No such file or directory" of a file being created says which part of the path is
    wrong: a folder that is missing, a file where a folder should be, a folder that takes none."""
    (tmp_path / "notes").write_text("a file\n")
    cases = {  # the first part of the path that is missing, or that is a file
        tmp_path / "missing" / "deeper" / "out.txt": "missing does not exist; create it",
        tmp_path / "notes" / "out.txt": "notes is a file, not a folder",
        tmp_path / "notes" / "a" / "out.txt": "notes is a file, not a folder",
        tmp_path / "dangling.txt": "gone does not exist; create it",  # a link's target's
        # the system's reading, part by part, where Path's cancels `x/..` on paper
        tmp_path / "notes" / ".." / "out.txt": "notes is a file, not a folder",
        tmp_path / "missing" / ".." / "out.txt": "missing does not exist; create it",
    }
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "gone" / "deeper" / "out.txt")
    if Path("/proc/self").is_dir():  # Linux: /proc exists and takes no new files
        cases[Path("/proc/charrnn-out.txt")] = "no file can be created in /proc"
    for target, why in cases.items():
        r = sample("-o", str(target), "-l", "20")
        assert_one_error(r, 1)
        assert why in r.stderr and r.stderr.rstrip().endswith("write to another file")
        assert not target.exists()  # (a dangling link: its target still does not)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.txt", "notes"]


def test_a_name_the_system_refuses_never_reaches_a_file_by_another_way(sample, tmp_path):
    """`notes/../notes`, `gone/../notes`, a link to `notes/.`: the system refuses each, where a
    path cancelled on paper named the file itself, which no check had seen (a saved model, the
    prime file: replaced)."""
    notes = tmp_path / "notes"
    notes.write_text("a text\n")
    os.symlink(f"{notes}/.", tmp_path / "to-dot")  # as a string: Path would drop the "."
    os.symlink(f"{tmp_path}/gone/../notes", tmp_path / "to-gone")
    for name in ("notes/../notes", "gone/../notes", "to-dot", "to-gone"):
        r = sample("-o", f"{tmp_path}/{name}", "-l", "5")
        assert_one_error(r, 1, "cannot write the output")
        assert notes.read_text() == "a text\n"


def test_a_cache_folder_that_is_a_file_says_so(tmp_path, monkeypatch):
    (tmp_path / "notes").write_text("a file\n")
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "notes"))
    r = invoke(["corpus", "get", "pystdlib"])
    line = assert_one_error(r, 1, "notes is a file, not a folder")
    assert line.endswith("point CHARRNN_CACHE_DIR at another folder")


# --------------------------------------------------------------------------------------- stdout


def run_main(args, stdout, monkeypatch, capsys):
    """The whole command, as `charrnn ARGS` runs it (its entry point), with sys.stdout being
    `stdout`."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "argv", ["charrnn", *args])
    with pytest.raises(SystemExit) as e:
        main()
    monkeypatch.undo()
    return e.value.code, capsys.readouterr().err


@pytest.fixture
def commands(trained_run, tmp_path, monkeypatch):
    """Every command that writes to stdout, with the arguments to make it write."""
    monkeypatch.chdir(tmp_path)  # train makes its runs here, in ./checkpoints
    best = str(trained_run.best)
    lines = tmp_path / "lines.txt"
    lines.write_text("ANNA:\nthe cat sat.\n\nBORIS:\nwe all sang.\n")
    small = tmp_path / "small.txt"
    small.write_text(make_text(3000))
    runs_here = ["--checkpoint-dir", str(tmp_path / "checkpoints")]
    return {
        "sample": ["sample", "-c", best, "-l", "50", "-s", "1"],
        "sample -n 2 --json": ["sample", "-c", best, "-n", "2", "-l", "50", "--json"],
        "score": ["score", "-c", best, str(lines)],
        "score --per-line": ["score", "-c", best, "--per-line", str(lines)],
        "runs": ["runs", "--checkpoint-dir", str(trained_run.path.parent)],
        "plot": ["plot", trained_run.name, "--checkpoint-dir", str(trained_run.path.parent)],
        "plot --json": ["plot", str(trained_run.path), "--train", "--json"],
        "corpus list": ["corpus", "list"],
        "inspect": ["inspect", "-c", best, str(lines), "--unit", "1:2"],
        "inspect --json": ["inspect", "-c", best, str(lines), "--json", "--find-units", "-q"],
        "inspect --sample": ["inspect", "-c", best, "--sample", "30", "--find-units", "-q"],
        # its own --checkpoint-dir: run_main's monkeypatch.undo() also undoes the chdir above,
        # and a run must never land in the checkout's checkpoints/
        "train": ["train", str(small), *TINY_CLI, "--steps", "3", "-q", "--force", *runs_here],
        # written before any command runs
        "--help": ["--help"],
        "--version": ["--version"],
        "sample --help": ["sample", "--help"],
    }


FULL = (
    "Error: cannot write the output: No space left on device; free some space on that disk, or "
    "send the output elsewhere"
)


@pytest.mark.parametrize(
    "name",
    [
        "sample",
        "sample -n 2 --json",
        "score",
        "score --per-line",
        "runs",
        "plot",
        "plot --json",
        "corpus list",
        "inspect",
        "inspect --json",
        "inspect --sample",
        "train",
        "--help",
        "--version",
        "sample --help",
    ],
)
def test_every_command_reports_output_it_cannot_write(name, commands, monkeypatch, capsys):
    args = commands[name]

    def saved(err: str) -> str:
        # train's run is saved all the same: it says where, before the error line
        if name != "train":
            return err
        said, _, rest = err.partition("\n")
        assert said.startswith("The run is saved: ") and said.endswith("best.pt"), err
        return rest

    with open("/dev/full", "w") as full:  # a full disk: ENOSPC on the first flush
        code, err = run_main(args, full, monkeypatch, capsys)
    assert code == 1 and saved(err) == f"{FULL}\n", err
    code, err = run_main(args, None, monkeypatch, capsys)  # started with stdout closed (>&-)
    line = assert_one_error(subprocess.CompletedProcess(args, code, "", saved(err)))
    assert line.startswith("Error: cannot write the output: Bad file descriptor")
    r, w = os.pipe()
    os.close(r)  # the reader left (`| head`): quiet, exit 0
    with open(w, "w") as gone:
        code, err = run_main(args, gone, monkeypatch, capsys)
    assert code == 0 and err == ""


@pytest.mark.parametrize("args", [["-n", "2", "--json"], ["-n", "3"], []])
def test_a_reader_that_leaves_stops_the_samples_where_nothing_was_written_yet(
    trained_run, args, monkeypatch, capsys
):
    """`sample -n 4 --json | head -c 100`: the JSON lines come at the end, and the samples after
    the first (which is written live) too; the reader's leaving stops the work all the same."""
    steps, generate = [], Sampler.generate

    def counted(self, length):
        for chars in generate(self, length):
            steps.append(len(chars))
            yield chars

    monkeypatch.setattr(Sampler, "generate", counted)
    writer = importlib.import_module("charrnn.cli.sample")  # the module, not the command
    monkeypatch.setattr(writer, "READER_POLL", 0.0)  # at once, not after 20 ms
    r, w = os.pipe()
    os.close(r)  # the reader left before anything was written
    with open(w, "w") as gone:
        args = ["sample", "-c", str(trained_run.best), "-l", "100000", *args]
        code, err = run_main(args, gone, monkeypatch, capsys)
    assert code == 0 and err == ""
    assert 0 < len(steps) < 100  # where the whole job is 100,000 steps


def counted_calls(monkeypatch, owner, name: str) -> list:
    """A list that grows by one at each call of `owner.name` (the work a command does)."""
    calls, real = [], getattr(owner, name)

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def run_into_a_closed_pipe(args, monkeypatch, capsys):
    """`charrnn ARGS | true` where the reader left before anything was written: (code, err)."""
    r, w = os.pipe()
    os.close(r)
    with open(w, "w") as gone:
        return run_main(args, gone, monkeypatch, capsys)


@pytest.mark.parametrize("exact", [True, False])
def test_a_reader_that_leaves_stops_score(trained_run, tmp_path, exact, monkeypatch, capsys):
    """`charrnn score big.txt | true`: the number comes at the end of the read, and the reader's
    leaving before it stops the read (it ran to its end: 48 s of a 1 MB text)."""
    passes = counted_calls(monkeypatch, CharRNN, "read")
    big = tmp_path / "big.txt"
    big.write_text(make_text(200_000))
    args = ["score", "-c", str(trained_run.best), str(big), *["--exact"] * exact]
    code, err = run_into_a_closed_pipe(args, monkeypatch, capsys)
    assert code == 0 and err == ""
    assert 0 < len(passes) <= 2  # of about 800 one stream takes, 25 split


@pytest.mark.parametrize("as_json", [False, True])
def test_a_reader_that_leaves_stops_inspect(trained_run, tmp_path, as_json, monkeypatch, capsys):
    """`charrnn inspect big.txt --max-chars 200000 | true`: the table comes after the recording,
    which the reader's leaving stops (it ran to its end: 21 s)."""
    from charrnn.model.network import Stepper

    steps = counted_calls(monkeypatch, Stepper, "__call__")
    big = tmp_path / "big.txt"
    big.write_text(make_text(20_000))
    args = ["inspect", "-c", str(trained_run.best), str(big), "--max-chars", "20000"]
    code, err = run_into_a_closed_pipe([*args, *["--json"] * as_json], monkeypatch, capsys)
    assert code == 0 and "Error" not in err and "Traceback" not in err
    assert len(steps) <= 64  # of 20,000


def test_a_full_disk_or_closed_stdout_in_a_real_process(trained_run):
    base = command(["sample", "-c", str(trained_run.best), "-l", "99"])
    with open("/dev/full", "wb") as full:
        p = subprocess.run(base, stdout=full, stderr=subprocess.PIPE, timeout=DEADLINE)
    assert p.returncode == 1
    assert p.stderr.decode().splitlines()[-1:] == [FULL]
    p = subprocess.run(
        base, stderr=subprocess.PIPE, timeout=DEADLINE, preexec_fn=lambda: os.close(1)
    )
    assert p.returncode == 1 and b"Traceback" not in p.stderr and b"Exception" not in p.stderr
    assert b"Error: cannot write the output: Bad file descriptor" in p.stderr


@pytest.mark.parametrize("out", ["-", "/dev/stdout"])
def test_a_reader_that_leaves_in_the_middle_of_a_page_is_no_success(trained_run, out):
    """A page (`inspect --html -`, `export -`) is written to stdout in one call; a reader that
    leaves while it waits in the pipe cuts that write short without an error (Python drops the
    rest), so the command said `Wrote the page to stdout`: it now ends quietly, as after any
    write the reader's leaving fails (write_output, which every output goes through)."""
    args = ["inspect", "-c", str(trained_run.best), "-", "--html", out]
    text = b"the cat sat " * 200
    whole = run(args, input=text, capture_output=True, text=False)  # read to its end
    assert whole.returncode == 0 and b"Wrote the page to " in whole.stderr
    assert len(whole.stdout) > 4 * 65536  # more than a pipe holds: the writer will wait in it
    p = popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(text)
    p.stdin.close()
    assert p.stdout.read(1) == b"<"
    p.stdout.close()  # the reader leaves
    assert p.wait(DEADLINE) == 0
    assert b"Wrote" not in p.stderr.read()


@pytest.mark.parametrize("stderr", ["a reader that leaves", "/dev/full", "closed"])
def test_a_stderr_that_cannot_be_written_silences_the_messages_not_the_run(
    tmp_path, corpus_file, stderr
):
    """`charrnn train ... 2> >(head -1)`, `2>/dev/full`, `2>&-`: the run goes on to its end, and
    its exit status and stdout say so."""
    args = command(["train", str(corpus_file), *TINY_CLI, "--steps", "30", "--name", "r"])
    if stderr == "a reader that leaves":
        p = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stderr.readline()  # the first message, then the reader leaves
        p.stderr.close()
        out, _ = p.communicate(timeout=DEADLINE)
        code = p.returncode
    else:
        with open("/dev/full", "w") as full:
            r = subprocess.run(
                args,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=full if stderr == "/dev/full" else None,
                preexec_fn=(lambda: os.close(2)) if stderr == "closed" else None,
                timeout=DEADLINE,
            )
        out, code = r.stdout, r.returncode
    assert code == 0 and out.decode().strip().endswith("best.pt")
    last = torch.load(tmp_path / "checkpoints/r/last.pt", weights_only=True)
    assert last["trainer"]["step"] == 30


@pytest.mark.parametrize("stderr", ["closed", "/dev/full"])
@pytest.mark.parametrize(
    "args, code",
    [(["score", "missing.txt"], 1), (["train", "missing.txt"], 1), (["sample", "--bogus"], 2)],
)
def test_errors_with_stderr_closed_never_reach_stdout(tmp_path, args, code, stderr):
    """`2>&-`, `2>/dev/full`: an `Error:` line or a usage error has nowhere to go but must not
    become the product; the exit status still says what happened."""
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            command(args),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=full if stderr == "/dev/full" else None,
            preexec_fn=(lambda: os.close(2)) if stderr == "closed" else None,
            timeout=DEADLINE,
        )
    assert (r.returncode, r.stdout) == (code, b"")


def test_output_to_an_inherited_descriptor_writes_where_the_shell_opened_it(trained_run, tmp_path):
    """`-o /dev/stdout >> log` appends, as `>> log` does: the file is not replaced; and a saved
    model behind the descriptor is refused, left whole."""
    log = tmp_path / "log.txt"
    log.write_text("kept\n")
    base = ["sample", "-c", str(trained_run.best), "-l", "20", "-s", "1"]
    alone = run(base).stdout
    # by any spelling: /dev//stdout was written as a file (the log replaced)
    spellings = ["/dev/stdout", "/dev//stdout", "/dev/./stdout"]
    spellings += ["/proc/self/../self/fd/1"] * Path("/proc/self/fd").is_dir()
    for through in [*spellings, "fd"]:
        with open(log, "a") as appended:
            if through != "fd":
                r = run([*base, "-o", through], stdout=appended, stderr=subprocess.PIPE)
            else:  # the descriptor's own number in the child: /dev/fd/N
                fd = appended.fileno()
                r = run([*base, "-o", f"/dev/fd/{fd}"], pass_fds=(fd,))
        assert r.returncode == 0, r.stderr
    assert log.read_text() == "kept\n" + alone * (len(spellings) + 1)
    model = tmp_path / "model.pt"
    model.write_bytes(trained_run.best.read_bytes())
    for output in (["-o", "/dev/stdout"], ["-o", "-"], []):  # `>> model.pt` by any name
        with open(model, "a") as appended:
            r = run([*base, *output], stdout=appended, stderr=subprocess.PIPE)
        assert r.returncode == 1 and "holds a saved model" in r.stderr
    assert model.read_bytes() == trained_run.best.read_bytes()
    # a reader that leaves (`-o /dev/stdout | head -c 5`): quiet, exit 0, as for stdout itself
    p = subprocess.Popen(
        command([*base[:-4], "-l", "100000", "-o", "/dev/stdout"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stdout.read(5)
    p.stdout.close()
    assert p.wait(timeout=DEADLINE) == 0 and p.stderr.read() == b""


def test_a_run_folder_that_cannot_be_written_is_named_for_what_failed(tmp_path, monkeypatch):
    """On a read-only disk a run's folder that exists (a resume) cannot be written in; one that
    does not cannot be made: the error says which."""
    from charrnn.runs import folder

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    (tmp_path / "there").mkdir()
    for name, doing, new, then in (
        ("there", "write in the run folder", False, "copy the run folder where you can write"),
        ("there", "write in the run folder", True, "train with another --checkpoint-dir"),
        ("new", "create the run folder", True, "train with another --checkpoint-dir"),
    ):
        monkeypatch.setattr(folder.os, "open", refuse)
        with pytest.raises(RunError, match=f"cannot {doing} .*{name}.*read-only.*; {then}"):
            RunDir(tmp_path / name).session(new=new).__enter__()
        monkeypatch.undo()


def test_a_resume_finds_a_folder_or_metrics_it_cannot_write_before_it_starts(tmp_path, monkeypatch):
    """A run folder of mode 555, or a metrics.jsonl of 444 (for a user other than root: stood in
    for), whose lock file still opens: the resume's session says so at once, with a resume's
    advice (copy the run), not at its first write after 'Resuming'."""
    from charrnn.runs import folder

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.metrics.write_text("")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    for target, where in ((folder, "probe_writable"), (folder, "open")):
        with monkeypatch.context() as m:
            m.setattr(target, where, refuse, raising=False)
            with pytest.raises(RunError, match=r"Permission denied; .*copy the run folder where"):
                run.session().__enter__()
            with run.session(new=True, replacing=True):  # a new run's files: made, not appended
                pass
        run.path.mkdir(exist_ok=True)  # (a replacement that wrote nothing leaves no folder)
        run.metrics.write_text("")


def test_files_that_cannot_be_removed_from_a_run_folder_are_one_error(tmp_path, monkeypatch):
    """--force in a folder whose files cannot be unlinked (a folder of mode 555 for a user other
    than root), and left-over temp files there: one RunError naming the folder, no OSError."""
    run_dir = RunDir(tmp_path / "run")
    run_dir.path.mkdir()
    run_dir.last.write_bytes(b"old")
    (run_dir.path / ".last.pt.x.tmp").write_bytes(b"left over")

    def refuse(self, missing_ok=False):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    for remove, doing in (
        (run_dir.remove_run_files, "replace the run's files in"),
        (lambda: run_dir.session().__enter__(), "remove left-over files in"),
    ):
        with pytest.raises(
            RunError, match=f"cannot {doing} .*run: Permission denied; .*--checkpoint-dir"
        ):
            remove()


def test_any_name_the_file_system_takes_is_written_atomically_and_a_longer_one_is_said(
    tmp_path, trained_run, monkeypatch
):
    """The temporary beside the output (`.NAME.XXXXXXXX.tmp`) is 14 bytes longer than NAME: a
    name of up to 255 bytes (multi-byte characters among them) is written all the same."""
    from charrnn.fsutil import atomic_write

    monkeypatch.chdir(tmp_path)
    names = ["y" * 251 + ".txt", "é" * 125 + ".txt", "y" * 240 + "é" + "y" * 9 + ".txt"]
    for name in names:  # the last one's é stands where the temporary's NAME is cut
        assert len(os.fsencode(name)) in (254, 255)
        atomic_write(Path(name), lambda f: f.write(b"text"))
        assert Path(name).read_bytes() == b"text"
        r = invoke(["sample", "-c", str(trained_run.best), "-l", "3", "-o", name])
        assert r.exit_code == 0 and r.stderr == "" and len(Path(name).read_text()) in (3, 4)
    assert sorted(os.listdir()) == sorted(names)  # no temporary left
    r = invoke(["sample", "-c", str(trained_run.best), "-l", "3", "-o", "y" * 256])
    assert_one_error(r, 1, "File name too long", "give a shorter one")
    # a path past the system's limit, each writer of a file alike (its advice looked for the
    # folders and met the same error)
    deep = str(tmp_path.joinpath(*["d" * 200] * 21, "out"))
    Path("t.txt").write_text("ANNA: the cat.\n")
    best = str(trained_run.best)
    for args in (
        ["sample", "-c", best, "-l", "3", "-o", deep + ".txt"],
        ["export", "-c", best, deep + ".html"],
        ["inspect", "-c", best, "t.txt", "--html", deep + ".html"],
    ):
        assert_one_error(invoke(args), 1, "cannot write the output: ")
