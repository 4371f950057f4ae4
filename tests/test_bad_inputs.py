"""Bad input across every command and option: one line, the right exit code, no traceback, and
no file written or changed."""

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import DEADLINE, TINY_CLI, make_text

from charrnn.cli import cli


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-marker",))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with a trained run `tiny` and every kind of bad file."""
    root = tmp_path_factory.mktemp("bad")
    (root / "ok.txt").write_text(make_text(), encoding="utf-8")
    (root / "empty.txt").write_text("")
    (root / "latin.txt").write_bytes("naïve café ".encode("latin-1") * 100)
    (root / "binary.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50)
    (root / "small.txt").write_text("just a few words\n")
    (root / "onechar.txt").write_text("a" * 50_000)
    (root / "hugevocab.txt").write_text("".join(chr(0x10000 + i) for i in range(100_000)))
    (root / "emptydir").mkdir()
    (root / "hiddenonly").mkdir()
    (root / "hiddenonly" / ".notes").write_text("hidden text " * 1000)
    (root / "blocker").write_text("a file where a folder should be")
    (root / "junk.pt").write_bytes(os.urandom(4096))
    (root / "empty.pt").write_bytes(b"")
    buf = io.BytesIO()
    torch.save({"format": "charrnn", "format_version": 1, "x": _Evil()}, buf)
    (root / "evil.pt").write_bytes(buf.getvalue())
    old = os.getcwd()
    os.chdir(root)
    try:
        r = CliRunner().invoke(
            cli, ["train", "ok.txt", "--name", "tiny", *TINY_CLI, "--steps", "20"]
        )
        assert r.exit_code == 0, r.stderr
    finally:
        os.chdir(old)
    weights = torch.load(root / "checkpoints/tiny/best.pt", weights_only=True)["model"]
    torch.save(weights, root / "statedict.pt")  # another tool's plain state_dict
    newer = torch.load(root / "checkpoints/tiny/best.pt", weights_only=True)
    torch.save({**newer, "format_version": 99}, root / "newer.pt")
    return root


CASES = [
    # train: the corpus
    (["train", "missing.txt"], 1, "no such file"),
    (["train", "emptydir"], 1, "holds no files"),
    (["train", "hiddenonly"], 1, "holds no files"),
    (["train", "binary.bin"], 1, "binary file (NUL byte at offset 8)"),
    (["train", "latin.txt"], 1, "not valid utf-8 text: byte 0xef at offset 2"),
    (["train", "empty.txt"], 1, "corpus is empty"),
    (["train", "-"], 1, "corpus is empty (standard input)"),
    (["train", "onechar.txt"], 1, "nothing to learn"),
    (["train", "small.txt"], 1, "split has"),
    (["train", "hugevocab.txt"], 1, "100,000 distinct characters"),
    (["train", "ok.txt", "--encoding", "klingon"], 2, "unknown encoding"),
    # train: sizes and settings
    (["train", "ok.txt", "--hidden", "0"], 2, "--hidden"),
    (["train", "ok.txt", "--layers", "-1"], 2, "--layers"),
    (["train", "ok.txt", "--embedding", "0"], 2, "--embedding"),
    (["train", "ok.txt", "--batch-size", "0"], 2, "--batch-size"),
    (["train", "ok.txt", "--seq-len", "0"], 2, "--seq-len"),
    (["train", "ok.txt", "--batch-size", "5000"], 1, "split has"),
    (["train", "ok.txt", "--steps", "0"], 2, "--steps"),
    (["train", "ok.txt", "--epochs", "-1"], 2, "--epochs"),
    (["train", "ok.txt", "--time", "0s"], 2, "more than zero"),
    (["train", "ok.txt", "--time", "soon"], 2, "not a duration"),
    (["train", "ok.txt", "--lr", "0"], 2, "--lr"),
    (["train", "ok.txt", "--dropout", "1"], 2, "--dropout"),
    (["train", "ok.txt", "--val-frac", "0"], 2, "--val-frac"),
    (["train", "ok.txt", "--size", "huge"], 2, "--size"),
    (["train", "ok.txt", "--device", "tpu"], 2, "--device"),
    # nan passes every range check (its comparisons are all false): each number option refuses it
    *[
        (["train", "ok.txt", option, "nan"], 2, f"'{option}': 'nan' is not a number")
        for option in ("--lr", "--dropout", "--val-frac", "--epochs", "--weight-decay")
    ],
    (["train", "ok.txt", "--sample-temp", "nan"], 2, "'--sample-temp': 'nan' is not a number"),
    # ... and inf, or a number too big for a float, where a range has no upper end
    *[
        (["train", "ok.txt", option, value], 2, f"'{option}': '{value}' is not a finite number")
        for option in ("--lr", "--epochs", "--sample-temp")
        for value in ("inf", "1e400")
    ],
    (["train", "ok.txt", "--checkpoint-dir", "blocker"], 2, "is a file"),
    # train: runs
    (["train"], 2, "give a CORPUS"),
    (["train", "ok.txt", "--name", "tiny"], 1, "already exists"),
    (["train", "--resume", "nothing"], 1, "no run 'nothing'"),
    (["train", "--resume", "tiny"], 1, "already used its budget"),
    (["train", "--resume", "tiny", "--lr", "1", "--steps", "99"], 2, "--lr cannot change"),
    (["train", "--resume", "tiny", "--steps", "99", "--checkpoint-dir", "emptydir"], 1, "no run"),
    # sample
    (["sample", "-c", "missing.pt"], 1, "no checkpoint file or run folder"),
    (["sample", "-c", "junk.pt"], 1, "junk.pt is not a charrnn checkpoint (not a torch archive)"),
    (["sample", "-c", "empty.pt"], 1, "not a charrnn checkpoint (the file is empty)"),
    (["sample", "-c", "statedict.pt"], 1, "not a charrnn checkpoint"),
    (["sample", "-c", "evil.pt"], 1, "refused: it asks to load posix.system"),
    (["sample", "-c", "newer.pt"], 1, "format version 99, newer than this charrnn reads"),
    (["score", "ok.txt", "-c", "junk.pt"], 1, "not a charrnn checkpoint"),
    (["score", "missing.txt", "-c", "tiny"], 1, "cannot read missing.txt"),
    (["score", "empty.txt", "-c", "tiny"], 1, "nothing to score"),
    (["sample", "-c", "emptydir"], 1, "no run"),
    (["sample", "--checkpoint-dir", "emptydir"], 1, "no trained runs"),
    (["sample", "--temp", "-1"], 2, "--temp"),
    (["sample", "--top-k", "0"], 2, "--top-k"),
    (["sample", "--top-p", "1.5"], 2, "--top-p"),
    (["sample", "--length", "-5"], 2, "--length"),
    (["sample", "--length", "10000000000"], 2, "--length"),
    (["sample", "--prime", "Zebra €"], 1, "never seen: 'Z' (U+005A) at 1; 'b' (U+0062) at 3; '€'"),
    (["sample", "--device", "tpu"], 2, "--device"),
    # inspect
    (["inspect", "ok.txt", "-c", "evil.pt"], 1, "refused: it asks to load posix.system"),
    (["inspect", "ok.txt", "-c", "junk.pt"], 1, "not a charrnn checkpoint"),
    (["inspect", "missing.txt", "-c", "tiny"], 1, "cannot read missing.txt"),
    (["inspect", "emptydir", "-c", "tiny"], 1, "cannot read emptydir"),
    (["inspect", "empty.txt", "-c", "tiny"], 1, "nothing to inspect"),
    (["inspect", "binary.bin", "-c", "tiny"], 1, "binary"),
    (["inspect", "latin.txt", "-c", "tiny"], 1, "not valid utf-8 text"),
    (["inspect", "small.txt", "-c", "tiny"], 1, "never seen: 'j' (U+006A) at 1"),
    (["inspect", "ok.txt", "-c", "tiny", "--html", "emptydir"], 2, "--html"),
    (["inspect", "ok.txt", "-c", "tiny", "--html", "nowhere/p.html"], 1, "cannot write"),
    (["inspect", "ok.txt", "-c", "tiny", "--html", ""], 2, "is empty"),
    (["inspect", "ok.txt", "-c", "tiny", "--max-chars", "0"], 2, "--max-chars"),
    (["inspect", "-c", "tiny", "--sample", "0"], 2, "--sample"),
    (["inspect", "-c", "tiny", "--sample", "5", "--prime", "Zebra"], 1, "never seen: 'Z'"),
    (["inspect", "ok.txt", "-c", "tiny", "--show", "gates"], 2, "--show"),
    (["inspect", "ok.txt", "-c", "tiny", "--color", "sometimes"], 2, "--color"),
    # elsewhere
    (["corpus", "get", "nonesuch"], 1, "no corpus named"),
    (["runs", "--checkpoint-dir", "blocker"], 2, "is a file"),
    (["bogus"], 2, "No such command"),
]


def snapshot(root: Path) -> dict[str, str]:
    """Every file's content hash. Lock files aside (taking a lock writes the holder's pid), and
    the encoded-corpus cache: a valid corpus may be cached before a later check fails."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock" and "encoded" not in p.relative_to(root).parts
    }


@pytest.mark.parametrize(
    ("args", "code", "message"),
    CASES,
    ids=lambda a: " ".join(map(str, a)) if isinstance(a, list) else None,
)
def test_bad_input(workspace, monkeypatch, args, code, message):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(workspace / "cache"))
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
    before = snapshot(workspace)
    r = CliRunner().invoke(cli, args, input="", catch_exceptions=False)
    assert r.exit_code == code, r.stderr + r.stdout
    assert message in r.stderr, r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr
    if code == 1:
        assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert snapshot(workspace) == before  # nothing written, nothing changed
    assert not (workspace / "pwned-marker").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_a_gpu(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    r = CliRunner().invoke(cli, ["train", "ok.txt", "--device", "cuda"])
    assert r.exit_code == 1 and "no CUDA GPU" in r.stderr and r.stderr.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# Every command and option that reads a file the user names reads it by train's rules (one place:
# sources.input_file and sources.read_all): a device is refused before a byte of it is read (read
# whole, /dev/zero fills the memory), a folder is refused where a file is meant, binary content
# stops the reading with train's message, and a pipe (a FIFO, /dev/stdin, '-') is read.

FILE_READERS = {  # each reader of a FILE the user names, "{}" standing for the file
    "train CORPUS": ["train", "{}", *TINY_CLI, "--steps", "1", "--device", "cpu"],
    "score FILE": ["score", "{}", "-c", "tiny"],
    "inspect FILE": ["inspect", "{}", "-c", "tiny"],
    "sample --prime-file": ["sample", "-c", "tiny", "--prime-file", "{}", "-l", "5"],
}
STDIN_READERS = {  # ... and each reader of standard input, '-'
    "train -": ["train", "-", *TINY_CLI, "--steps", "1", "--device", "cpu"],
    "score -": ["score", "-", "-c", "tiny"],
    "inspect -": ["inspect", "-", "-c", "tiny"],
    "sample --prime -": ["sample", "-c", "tiny", "--prime", "-", "-l", "5"],
    "inspect --sample --prime -": ["inspect", "-c", "tiny", "--sample", "5", "--prime", "-"],
}
DEVICES = [d for d in ("/dev/zero", "/dev/urandom") if Path(d).is_char_device()]
MEMORY_CAP = 4 << 30  # the address space of the process below: torch takes about 1 GiB of it

# Runs the cases of argv[1] through CliRunner in one process (torch imported once), fd 0 of each
# "/dev/stdin" case a pipe holding its text, and prints what each did as one JSON object.
DRIVER = """
import json, os, sys
from click.testing import CliRunner
from charrnn.cli import cli

done = {}
for key, args, stdin, text in json.loads(sys.argv[1]):
    if text is not None:  # `... | charrnn ARGS`: fd 0 a pipe, the text in it, its writer gone
        r, w = os.pipe()
        os.write(w, text.encode())
        os.close(w)
        os.dup2(r, 0)
        os.close(r)
    with open(stdin or os.devnull, "rb") as f:
        result = CliRunner().invoke(cli, args, input=f)
    failed = not isinstance(result.exception, (SystemExit, type(None)))
    done[key] = [result.exit_code, result.stdout, result.stderr, failed and repr(result.exception)]
print(json.dumps(done))
"""


def command(template: list[str], file: str, runs: Path) -> list[str]:
    """The reader's command line for `file`; train writes its run under `runs`."""
    args = [file if a == "{}" else a for a in template]
    return [*args, "--checkpoint-dir", str(runs)] if args[0] == "train" else args


@pytest.fixture(scope="module")
def in_process_of_its_own(workspace, tmp_path_factory) -> dict:
    """What each reader did with a device as FILE, a device as stdin (`- < /dev/zero`), and
    /dev/stdin fed by a pipe, run in a process of its own with its memory capped: a reader that
    read a device whole would end there in a MemoryError, not take this machine's memory. The
    timeout only guards against a hang: the process ends by itself, in seconds."""
    import resource

    runs = tmp_path_factory.mktemp("device-runs")
    cases = [
        (f"{reader} {device}", command(FILE_READERS[reader], device, runs), None, None)
        for reader in FILE_READERS
        for device in DEVICES
    ]
    cases += [
        (f"{reader} < {device}", command(STDIN_READERS[reader], "-", runs), device, None)
        for reader in STDIN_READERS
        for device in DEVICES
    ]
    cases += [
        (f"{reader} /dev/stdin", command(FILE_READERS[reader], "/dev/stdin", runs), None, text)
        for reader in FILE_READERS
        for text in [make_text(4000)]
    ]

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    env = {**os.environ, "CHARRNN_CACHE_DIR": str(workspace / "cache")}
    env.pop("CHARRNN_CHECKPOINT_DIR", None)
    p = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(cases)],
        cwd=workspace,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        preexec_fn=cap,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def assert_one_error(code: int, stdout: str, stderr: str, message: str) -> None:
    assert code == 1, stderr
    assert stdout == "" and "Traceback" not in stderr, stderr
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr, stderr


@pytest.fixture
def in_workspace(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(workspace / "cache"))
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
    return workspace


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reader", FILE_READERS)
def test_every_reader_refuses_a_device(in_process_of_its_own, reader, device):
    code, stdout, stderr, failed = in_process_of_its_own[f"{reader} {device}"]
    assert not failed, failed  # e.g. a MemoryError: the device was read whole
    assert_one_error(code, stdout, stderr, f"{device} is not a file")
    assert "pipe it in and use" in stderr and "to read standard input" in stderr


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reader", STDIN_READERS)
def test_every_reader_of_stdin_stops_a_device_at_its_first_binary_chunk(
    in_process_of_its_own, reader, device
):
    """`charrnn ... - < /dev/zero`: stdin is read in chunks, each checked: the first NUL ends it."""
    code, stdout, stderr, failed = in_process_of_its_own[f"{reader} < {device}"]
    assert not failed, failed
    assert_one_error(code, stdout, stderr, "looks like a binary file (NUL byte at offset")


@pytest.mark.parametrize("reader", FILE_READERS)
def test_every_reader_reads_dev_stdin_fed_by_a_pipe(in_process_of_its_own, reader):
    """`make_text | charrnn score /dev/stdin`: a pipe, under a name that looks like a device's."""
    code, stdout, stderr, failed = in_process_of_its_own[f"{reader} /dev/stdin"]
    assert not failed, failed
    assert code == 0 and stdout and "Traceback" not in stderr, stderr


@pytest.mark.parametrize("reader", FILE_READERS)
def test_every_reader_refuses_a_folder_and_binary_content(in_workspace, tmp_path, reader):
    folder = "holds no files" if reader == "train CORPUS" else "emptydir: Is a directory"
    binary = "binary.bin looks like a binary file (NUL byte at offset 8); give text files"
    for file, message in (("emptydir", folder), ("binary.bin", binary)):
        r = CliRunner().invoke(cli, command(FILE_READERS[reader], file, tmp_path))
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
        assert_one_error(r.exit_code, r.stdout, r.stderr, message)


@pytest.mark.parametrize("reader", STDIN_READERS)
def test_every_reader_of_stdin_stops_at_binary_content(in_workspace, tmp_path, reader):
    data = (in_workspace / "binary.bin").read_bytes()
    r = CliRunner().invoke(cli, command(STDIN_READERS[reader], "-", tmp_path), input=data)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert_one_error(r.exit_code, r.stdout, r.stderr, "binary file (NUL byte at offset 8)")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
@pytest.mark.parametrize("reader", FILE_READERS)
def test_every_reader_reads_a_named_pipe(in_workspace, tmp_path, reader):
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    # Opening a FIFO to write blocks until a reader opens it: the writer is a thread of its own.
    text = make_text(4000).encode()
    writer = threading.Thread(target=fifo.write_bytes, args=(text,), daemon=True)
    writer.start()
    r = CliRunner().invoke(cli, command(FILE_READERS[reader], str(fifo), tmp_path / "runs"))
    assert r.exit_code == 0 and r.stdout and "Traceback" not in r.stderr, r.stderr
    writer.join(DEADLINE)


@pytest.mark.parametrize("reader", STDIN_READERS)
def test_every_reader_of_stdin_reads_text(in_workspace, tmp_path, reader):
    text = make_text(4000) if reader == "train -" else "ANNA:\n"  # a corpus, or a prime
    r = CliRunner().invoke(cli, command(STDIN_READERS[reader], "-", tmp_path), input=text)
    assert r.exit_code == 0 and r.stdout and "Traceback" not in r.stderr, r.stderr
