"""Bad input across every command and option: one line, the right exit code, no traceback, and
no file written or changed."""

import hashlib
import io
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_CLI, make_text

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
