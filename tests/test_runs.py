"""Finding runs and checkpoints whatever the checkpoint folder holds (damaged, untrained and oddly
named runs beside good ones), every way of naming one with -c, --resume and --checkpoint-dir, the
names a user types, and advice on resuming that fits what is there.

A --name is either refused (exit 2, one `Error:` line naming the name to use instead) or kept
exactly, then found by `-c NAME`, `--resume NAME` and `runs`; a lookup of a name that charrnn
would have cleaned names the run it means. A damaged last.pt beside a good best.pt is answered with
`--resume RUN/best.pt`, in the folder as the user gave it, never with --force; and --resume takes
a run's best.pt or last.pt as a file."""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import json
import math
import os
import pwd
import re
import shlex
import shutil
import tempfile
import unicodedata
from pathlib import Path

import pytest
import torch
from conftest import TINY_CLI, make_text
from helpers.cli import assert_one_error, ended, invoke
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from charrnn import checkpoint, runs
from charrnn.cli.common import cache_dir
from charrnn.errors import CheckpointError, CorpusError, RunError
from charrnn.runs import RunDir, is_path
from charrnn.text.encoded import encode_text
from charrnn.train.resume import resume
from charrnn.train.trainer import StepEvent

# What each kind of run folder is made of; None: absent. "good" and "bad last" can be sampled.
KINDS = {
    "good": ("best", "last"),
    "bad last": ("best", "junk"),
    "step 0": (None, "step0"),  # killed at start-up: only the step-0 last.pt
    "stopped": (None, "step7"),  # stopped before its first evaluation
    "bad best": ("junk", "last"),
    "text": ("text", "text"),
    "truncated": ("cut", "cut"),
    "empty": ("empty", None),
    "best is a folder": ("folder", "last"),
    "binary metrics": ("best", "last"),
}


SAMPLEABLE = {"good", "bad last", "binary metrics"}


UNTRAINED = {"step 0", "stopped"}


NOT_RUNS = ("a plain file", "metrics only", "empty folder")  # never listed


BROKEN = ("broken link", "link loop")  # listed as damaged


NAME = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="/\\")
    | st.sampled_from(list("[]\t ü€漢\\")),
    min_size=1,
    max_size=12,
).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)


@pytest.fixture(scope="module")
def files(trained_run, tmp_path_factory) -> dict[str, Path]:
    """The files run folders are made of, made once: good, untrained and damaged checkpoints."""
    where = tmp_path_factory.mktemp("parts")
    parts = {"best": trained_run.best, "last": trained_run.last}
    payload = torch.load(trained_run.last, weights_only=True)
    for name, step in (("step0", 0), ("step7", 7)):
        changed = {**payload, "trainer": {**payload["trainer"], "step": step}, "metrics": []}
        checkpoint.save(
            {k: v for k, v in changed.items() if not k.startswith("format")}, where / name
        )
        parts[name] = where / name
    stuck = {k: v for k, v in payload.items() if not k.startswith("format") and k != "digests"}
    stuck["model"] = {k: v.clone() for k, v in payload["model"].items()}
    stuck["model"]["head.bias"][0] = 1e4  # a trained run that writes character 0 for ever
    checkpoint.save(stuck, where / "stuck")
    parts["stuck"] = where / "stuck"
    blob = trained_run.best.read_bytes()
    for name, content in (
        ("junk", os.urandom(3000)),
        ("text", b"ANNA:\nthe cat sat on a mat.\n"),
        ("cut", blob[: len(blob) // 2]),
        ("empty", b""),
    ):
        (where / name).write_bytes(content)
        parts[name] = where / name
    return parts


def make_run(base: Path, name: str, kind: str, files: dict[str, Path]) -> None:
    """One entry of a checkpoint folder, of `kind` (a KINDS key, or one of NOT_RUNS or BROKEN)."""
    path = base / name
    if kind == "a plain file":
        path.write_text("notes")
    elif kind == "broken link":
        path.symlink_to(base / "nowhere" / "at all")
    elif kind == "link loop":
        path.symlink_to(path)
    else:
        path.mkdir()
        if kind == "metrics only":  # killed before its step-0 checkpoint: not a run yet
            (path / "metrics.jsonl").write_text("")
        for target, part in zip(("best.pt", "last.pt"), KINDS.get(kind, (None, None)), strict=True):
            if part == "folder":
                (path / target).mkdir()
            elif part is not None:
                shutil.copyfile(files[part], path / target)
        if kind == "binary metrics":
            (path / "metrics.jsonl").write_bytes(b'{"step": 1\xff\xfe\x00\n[1]\n"val_bpc"\n')


@contextlib.contextmanager
def workspace():
    """An empty current folder of its own (hypothesis runs many examples in one test)."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as where:
        os.chdir(where)
        try:
            yield Path(where)
        finally:
            os.chdir(old)


@pytest.fixture(autouse=True)
def _no_checkpoint_dir_env(monkeypatch):
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)


def assert_contract(r, ok_codes=(0,)):
    """Exit 0 (or another code the caller allows), or 1 with exactly one `Error:` line and
    nothing on stdout, or 2 for usage; never a traceback."""
    if r.exit_code in (1, 2):
        assert_one_error(r, r.exit_code)
        assert r.exit_code == 1 or "Usage:" in r.stderr
    else:
        assert "Traceback" not in r.stderr and r.exit_code in ok_codes, (r.exit_code, r.stderr)


def tsv(field: str) -> str:
    """A field as piped `runs` writes it: a backslash doubled, a tab, anything a reader may take
    for a line break and any other control character written as its Python escape."""
    out = field.replace("\\", "\\\\")
    for c in "".join(map(chr, [*range(32), 127])):
        out = out.replace(c, c.encode("unicode_escape").decode())
    for c in "\u2028\u2029" + "".join(map(chr, range(128, 160))):  # \u00NN: \xNN is a byte's
        out = out.replace(c, f"\\u{ord(c):04x}")
    return out


# -------------------------------------------------------- the checkpoint folder, in the command


def test_sample_uses_the_latest_run_and_writes_only_text(env, files):
    (Path("checkpoints")).mkdir()
    make_run(Path("checkpoints"), "tiny", "good", files)
    a = env(["sample", "--length", "80", "--seed", "3"])
    assert a.exit_code == 0 and a.stderr == ""
    assert a.stdout == ended(a.stdout[:80])
    assert env(["sample", "--length", "80", "--seed", "3"]).stdout == a.stdout
    primed = env(["sample", "--prime", "ANNA:", "--length", "20", "--seed", "3"])
    assert primed.stdout.startswith("ANNA:") and primed.stdout == ended(primed.stdout[:25])
    quiet = env(["sample", "--prime", "ANNA:", "-l", "20", "-s", "3", "--no-echo-prime"])
    assert quiet.stdout == primed.stdout[5:]


def test_checkpoint_option_takes_a_file_a_folder_or_a_name(env, files, tmp_path):
    """Each way of naming run `tiny` samples its best.pt (or the file named), never the latest
    run `other`, whose text is all one character."""
    (tmp_path / "checkpoints").mkdir()
    make_run(tmp_path / "checkpoints", "tiny", "good", files)
    (tmp_path / "checkpoints" / "other").mkdir()  # the latest run
    for name in ("best.pt", "last.pt"):
        (tmp_path / "checkpoints" / "other" / name).write_bytes(files["stuck"].read_bytes())
    greedy = ["-l", "10", "-s", "1", "-t", "0"]
    text = {
        part: env(["sample", "-c", str(files[part]), *greedy]).stdout
        for part in ("best", "last", "stuck")
    }
    assert len(set(text["stuck"])) == 1 and text["stuck"] not in (text["best"], text["last"])
    assert env(["sample", *greedy]).stdout == text["stuck"]  # no -c: the latest run
    for ref, part in (
        ("tiny", "best"),
        ("checkpoints/tiny", "best"),
        ("checkpoints/tiny/last.pt", "last"),
        (str(tmp_path / "checkpoints/tiny"), "best"),
    ):
        r = env(["sample", "-c", ref, *greedy])
        assert r.exit_code == 0 and r.stdout == text[part], (ref, r.stderr)
        assert text[part] == ended(text[part][:10])


def test_checkpoint_dir_option_and_environment_variable(env, corpus_file, tmp_path, monkeypatch):
    r = env(
        ["train", str(corpus_file), *TINY_CLI, "--steps", "30", "--checkpoint-dir", "elsewhere"]
    )
    assert r.stdout.startswith(os.path.join("elsewhere", "tiny"))
    monkeypatch.setenv("CHARRNN_CHECKPOINT_DIR", str(tmp_path / "elsewhere"))
    assert env(["sample", "-l", "5"]).exit_code == 0
    assert "tiny" in env(["runs"]).stdout


def test_tilde_is_expanded_in_the_environment(files, monkeypatch):
    with workspace() as root:
        monkeypatch.setenv("HOME", str(root))
        (root / "models").mkdir()
        make_run(root / "models", "a", "good", files)
        monkeypatch.setenv("CHARRNN_CHECKPOINT_DIR", "~/models")
        r = invoke(["runs"])
        assert r.exit_code == 0 and f"{root}/models/a" in r.stdout
        assert invoke(["sample", "-l", "5"]).exit_code == 0
        monkeypatch.setenv("CHARRNN_CACHE_DIR", "~/cache")
        assert cache_dir() == root / "cache"
    # unset: XDG's folder where it is absolute; an empty HOME is no home (not the root folder)
    monkeypatch.delenv("CHARRNN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x")
    assert cache_dir() == Path("/x/charrnn")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    account = Path(pwd.getpwuid(os.getuid()).pw_dir)
    for home in ("", "relative"):
        monkeypatch.setenv("HOME", home)
        assert cache_dir() == account / ".cache" / "charrnn"


# ------------------------------------------------------------------------ any checkpoint folder


LAYOUT = st.dictionaries(
    NAME, st.sampled_from([*KINDS, *NOT_RUNS, *BROKEN]), min_size=1, max_size=6
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(layout=LAYOUT)
@example(layout={"\x85": "good"})  # found in review: a line break that only some readers see
@example(layout={"a\u2028b": "good", "c\x0bd": "step 0"})
def test_any_checkpoint_folder_lists_every_run_and_samples_a_trained_one(files, layout):
    with workspace() as root:
        base = root / "checkpoints"
        base.mkdir()
        for name, kind in layout.items():
            make_run(base, name, kind, files)
        listed = {n: k for n, k in layout.items() if k not in NOT_RUNS}

        r = invoke(["runs", "--json"])
        assert_contract(r)
        records = {rec["run"]: rec for rec in map(json.loads, r.stdout.splitlines())}
        assert set(records) == set(listed), r.stdout
        for name, kind in listed.items():
            rec = records[name]
            if kind in ("good", "binary metrics"):
                assert (rec["status"], rec["step"], rec["note"]) == ("ok", 200, "")
                assert rec["evaluations"] > 0 and rec["best_val_bpc"] > 0
            elif kind in UNTRAINED:
                assert rec["status"] == "untrained" and rec["step"] in (0, 7)
                assert "not trained to its first evaluation" in rec["note"]
            else:
                assert rec["status"] == "damaged" and rec["note"].startswith("damaged: ")
                assert "\n" not in rec["note"]

        r = invoke(["runs"])  # piped: tab-separated, complete, no markup read
        assert_contract(r)
        lines = r.stdout.splitlines()
        if not listed:
            assert r.stdout == "" and r.stderr.startswith("no runs in checkpoints")
            lines = ["run"]
        assert lines[0].split("\t")[0] == "run" and len(lines) == len(listed) + 1
        rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
        assert set(rows) == {tsv(n) for n in listed}
        for name, kind in listed.items():
            row = rows[tsv(name)]
            assert len(row) == 10 and row[6] == tsv(f"checkpoints/{name}") and row[8] == ""
            if kind in ("good", "binary metrics"):
                assert row[1] == "LSTM 2x24" and row[2] == "200" and row[7] == ""
                assert row[9] == "steps"  # how it ended: its steps spent
                assert re.fullmatch(r"\d+\.\d", row[3])  # seconds, plain for a script

        r = invoke(["sample", "-l", "5", "-s", "1"])
        assert_contract(r)
        if any(kind in SAMPLEABLE for kind in layout.values()):
            assert r.exit_code == 0 and r.stdout == ended(r.stdout[:5]), r.stderr
            assert r.stderr == "" or (
                r.stderr.startswith("Note: using run ") and r.stderr.count("\n") == 1
            ), r.stderr
        else:
            assert r.exit_code == 1 and "no trained runs in checkpoints" in r.stderr


SPEC = st.one_of(
    NAME,
    NAME.map(lambda n: f"checkpoints/{n}"),
    NAME.map(lambda n: f"./{n}"),
    NAME.map(lambda n: f"checkpoints/{n}/last.pt"),
    st.sampled_from(["", ".", "..", "checkpoints", "x.pt", "~", "/", "checkpoints/"]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    layout=LAYOUT,
    spec=SPEC,
    here=st.booleans(),
    base=st.sampled_from(["", ".", "checkpoints", "nowhere", "afile"]),
)
@example(layout={"a": "stopped", "b": "step 0"}, spec="a", here=False, base="")
@example(layout={"a": "stopped", "b": "step 0"}, spec="b", here=False, base="")
def test_any_checkpoint_and_checkpoint_dir_value_keeps_the_contract(
    files, layout, spec, here, base
):
    with workspace() as root:
        (root / "checkpoints").mkdir()
        (root / "afile").write_text("a file where a folder should be")
        for name, kind in layout.items():
            make_run(root / "checkpoints", name, kind, files)
            if here and not os.path.lexists(name):  # a bare name never means these
                make_run(root, name, "bad best", files)
        r = invoke(["sample", "-c", spec, "-l", "5", "-s", "1"])
        assert_contract(r)
        if spec == "":
            assert r.exit_code == 2 and "is empty" in r.stderr
        elif not is_path(spec) and layout.get(spec) in ("good", "bad last", "binary metrics"):
            # the run, not ./spec
            assert r.exit_code == 0 and r.stdout == ended(r.stdout[:5]), r.stderr
        elif not is_path(spec) and layout.get(spec) in UNTRAINED:
            assert r.exit_code == 1 and "has not trained to its first evaluation" in r.stderr
            # its last.pt: untrained at step 0, else as far as the run got (step 7)
            held = "untrained weights" if layout[spec] == "step 0" else "weights at step 7 "
            assert held in r.stderr, r.stderr
        for args in (
            ["runs", "--checkpoint-dir", base],
            ["runs", "--json", "--checkpoint-dir", base],
        ):
            r = invoke(args)
            assert_contract(r)
            if base in ("", "afile"):
                assert r.exit_code == 2
        r = invoke(["sample", "--checkpoint-dir", base, "-l", "5", "-s", "1"])
        assert_contract(r)
        r = invoke(["train", "--resume", spec, "--steps", "1", "-q"])
        assert_contract(r, ok_codes=())  # no run here can be resumed: the corpus is not here


# -------------------------------------------------------------- one class at a time, by example


def test_an_unreadable_run_folder_is_listed_as_damaged_and_hides_nothing(files, monkeypatch):
    """A folder without permission (simulated: the tests may run as root, whom nothing stops)."""
    real_stat = os.stat

    def stat(path, *a, **kw):
        if "locked" in Path(os.fsdecode(path)).parts[:-1]:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_stat(path, *a, **kw)

    with workspace() as root:
        base = root / "checkpoints"
        base.mkdir()
        make_run(base, "good", "good", files)
        make_run(base, "locked", "good", files)
        monkeypatch.setattr(os, "stat", stat)
        r = invoke(["runs"])
        assert r.exit_code == 0, r.stderr
        rows = {line.split("\t")[0]: line.split("\t") for line in r.stdout.splitlines()[1:]}
        assert rows["good"][2] == "200" and rows["good"][7] == ""
        assert (
            rows["locked"][7]
            == "damaged: cannot read checkpoints/locked/last.pt: Permission denied"
        )
        r = invoke(["sample", "-l", "5", "-s", "1"])
        assert r.exit_code == 0 and r.stdout == ended(r.stdout[:5])
        r = invoke(["sample", "-c", "locked"])
        assert r.exit_code == 1 and r.stderr == (
            "Error: cannot read checkpoints/locked/best.pt: Permission denied\n"
        )
        # a new run over it: one line, before anything is trained
        Path("t.txt").write_text("ANNA: the cat sat on the mat.\n" * 200)
        r = invoke(["train", "t.txt", "--name", "locked", "--force", *TINY_CLI, "--steps", "2"])
        assert_one_error(r, 1, "cannot read checkpoints/locked/", "Permission denied")
        # where this user may not search the folder (what a stat's EACCES means), it is named
        real_access = os.access
        closed = os.path.abspath(base / "locked")
        monkeypatch.setattr(
            os, "access", lambda p, mode: os.fspath(p) != closed and real_access(p, mode)
        )
        for args in (["sample", "-c", "locked"], ["plot", "locked"]):
            line = assert_one_error(invoke(args), 1, f"may not open its folder {closed} (")
            assert line.startswith("Error: cannot read checkpoints/locked/best.pt: this user")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_a_folder_without_permission_for_real(files):
    with workspace() as root:
        (root / "checkpoints").mkdir()
        make_run(root / "checkpoints", "good", "good", files)
        make_run(root / "checkpoints", "locked", "good", files)
        (root / "checkpoints" / "locked").chmod(0)
        try:
            r = invoke(["runs", "--json"])
            status = {rec["run"]: rec["status"] for rec in map(json.loads, r.stdout.splitlines())}
            assert status == {"good": "ok", "locked": "damaged"}
            assert invoke(["sample", "-l", "5"]).exit_code == 0
        finally:
            (root / "checkpoints" / "locked").chmod(0o755)


def test_a_run_that_never_trained_is_never_sampled_silently(files):
    with workspace() as root:
        base = root / "checkpoints"
        base.mkdir()
        make_run(base, "cut", "step 0", files)
        r = invoke(["sample", "-l", "5"])
        # trained on a text in memory: the advice pipes it again
        line = assert_one_error(r, 1, "`... | charrnn train - --resume cut`")
        assert line.startswith("Error: no trained runs in checkpoints: 'cut': not trained to")
        r = invoke(["sample", "-c", "cut", "-l", "5"])
        assert r.exit_code == 1 and "give the file checkpoints/cut/last.pt instead" in r.stderr
        # named as a file, it is the user's explicit choice
        assert invoke(["sample", "-c", "checkpoints/cut/last.pt", "-l", "5"]).exit_code == 0
        make_run(base, "older", "good", files)
        for p in (base / "older").iterdir():
            os.utime(p, (0, 0))
        r = invoke(["sample", "-l", "5", "-s", "1"])
        assert r.exit_code == 0 and r.stdout == ended(r.stdout[:5])
        assert r.stderr.startswith("Note: using run 'older', skipping newer runs")
        assert "'cut': not trained" in r.stderr and r.stderr.count("\n") == 1
        r = invoke(["score", "-c", "cut", "-"], input="ANNA:\n")
        assert r.exit_code == 1 and "has not trained to its first evaluation" in r.stderr
        # in another checkpoint folder: the advice names the folder, as a resume needs it
        os.rename(base, root / "ck2")
        r = invoke(["sample", "-c", "cut", "--checkpoint-dir", "ck2"])
        assert "continue it with `... | charrnn train - --resume ck2/cut`" in r.stderr
        [rec] = [
            json.loads(x)
            for x in invoke(["runs", "--json", "--checkpoint-dir", "ck2"]).stdout.splitlines()
            if '"cut"' in x
        ]
        assert rec["note"].endswith("continue it with `... | charrnn train - --resume ck2/cut`")


def test_a_bare_name_is_a_run_and_a_path_is_a_path(files):
    with workspace() as root:
        base = root / "checkpoints"
        base.mkdir()
        make_run(base, "tiny", "good", files)
        make_run(root, "tiny", "bad best", files)  # a same-named folder here
        make_run(base, "x.pt", "good", files)
        assert invoke(["sample", "-c", "tiny", "-l", "5"]).exit_code == 0
        r = invoke(["sample", "-c", "./tiny", "-l", "5"])
        assert r.exit_code == 1 and "tiny/best.pt is not a charrnn checkpoint" in r.stderr
        make_run(root, "other", "good", files)
        r = invoke(["sample", "-c", "other"])
        assert r.exit_code == 1 and "no run 'other' in checkpoints" in r.stderr
        assert "write ./other" in r.stderr
        assert invoke(["sample", "-c", "./other", "-l", "5"]).exit_code == 0
        r = invoke(["sample", "-c", "x.pt"])  # ends in .pt: a file path, not the run x.pt
        assert r.exit_code == 1 and "no checkpoint file or run folder at x.pt" in r.stderr
        r = invoke(["sample", "-c", "x.pt/best.pt"])  # a run's file, named from inside its base
        assert_one_error(r, 1, "at x.pt/best.pt; did you mean checkpoints/x.pt/best.pt?")
        (base / "notes.txt").write_text("not a model\n")  # a text file there: never offered
        r = invoke(["sample", "-c", "notes.txt"])
        assert "did you mean" not in assert_one_error(r, 1, "no run 'notes.txt'")
        r = invoke(["sample", "-c", "nowhere/best.pt"])
        assert_one_error(r, 1, "give a run's name (`charrnn runs` lists them) or a checkpoint's")
        assert invoke(["sample", "-c", "checkpoints/x.pt", "-l", "5"]).exit_code == 0
        r = invoke(["train", "--resume", "other"])
        assert r.exit_code == 1 and "no run 'other' in checkpoints" in r.stderr
    assert "a value with a / or ending in .pt" in " ".join(
        invoke(["sample", "--help"]).stdout.split()
    )
    assert "As for" not in invoke(["score", "--help"]).stdout


def test_an_empty_argument_is_a_usage_error(files):
    with workspace() as root:
        make_run(root, "run", "good", files)
        for args in (
            ["sample", "-c", ""],
            ["score", "-c", "", "-"],
            ["sample", "--checkpoint-dir", ""],
            ["runs", "--checkpoint-dir", ""],
            ["train", "--resume", ""],
            ["train", "x.txt", "--checkpoint-dir", ""],
        ):
            r = invoke(args, input="")
            assert r.exit_code == 2 and "is empty" in r.stderr and r.stdout == "", args
        os.chdir(root / "run")
        os.remove("best.pt")
        os.remove("last.pt")
        r = invoke(["train", "--resume", "."])
        assert r.exit_code == 1 and r.stderr == (
            "Error: the run folder . holds no checkpoint; `charrnn runs` lists the runs\n"
        )
    assert RunDir(Path(".")).name == "." and RunDir(Path("a/b")).name == "b"


def test_piped_runs_are_plain_and_complete_and_a_terminal_gets_a_table(files, monkeypatch):
    from click.testing import _NamedTextIOWrapper

    with workspace() as root:
        base = root / ("deep" * 30) / "checkpoints"
        base.mkdir(parents=True)
        name = "[bold red]x[red] y ü"
        make_run(base, name, "good", files)
        r = invoke(["runs", "--checkpoint-dir", str(base)])
        assert r.exit_code == 0
        assert r.stdout.splitlines()[1].split("\t")[:3:2] == [name, "200"]
        assert f"{base}/{name}" in r.stdout and "…" not in r.stdout and "\x1b" not in r.stdout
        monkeypatch.setattr(_NamedTextIOWrapper, "isatty", lambda self: True)
        monkeypatch.setenv("COLUMNS", "400")
        r = invoke(["runs", "--checkpoint-dir", str(base)])
        assert r.exit_code == 0 and name in r.stdout and f"{base}/{name}" in r.stdout
        assert "…" not in r.stdout and "\t" not in r.stdout
        # on a terminal, the columns empty in every row leave room for the others
        head = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout.splitlines()[0]).split()  # styles left out
        assert "note" not in head and "from" not in head and head[-1] == "ended"
        # a narrow terminal: the spare columns go, in their order, rather than every cell folding
        monkeypatch.setenv("COLUMNS", "80")
        r = invoke(["runs", "--checkpoint-dir", str(base)])
        lines = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout).splitlines()
        assert r.exit_code == 0 and max(map(len, lines)) <= 80
        assert name in lines[1] and "folder" not in lines[0] and "200" in lines[1]
        caption = lines[-1].strip()  # "from", empty in every row, was never shown
        assert caption.startswith("(left out at this width: folder") and "from" not in caption
        # a run's name is what the user types: never folded, however narrow the terminal
        make_run(base, "interrupted_shakespeare_run", "good", files)
        for columns in ("50", "80", "100"):
            monkeypatch.setenv("COLUMNS", columns)
            shown = re.sub(
                r"\x1b\[[0-9;]*m", "", invoke(["runs", "--checkpoint-dir", str(base)]).stdout
            )
            assert " interrupted_shakespeare_run " in shown, columns
        shutil.rmtree(base / "interrupted_shakespeare_run")
        # a run's long note wraps: it does not push the figures out of a wide terminal
        make_run(base, "new", "step 0", files)
        monkeypatch.setenv("COLUMNS", "150")
        r = invoke(["runs", "--checkpoint-dir", str(base)])
        head = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout.splitlines()[0])
        assert "not trained" in r.stdout and "last val bpc" in head and "train time" in head
        # piped, its figures unknown are nan, no number to awk and first to `sort -g` (a '-'
        # read as 0 to awk: the best score of all)
        monkeypatch.setattr(_NamedTextIOWrapper, "isatty", lambda self: False)
        rows = invoke(["runs", "--checkpoint-dir", str(base)]).stdout.splitlines()
        [new] = [row.split("\t") for row in rows if row.startswith("new\t")]
        assert new[4:6] == ["nan", "nan"]


def test_a_byte_that_is_not_utf8_is_told_apart_from_a_backslash_of_the_name(files):
    """Piped, a run's name is one field: its own backslash doubled, a byte that is not UTF-8 as
    \\xNN (escaped in that order, so that the two never read alike), as score writes names."""
    with workspace() as root:
        base = root / "checkpoints"
        base.mkdir()
        for name in (os.fsdecode(b"b\xffyte"), "lit\\xffyte"):
            make_run(base, name, "good", files)
        r = invoke(["runs", "--checkpoint-dir", str(base)])
        names = sorted(line.split("\t")[0] for line in r.stdout.splitlines()[1:])
        assert r.exit_code == 0 and names == ["b\\xffyte", "lit\\\\xffyte"]
        make_run(base, "esc\x1b[31m", "good", files)
        # a name given as the line writes it: the run it names, and how to type it in bash
        for typed, meant in (("b\\xffyte", "$'b\\xffyte'"), ("esc\\x1b[31m", "$'esc\\x1b[31m'")):
            r = invoke(["sample", "-c", typed, "--checkpoint-dir", str(base), "-l", "5"])
            assert r.exit_code == 1 and f"; did you mean {meant}? (a piped `runs`" in r.stderr
        r = invoke(["sample", "-c", "lit\\xffyte", "--checkpoint-dir", str(base), "-l", "5"])
        assert r.exit_code == 0  # the name itself, backslash and all, where it is one


def test_a_name_on_a_terminal_s_table_is_text_there_too(files, monkeypatch):
    """A run named with a terminal's escape sequences and a line break: on a terminal as piped,
    each an escape on the name's one line, never obeyed."""
    from click.testing import _NamedTextIOWrapper

    with workspace() as root:
        base = root / "checkpoints"
        base.mkdir()
        make_run(base, "r\x1b]0;title\x07\nz", "good", files)
        monkeypatch.setattr(_NamedTextIOWrapper, "isatty", lambda self: True)
        monkeypatch.setenv("COLUMNS", "400")
        r = invoke(["runs", "--checkpoint-dir", str(base)])
        shown = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout)  # the table's own styles left out
        assert r.exit_code == 0 and "r\\x1b]0;title\\x07\\nz" in shown
        assert "\x1b" not in shown and "\x07" not in shown and len(shown.splitlines()) == 2


def test_every_json_gives_a_name_that_is_not_utf8_back_exactly(files, text):
    """runs, plot, sample, score and inspect --json: a folder named in Latin-1 comes back as the
    \\udcNN escapes that os.fsencode turns back into its bytes (not U+FFFD, not a \\xNN text)."""
    with workspace() as root:
        base = root / os.fsdecode(b"caf\xe9")
        try:
            base.mkdir()
        except OSError:  # a file system that takes UTF-8 names only
            pytest.skip("this file system refuses a name that is not UTF-8")
        make_run(base, "r", "good", files)
        Path("t.txt").write_text(text[:300])
        best = str(base / "r" / "best.pt")
        got = {
            "runs": json.loads(invoke(["runs", "--checkpoint-dir", str(base), "--json"]).stdout),
            "plot": json.loads(
                invoke(["plot", "r", "--checkpoint-dir", str(base), "--json"]).stdout.split("\n")[0]
            ),
            "sample": json.loads(invoke(["sample", "-c", best, "-l", "3", "--json"]).stdout),
            "score": json.loads(invoke(["score", "-c", best, "t.txt", "--json"]).stdout),
            "inspect": json.loads(
                invoke(["inspect", "-c", best, "t.txt", "--json"]).stdout[:-1].split("\n")[0]
            ),
        }
        for command in ("runs", "plot"):
            assert os.fsencode(got[command]["folder"]).endswith(b"/caf\xe9/r"), got[command]
        for command in ("sample", "score", "inspect"):
            assert os.fsencode(got[command]["checkpoint"]) == os.fsencode(best), got[command]


def test_runs_of_a_run_folder_names_the_folder_of_runs(files):
    """`--checkpoint-dir` given a run's own folder (a slip: a run, not the folder of runs) says so
    and what to type, where it said there were no runs."""
    with workspace() as root:
        (root / "checkpoints").mkdir()
        make_run(root / "checkpoints", "a", "good", files)
        r = invoke(["runs", "--checkpoint-dir", "checkpoints/a"])
        assert r.exit_code == 0 and r.stdout == ""
        hint = "checkpoints/a is a run's folder, not a folder of runs: give --checkpoint-dir "
        hint += "checkpoints"
        assert r.stderr == f"no runs in checkpoints/a; {hint}\n"
        for args in (["sample", "-l", "5"], ["plot", "a"], ["sample", "-c", "a", "-l", "5"]):
            r = invoke([*args, "--checkpoint-dir", "checkpoints/a"])
            assert_one_error(r, 1, hint)
        # the advice followed as written, wherever it is typed: a name without a / is a path
        # given as ./name, `.`'s folder of runs is `..`, a space quoted
        (root / "my ck").mkdir()
        make_run(root / "my ck", "b", "good", files)
        for where, given, folder, run in [
            ("checkpoints", "a", ".", "./a"),
            ("checkpoints/a", ".", "..", "."),
            (".", "my ck/b", "'my ck'", "'my ck/b'"),
        ]:
            os.chdir(root / where)
            line = assert_one_error(invoke(["sample", "-l", "5", "--checkpoint-dir", given]), 1)
            assert line.endswith(f"give --checkpoint-dir {folder}, or pass --checkpoint {run}")
            for advice in (["--checkpoint-dir", folder], ["--checkpoint", run]):
                r = invoke(["sample", "-l", "5", *(a.strip("'") for a in advice)])
                assert r.exit_code == 0 and len(r.stdout) >= 5, r.stderr
            os.chdir(root)


def test_runs_json_is_one_object_per_run(files):
    with workspace() as root:
        (root / "checkpoints").mkdir()
        make_run(root / "checkpoints", "a", "good", files)
        make_run(root / "checkpoints", "b", "step 0", files)
        lines = invoke(["runs", "--json"]).stdout.splitlines()
        records = [json.loads(line) for line in lines]
        assert len(records) == 2
        keys = {"run", "folder", "status", "step", "train_seconds", "evaluations", "best_val_bpc"}
        assert all(keys <= set(rec) for rec in records)
        assert {rec["run"]: rec["status"] for rec in records} == {"a": "ok", "b": "untrained"}
        # every setting the run trains with, as its checkpoint keeps it
        saved = torch.load(root / "checkpoints" / "a" / "last.pt", weights_only=True)
        (a,) = [rec for rec in records if rec["run"] == "a"]
        assert a["train_config"] == saved["train_config"] and a["train_config"]["batch_size"]
        assert a["model_config"] == saved["model_config"]


def test_a_run_that_ended_without_saying_how_is_cut_off_and_says_how_to_go_on(trained_run, text):
    """Killed (SIGKILL, out of memory): its newest checkpoint was saved while it trained, and no
    process trains it; one from before the ending was kept says nothing of it. Killed as its last
    save was written, its budget spent, it is said to have finished: its resume with a larger
    budget, where the plain one would be refused."""
    payload = torch.load(trained_run.last, weights_only=True)
    part = {k: v for k, v in payload.items() if not k.startswith("format") and k != "digests"}
    assert part["train_config"]["max_steps"] == part["trainer"]["step"] == 200
    longer = {**part["train_config"], "max_steps": 400}
    with workspace() as root:
        for name, trainer, train in (
            ("killed", {"ended": None}, longer),
            ("at-end", {"ended": None}, part["train_config"]),
            ("older", {}, longer),
        ):
            (root / "checkpoints" / name).mkdir(parents=True)
            shutil.copyfile(trained_run.best, root / "checkpoints" / name / "best.pt")
            kept = {k: v for k, v in payload["trainer"].items() if k != "ended"}
            saved = {**part, "trainer": {**kept, **trainer}, "train_config": train}
            checkpoint.save(saved, root / "checkpoints" / name / "last.pt")
        lines = invoke(["runs"]).stdout.splitlines()
        rows = {line.split("\t")[0]: line.split("\t") for line in lines}
        assert rows["killed"][9] == "cut off" and rows["older"][9] == ""
        assert rows["killed"][7].startswith("cut off: it ended without saying how (killed")
        assert "; continue it with `" in rows["killed"][7]
        assert rows["killed"][7].endswith(" --resume killed`")
        assert rows["at-end"][7].endswith(
            "after its save at step 200, its --steps spent: it had finished training; to train "
            "it on: `... | charrnn train - --resume at-end --steps 600`"
        )
        r = invoke(["train", "-", "--resume", "at-end"], input=text)  # as its plain resume says
        assert_one_error(r, 1, "run 'at-end' has already used its budget (200 steps, ")
        listed = invoke(["runs", "--json"]).stdout.splitlines()
        records = {r["run"]: r for r in map(json.loads, listed)}
        assert records["killed"]["ended"] is None and records["killed"]["status"] == "ok"


def test_runs_of_one_text_validated_on_unlike_numbers_of_characters_get_a_note(trained_run):
    """A time budget reads part of the validation split: two runs of one text whose evaluations
    read different numbers of characters have val bpc that do not compare, and runs says so
    (stderr; --json's val_chars says how many), never for runs that read alike."""
    payload = torch.load(trained_run.last, weights_only=True)
    read = payload["metrics"][-1]["val_chars"]
    part = {k: v for k, v in payload.items() if not k.startswith("format") and k != "digests"}
    part["metrics"] = [*payload["metrics"][:-1], {**payload["metrics"][-1], "val_chars": 500}]
    with workspace() as root:
        base = root / "checkpoints"
        for name in ("whole", "alike"):
            (base / name).mkdir(parents=True)
            for f in ("best.pt", "last.pt"):
                shutil.copyfile(getattr(trained_run, f[:4]), base / name / f)
        r = invoke(["runs"])
        assert r.exit_code == 0 and r.stderr == ""
        (base / "part").mkdir()
        checkpoint.save(part, base / "part" / "last.pt")
        shutil.copyfile(trained_run.best, base / "part" / "best.pt")
        for args in (["runs"], ["runs", "--json"]):
            r = invoke(args)
            assert r.exit_code == 0 and "Note" not in r.stdout
            assert r.stderr.startswith("Note: runs of the same text read different numbers of ")
            assert "(part: 500; " in r.stderr and f": {read:,})" in r.stderr
        chars = {rec["run"]: rec["val_chars"] for rec in map(json.loads, r.stdout.splitlines())}
        assert chars == {"part": 500, "whole": read, "alike": read}
        # runs of another split, fewer, unlike too: the text with the most runs is the one said
        for name, n in (("o1", 100), ("o2", 200)):
            other = {**part, "train_config": {**part["train_config"], "val_frac": 0.2}}
            other["metrics"] = [*part["metrics"][:-1], {**part["metrics"][-1], "val_chars": n}]
            (base / name).mkdir()
            checkpoint.save(other, base / name / "last.pt")
            shutil.copyfile(trained_run.best, base / name / "best.pt")
        said = invoke(["runs"]).stderr
        assert "(part: 500; " in said and "o1" not in said and "(and other runs alike)" in said


def test_runs_shows_the_step_of_the_checkpoint_not_of_the_last_evaluation(trained_run):
    payload = torch.load(trained_run.last, weights_only=True)
    assert payload["metrics"][-1]["step"] == 200
    with workspace() as root:
        run = root / "checkpoints" / "stopped"
        run.mkdir(parents=True)
        shutil.copyfile(trained_run.best, run / "best.pt")
        torch.save({**payload, "trainer": {**payload["trainer"], "step": 237}}, run / "last.pt")
        (run / "metrics.jsonl").write_text('{"step": 10, "val_bpc": 9.0}\n')
        rec = json.loads(invoke(["runs", "--json"]).stdout)
        assert (rec["step"], rec["last_eval_step"], rec["ended"]) == (237, 200, "steps")
        assert invoke(["runs"]).stdout.splitlines()[1].split("\t")[2] == "237"
        del payload["trainer"]["ended"]  # as a charrnn that did not keep it wrote it
        torch.save(payload, run / "last.pt")
        assert json.loads(invoke(["runs", "--json"]).stdout)["ended"] is None


# ------------------------------------------------------------------------------------ run names


LIMIT = runs.name_limit(Path.cwd())  # the temporary folders' file system's, as a rule 255


ODD_NAMES = [
    "a/b",
    "../x",
    "./x",
    "/abs",
    "a\\b",
    ".hidden",
    ".",
    "..",
    "...",
    "-x",
    "x-",
    "name.",
    "my run",
    " lead",
    "tab\there",
    "line\nbreak",
    "x.pt",
    "x.PT",
    "a--b",
    "~",
    "~user",
    "$HOME",
    "*?[]",
    "'quoted'",
    "ü漢",
    "e\u0301te\u0301",  # accents as combining marks
    "emoji😀",
    "\u200bzero-width",
    "\x85next-line",
    "\udcffbyte",  # an undecodable byte of argv, as Python hands it on
    "a" * LIMIT,
    "a" * (LIMIT + 1),
    "ü" * (LIMIT // 2 + 1),
    "漢" * 100,
    "a/" * 200,
    "x" * (LIMIT - 3) + ".pt",
]


TYPED = st.one_of(
    st.sampled_from(ODD_NAMES),
    st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=16),
    st.text(st.sampled_from("aü/.- 漢"), min_size=LIMIT - 8, max_size=LIMIT + 40),
)


def refused_for(r) -> str:
    """The name an exit-2 refusal of --name offers, checked to be its one `Error:` line."""
    assert r.exit_code == 2 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and r.stderr.endswith(errors[0] + "\n"), r.stderr
    assert errors[0].startswith("Error: Invalid value for '--name': "), errors[0]
    found = re.search(r"; use '([^']+)'$", errors[0])
    assert found, errors[0]
    return found.group(1)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=TYPED)
@example(name="a/b")
@example(name="..")
@example(name=".hidden")
@example(name="x.pt")
@example(name="a" * (LIMIT + 45))
@example(name="plain-name_1.0")
@example(name="CON")  # a device's name on Windows, with an extension too
@example(name="lpt1.notes")
@example(name="COM¹")
def test_a_typed_name_is_refused_with_a_usable_one_or_kept_and_found(corpus_file, name):
    with workspace():
        train = ["train", str(corpus_file), *TINY_CLI, "--steps", "10", "-q"]
        r = invoke([*train, "--name", name])
        if r.exit_code == 2:
            used = refused_for(r)
            assert used != name and runs.name_problem(used, Path("checkpoints")) is None
            assert not os.path.exists("checkpoints")  # refused before anything was made
            too_long = len(os.fsencode(runs._plain(name))) > LIMIT
            assert too_long == (f"the file system allows {LIMIT} in a folder name" in r.stderr)
            r = invoke([*train, "--name", used])
        else:
            used = unicodedata.normalize("NFC", name)  # a run's name is made composed
        assert r.exit_code == 0, r.stderr
        assert r.stdout == f"checkpoints/{used}/best.pt\n"
        assert r.stderr == ""  # -q: the name was the user's own, or refused: nothing to say
        listed = [json.loads(line) for line in invoke(["runs", "--json"]).stdout.splitlines()]
        assert [rec["run"] for rec in listed] == [used]
        r = invoke(["sample", "-c", used, "-l", "5", "-s", "1"])
        assert r.exit_code == 0 and r.stdout == ended(r.stdout[:5]), r.stderr
        r = invoke(["train", "--resume", used, "-q"])  # found: its budget is spent
        assert r.exit_code == 1 and "has already used its budget" in r.stderr, r.stderr


def test_a_name_is_one_run_however_its_accents_are_typed(corpus_file):
    """`chät` typed composed (NFC) or decomposed (NFD, as a Mac's keyboard and file system write
    it) is one run: made composed, found by either spelling, also where its folder was written
    decomposed."""
    nfc, nfd = "chät", unicodedata.normalize("NFD", "chät")
    with workspace():
        r = invoke(["train", str(corpus_file), *TINY_CLI, "--steps", "10", "-q", "--name", nfd])
        assert r.exit_code == 0 and r.stdout == f"checkpoints/{nfc}/best.pt\n", r.stderr
        for folder in (nfc, nfd):
            if folder == nfd:
                os.rename(f"checkpoints/{nfc}", f"checkpoints/{nfd}")  # a folder a Mac wrote
            for typed in (nfc, nfd):
                r = invoke(["sample", "-c", typed, "-l", "5", "-s", "1"])
                said = (folder, typed, r.stderr)
                assert r.exit_code == 0 and r.stdout == ended(r.stdout[:5]), said
            for typed in (nfc, nfd):  # the same run: never a second one beside it
                r = invoke(["train", str(corpus_file), *TINY_CLI, "--steps", "10", "--name", typed])
                assert r.exit_code == 1 and "already exists" in r.stderr, r.stderr
            assert os.listdir("checkpoints") == [folder]


def test_a_name_that_fits_composed_but_not_decomposed_is_a_run():
    """100 `é`: 200 bytes composed, 300 decomposed, over the file system's 255: the decomposed
    spelling cannot be a folder there, and is not looked for (the system refuses the look)."""
    name = "\u00e9" * 100
    with workspace() as root:
        (root / "t.txt").write_text(make_text(3000))
        (root / "checkpoints").mkdir()  # (where it is missing, the look fails for that first)
        r = invoke(["train", "t.txt", *TINY_CLI, "--steps", "2", "-q", "--name", name])
        assert r.exit_code == 0 and r.stdout == f"checkpoints/{name}/best.pt\n", r.stderr
        nfd = functools.partial(unicodedata.normalize, "NFD")
        for typed in (name, nfd(name)):  # typed decomposed: 300 bytes
            r = invoke(["sample", "-c", typed, "-l", "5", "-s", "1"])
            assert r.exit_code == 0 and len(r.stdout) >= 5, r.stderr
        composed = "\u00f3" * 90  # a new run's name typed decomposed: made composed
        r = invoke(["train", "t.txt", *TINY_CLI, "--steps", "2", "-q", "--name", nfd(composed)])
        assert r.exit_code == 0 and r.stdout == f"checkpoints/{composed}/best.pt\n", r.stderr


def test_a_name_derived_from_the_corpus_is_cleaned_and_said(text):
    with workspace() as root:
        (root / ".my notes.pt.txt").write_text(text)
        r = invoke(["train", ".my notes.pt.txt", *TINY_CLI, "--steps", "10"])
        assert r.exit_code == 0, r.stderr
        assert r.stderr.startswith("Training 'my-notes-pt': ")
        assert r.stdout == "checkpoints/my-notes-pt/best.pt\n"
        (root / "Con.txt").write_text(text)  # a device's name on Windows: no folder there
        r = invoke(["train", "Con.txt", *TINY_CLI, "--steps", "10", "-q"])
        assert r.exit_code == 0 and r.stdout == "checkpoints/Con_/best.pt\n"
        long = "b" * (LIMIT + 20)
        (root / long[: LIMIT - 4]).mkdir()  # a folder corpus: its name is the run's
        (root / long[: LIMIT - 4] / "t.txt").write_text(text)
        r = invoke(["train", long[: LIMIT - 4], *TINY_CLI, "--steps", "10", "-q"])
        assert r.exit_code == 0 and r.stdout == f"checkpoints/{long[: LIMIT - 4]}/best.pt\n"


def test_a_lookup_of_a_name_charrnn_would_have_cleaned_names_the_run(files, corpus_file):
    """Runs made before a --name was checked: `--name a/b` made the run a-b."""
    with workspace() as root:
        base = root / "checkpoints"
        base.mkdir()
        make_run(base, "a-b", "good", files)
        make_run(base, "x.pt", "good", files)  # `-c x.pt` reads as a file here
        for spec in ("a/b", "a b", "./a b", "a/b/"):
            for args in (
                ["sample", "-c", spec, "-l", "5"],
                ["score", "-c", spec, "-"],
                ["inspect", "-c", spec, "-"],
                ["plot", spec],
                ["train", "--resume", spec],
                ["train", str(corpus_file), "--init-from", spec, "--name", "new"],
            ):
                r = invoke(args, input="ANNA:\n")
                assert_contract(r, ok_codes=())
                assert "did you mean the run 'a-b' in checkpoints? give a-b" in r.stderr, args
        r = invoke(["sample", "-c", "x.pt"])
        assert_contract(r, ok_codes=())
        assert "did you mean the run 'x.pt' in checkpoints? give checkpoints/x.pt" in r.stderr
        assert invoke(["sample", "-c", "checkpoints/x.pt", "-l", "5"]).exit_code == 0
        r = invoke(["sample", "-c", "nothing"])
        assert r.stderr == "Error: no run 'nothing' in checkpoints; `charrnn runs` lists the runs\n"
        for args in (["sample", "-c"], ["plot"], ["train", "--resume"], ["score", "-c"]):
            r = invoke([*args, "./checkpoints"], input="ANNA:\n")  # the folder of runs itself
            line = assert_one_error(r, 1, "./checkpoints is a folder of runs (")
            assert "not one run: give a run in it, e.g. checkpoints/" in line, args
        Path("files").mkdir()  # files and a broken link: no run in it, not a folder of runs
        Path("files", "notes.txt").write_text("text")
        Path("files", "gone").symlink_to("nowhere")
        for args in (["sample", "-c"], ["plot"]):
            line = assert_one_error(invoke([*args, "./files"]), 1, "./files")
            assert "folder of runs" not in line and "no checkpoint" in line, line
        Path("d", "best.pt").mkdir(parents=True)  # a folder in a checkpoint file's place
        for args in (["sample", "-c"], ["plot"], ["train", "--resume"]):
            r = invoke([*args, "d/best.pt"])
            assert_one_error(r, 1, "d/best.pt is a folder, not a checkpoint file"), args
        for typo in ("x.p", "X.PT"):  # a name mistyped, or in another case: the run nearest it
            r = invoke(["sample", "-c", typo])
            assert (
                r.stderr == f"Error: no run {typo!r} in checkpoints; did you mean the run 'x.pt'?\n"
            )
        for typo, meant in [  # a path mistyped: the run or checkpoint nearest it, in its folder
            ("checkpoints/A-B/", "checkpoints/a-b"),
            ("./checkpoints/a-bb", "./checkpoints/a-b"),
            ("checkpoints/a-b/Best.pt", "checkpoints/a-b/best.pt"),
            ("checkpoints/A-B/best.pt", "checkpoints/a-b/best.pt"),  # the run's folder mistyped
            ("checkpoints/a-bb/Last.pt", "checkpoints/a-b/last.pt"),
            ("checkpoints/A-B/metrics.jsonl", "checkpoints/a-b"),  # no checkpoint: the folder
        ]:
            for args in (["sample", "-c"], ["plot"], ["train", "--resume"]):
                line = assert_one_error(invoke([*args, typo]), 1, f"at {typo}; did you mean")
                hint = meant
                if args == ["plot"]:  # a run's folder is what it takes: never a file as the hint
                    hint = os.path.dirname(meant) if meant.endswith(".pt") else meant
                assert line.endswith(f"did you mean {hint}?"), (args, line)


def test_a_name_too_long_for_the_file_system_says_so_and_gives_the_limit(files, corpus_file):
    long = "n" * (LIMIT + 1)
    with workspace() as root:
        r = invoke(["train", str(corpus_file), "--name", long])
        assert refused_for(r) == "n" * LIMIT
        assert (
            f"is {LIMIT + 1} bytes long, and the file system allows {LIMIT} in a folder name"
            in r.stderr
        )
        assert "not a plain folder name" not in r.stderr
        assert not os.path.exists("checkpoints")
        with pytest.raises(RunError, match=f"allows {LIMIT} in a folder name"):
            runs.plan_run(root / "checkpoints", long)
        (root / "checkpoints").mkdir()
        for args in (["sample", "-c", long], ["train", "--resume", long]):
            r = invoke(args)
            assert_contract(r, ok_codes=())
            assert r.stderr.endswith(
                f"a name in it is {LIMIT + 1} bytes long, and the file system allows {LIMIT}\n"
            ), r.stderr


def test_the_library_refuses_a_name_that_is_not_plain(tmp_path):
    with pytest.raises(RunError, match=r"'a/b' is not a plain folder name .*; use 'a-b'"):
        runs.plan_run(tmp_path, "a/b")
    assert runs.plan_run(tmp_path, "a-b").path == tmp_path / "a-b"
    # a file name's bytes that are not UTF-8 kept as their hex: two such texts are two runs
    assert [runs.safe_name(os.fsdecode(b)) for b in (b"caf\xe9", b"x\xed\xa0y")] == [
        "caf-e9",
        "x-ed-a0-y",
    ]
    many = ("\udcff", "\udce9" * 200)
    for name in ("a/b", "..", ".x", "x.pt", "~", "a" * 400, "ü" * 200, *many, "x" * 252 + ".pt"):
        made = runs.safe_name(name, tmp_path)
        assert runs.safe_name(made, tmp_path) == made and runs.name_problem(made, tmp_path) is None
        assert not runs.is_path(made) and not made.startswith((".", "-"))
        assert len(os.fsencode(made)) <= runs.name_limit(tmp_path)


# ------------------------------------------------------------- resuming, and what to do instead


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, corpus_file) -> Path:
    """A run trained to two evaluations by the CLI (`copy_run` copies it with last.pt cut to 100
    bytes, best.pt intact)."""
    where = tmp_path_factory.mktemp("damaged")
    old = os.getcwd()
    os.chdir(where)
    try:
        args = ["train", str(corpus_file), *TINY_CLI, "--steps", "20", "--name", "r", "-q"]
        assert invoke([*args, "--checkpoint-dir", "ck"]).exit_code == 0
    finally:
        os.chdir(old)
    run = where / "ck" / "r"
    assert checkpoint.load(run / "best.pt")["trainer"]["step"] in (10, 20)
    return run


def copy_run(run: Path, to: Path) -> Path:
    to.mkdir(parents=True)
    for name in ("best.pt", "last.pt", "metrics.jsonl"):
        (to / name).write_bytes((run / name).read_bytes())
    with open(to / "last.pt", "r+b") as f:
        f.truncate(100)
    return to


def test_a_run_whose_checkpoints_are_both_gone_is_listed_damaged_and_skipped_with_a_note(
    damaged, corpus_file
):
    """Both checkpoints deleted, metrics.jsonl left: the run is listed (damaged, with what to
    do), not dropped, and a sample of the latest run says it skipped it."""
    with workspace() as root:
        args = ["train", str(corpus_file), *TINY_CLI, "--steps", "10", "--name", "old", "-q"]
        assert invoke([*args, "--checkpoint-dir", "ck"]).exit_code == 0
        run = copy_run(damaged, root / "ck" / "r")
        (run / "best.pt").unlink()
        (run / "last.pt").unlink()
        os.utime(run / "metrics.jsonl")  # the newest run
        listed = invoke(["runs", "--check", "--json", "--checkpoint-dir", "ck"])
        assert listed.exit_code == 1
        [rec, _] = map(json.loads, listed.stdout.splitlines())
        assert rec["run"] == "r" and rec["status"] == "damaged"
        assert rec["evaluations"] is None and rec["step"] is None  # unknown, not 0
        assert (
            "holds no checkpoint (best.pt or last.pt), though its metrics.jsonl is there"
            in rec["note"]
        )
        sampled = invoke(["sample", "--checkpoint-dir", "ck", "-l", "5"])
        assert sampled.exit_code == 0 and sampled.stdout
        assert "Note: using run 'old', skipping newer runs that cannot be sampled" in sampled.stderr
        assert "'r': damaged: " in sampled.stderr
        for reader in (["sample", "-c", "ck/r"], ["score", "-c", "ck/r", "-"], ["plot", "ck/r"]):
            r = invoke(reader, input="ANNA:\n")
            assert_one_error(
                r, 1, "the run folder ck/r holds no checkpoint (best.pt or last.pt), though"
            )


def test_a_run_whose_trainer_is_between_its_writes_is_not_damaged(damaged):
    """`train --force` clears a run's files and writes them again, last.pt before best.pt: while
    its trainer holds the run, a file missing is one to come, not damage."""
    with workspace() as root:
        run = copy_run(damaged, root / "ck" / "r")
        (run / "last.pt").write_bytes((damaged / "last.pt").read_bytes())
        for gone in ("last.pt", "best.pt"):
            moved = (run / gone).read_bytes()
            (run / gone).unlink()
            assert runs.inspect(RunDir(run)).status == "damaged"
            with RunDir(run).session():
                assert runs.inspect(RunDir(run)).status != "damaged"
            (run / gone).write_bytes(moved)


def test_a_run_whose_best_pt_is_gone_is_damaged_not_untrained(damaged):
    """An evaluated run without its best.pt (deleted by hand) is not one that has yet to train:
    `runs` calls it damaged and `sample` points to its last.pt, never to more training."""
    with workspace() as root:
        run = root / "ck" / "r"
        run.mkdir(parents=True)
        (run / "last.pt").write_bytes((damaged / "last.pt").read_bytes())  # intact, evaluated
        r = invoke(["runs", "--json", "--checkpoint-dir", "ck"])
        [rec] = map(json.loads, r.stdout.splitlines())
        assert rec["status"] == "damaged" and rec["evaluations"] >= 1
        assert rec["note"].startswith("damaged: its best.pt is missing, though it was evaluated")
        for args in (["-c", "ck/r"], ["--checkpoint-dir", "ck"]):
            line = assert_one_error(invoke(["sample", *args]), 1, "best.pt")
            assert "--resume" not in line and "last.pt" in line
        r = invoke(["sample", "-c", "ck/r/last.pt", "-l", "5"])
        assert r.exit_code == 0 and r.stdout == ended(r.stdout[:5]), r.stderr
        assert rec["note"].endswith(
            "and a resume writes a new best.pt (a copy of last.pt where that holds the best "
            "model, else at its first evaluation)"
        )
        resumed = invoke(["train", "--resume", "ck/r", "--steps", "30"])
        assert resumed.exit_code == 0 and checkpoint.load(run / "best.pt"), resumed.stderr


@pytest.mark.parametrize(
    "junk", [b"junk\n", bytes(range(256)) * 8, "cut"], ids=["text", "bytes", "cut"]
)
def test_a_run_file_damaged_any_way_gets_advice_that_works(damaged, junk):
    """best.pt overwritten with text or bytes is damaged as one cut short is: `sample -c RUN`
    names last.pt, and the listing's note says what to do with each file that does not load."""
    with workspace() as root:
        run = root / "ck" / "r"
        copy_run(damaged, run)
        (run / "last.pt").write_bytes((damaged / "last.pt").read_bytes())  # whole again
        best = (damaged / "best.pt").read_bytes()
        (run / "best.pt").write_bytes(best[: len(best) // 2] if junk == "cut" else junk)
        line = assert_one_error(invoke(["sample", "-c", "ck/r"]), 1, "ck/r/best.pt is not a")
        assert line.endswith(
            "give -c ck/r/last.pt instead (the run's latest weights, not its best)"
        )

        def note() -> str:
            return json.loads(invoke(["runs", "--json", "--checkpoint-dir", "ck"]).stdout)["note"]

        assert "its last.pt loads: give -c ck/r/last.pt, or resume the run" in note()
        assert invoke(["sample", "-c", "ck/r/last.pt", "-l", "5"]).exit_code == 0
        (run / "best.pt").write_bytes(best)
        (run / "last.pt").write_bytes(junk if junk != "cut" else b"")
        assert "go on from its best.pt: `charrnn train --resume ck/r/best.pt" in note()
        (run / "best.pt").write_bytes(b"junk\n")
        assert note().endswith(
            "no checkpoint of it loads: train it again, with --force to replace it"
        )
        (run / "last.pt").unlink()  # best.pt damaged, and no other checkpoint
        line = assert_one_error(invoke(["sample", "-c", "ck/r"]), 1, "ck/r/best.pt is not a")
        assert line.endswith(
            "its run has no other checkpoint: train the run again, with --force to replace it"
        )


@pytest.fixture(scope="module")
def moments(tmp_path_factory, corpus_file) -> Path:
    """One run's files at two moments (`early/`: step 10, `late/`: step 40, its best.pt later than
    step 10) and a GRU's of the same text and one of another text (`gru/`, `other/`)."""
    where = tmp_path_factory.mktemp("moments")
    with contextlib.chdir(where):
        (where / "other.txt").write_text("another text, of other words entirely\n" * 200)
        train = ["train", *TINY_CLI, "-q", "--checkpoint-dir", "ck"]
        for args in (
            [str(corpus_file), "--steps", "10", "--name", "r"],
            [str(corpus_file), "--steps", "10", "--name", "gru", "--cell", "gru"],
            ["other.txt", "--steps", "10", "--name", "other"],
        ):
            assert invoke([*train, *args]).exit_code == 0
        shutil.copytree("ck/r", "early")
        assert invoke(["train", "--resume", "ck/r", "--steps", "40", "-q"]).exit_code == 0
    shutil.copytree(where / "ck" / "r", where / "late")
    shutil.copytree(where / "ck" / "gru", where / "gru")
    shutil.copytree(where / "ck" / "other", where / "other")
    assert checkpoint.load(where / "late" / "best.pt")["trainer"]["step"] > 10
    return where


@pytest.mark.parametrize(
    "put, refused",
    [
        ("other/last.pt", "best.pt and last.pt hold models of different texts"),
        ("gru/last.pt", "best.pt and last.pt hold different models (LSTM 2x24, embedding 8; GRU"),
        ("early/last.pt", "last.pt (step 10) is older than best.pt (step "),
        ("early/best.pt", None),  # best.pt put back from an older copy: replaced, with a warning
    ],
)
def test_a_checkpoint_copied_in_or_put_back_is_told_and_never_replaces_the_runs_best(
    moments, put, refused
):
    """best.pt and last.pt that are not two moments of one run (another text's or another
    cell's copied in, or one put back from an older copy): `runs --check` calls the run damaged,
    a reader of the run says so, and a resume refuses where it would replace the later best.pt
    or train another run's model here, and otherwise writes a best.pt of its own."""
    with workspace() as root:
        run = root / "ck" / "r"
        shutil.copytree(moments / "late", run)
        (run / Path(put).name).write_bytes((moments / put).read_bytes())
        best = (run / "best.pt").read_bytes()
        listed = invoke(["runs", "--check", "--json", "--checkpoint-dir", "ck"])
        [rec] = map(json.loads, listed.stdout.splitlines())
        assert listed.exit_code == 1 and rec["status"] == "damaged", rec
        said = refused or "best.pt (step 10, "
        assert f"its {said}" in rec["note"], rec["note"]
        if refused and "older" in refused:  # advice to follow as it is
            assert "go on from best.pt: `charrnn train --resume ck/r/best.pt`" in rec["note"]
        read = invoke(["sample", "-c", "ck/r", "-l", "5", "--seed", "1"])
        assert read.exit_code == 0 and f"Note: in ck/r, {said}" in read.stderr
        plotted = invoke(["plot", "ck/r"])
        assert plotted.exit_code == 0 and f"Note: in ck/r, {said}" in plotted.stderr
        Path("ft.txt").write_text("a text to fine-tune on. " * 40)
        tuned = invoke(["train", "ft.txt", "--init-from", "ck/r", "--steps", "1"])
        assert tuned.exit_code == 0 and f"Note: in ck/r, {said}" in tuned.stderr, tuned.stderr
        with RunDir(run).session():  # a trainer between its two writes: not told while it trains
            assert runs.inspect(RunDir(run)).problem is None
            assert "Note" not in invoke(["sample", "-c", "ck/r", "-l", "5"]).stderr
        resumed = invoke(["train", "--resume", "ck/r", "--steps", "60", "-q"])
        if refused is None:
            assert (
                resumed.exit_code == 0 and "Warning: in ck/r, best.pt (step 10, " in resumed.stderr
            )
            assert checkpoint.load(run / "best.pt")["trainer"]["step"] > 40
            ok = invoke(["runs", "--check", "--json", "--checkpoint-dir", "ck"])
            assert ok.exit_code == 0 and json.loads(ok.stdout)["status"] == "ok"
            return
        line = assert_one_error(resumed, 1, f"in ck/r, {refused}")
        if "older" in refused:
            assert "to go on from best.pt: `charrnn train --resume ck/r/best.pt`" in line
        else:
            assert line.endswith("move the one that is not this run's out of ck/r, then resume")
        assert (run / "best.pt").read_bytes() == best
        last = (run / "last.pt").read_bytes()
        from_best = invoke(["train", "--resume", "ck/r/best.pt", "--steps", "60", "-q"])
        if "older" in refused:  # going on from the later file, as advised
            assert from_best.exit_code == 0, from_best.stderr
        else:  # best.pt named: the other run's model must not replace this run's last.pt
            assert_one_error(from_best, 1, f"in ck/r, {refused}")
            assert (run / "last.pt").read_bytes() == last


def test_another_runs_metrics_jsonl_copied_in_is_told_by_every_reader(moments):
    """metrics.jsonl of another run put in a sound run's folder: `runs` calls the run damaged and
    every reader of the run says so in a Note, as for a checkpoint copied in."""
    with workspace() as root:
        run = root / "ck" / "r"
        shutil.copytree(moments / "late", run)
        (run / "metrics.jsonl").write_bytes((moments / "other" / "metrics.jsonl").read_bytes())
        said = "best.pt and last.pt are of another run than metrics.jsonl (their first records"
        listed = invoke(["runs", "--check", "--json", "--checkpoint-dir", "ck"])
        [rec] = map(json.loads, listed.stdout.splitlines())
        assert listed.exit_code == 1 and f"its {said}" in rec["note"], rec["note"]
        for args in (["sample", "-c", "ck/r", "-l", "5"], ["plot", "ck/r"]):
            read = invoke(args)
            assert read.exit_code == 0 and f"Note: in ck/r, {said}" in read.stderr, args
        read = invoke(["export", "-c", "ck/r", "page.html"])
        assert read.exit_code == 0 and f"Note: in ck/r, {said}" in read.stderr


def test_another_runs_last_pt_where_best_pt_is_gone_is_refused_by_its_records(damaged):
    """With no best.pt to compare texts with, another run's last.pt copied in is told by its
    records: metrics.jsonl begins with this run's first record, the checkpoint with another."""
    with workspace() as root:
        (root / "other.txt").write_text("another text, of other words entirely\n" * 200)
        other = ["train", "other.txt", *TINY_CLI, "--steps", "2", "--name", "o", "-q"]
        assert invoke([*other, "--checkpoint-dir", "ck"]).exit_code == 0
        run = root / "ck" / "r"
        copy_run(damaged, run)
        (run / "best.pt").unlink()
        (run / "last.pt").write_bytes((root / "ck" / "o" / "last.pt").read_bytes())
        metrics = (run / "metrics.jsonl").read_bytes()
        listed = invoke(["runs", "--check", "--json", "--checkpoint-dir", "ck"])
        [rec] = [r for r in map(json.loads, listed.stdout.splitlines()) if r["run"] == "r"]
        assert rec["status"] == "damaged"
        assert "its last.pt and metrics.jsonl are of different runs" in rec["note"]
        resumed = invoke(["train", "--resume", "ck/r", "--steps", "30"])
        line = assert_one_error(resumed, 1, "ck/r/last.pt and ck/r/metrics.jsonl are of differ")
        assert line.endswith(
            "(a resume writes metrics.jsonl again from its checkpoint), then resume"
        )
        assert (run / "metrics.jsonl").read_bytes() == metrics and not (run / "best.pt").exists()
        (run / "metrics.jsonl").unlink()  # the one that was not this run's moved out: it goes on
        assert invoke(["train", "--resume", "ck/r", "--steps", "4", "-q"]).exit_code == 0


@pytest.mark.parametrize("name", ["best.pt", "last.pt"])
@pytest.mark.parametrize("what", ["folder", "broken link", "missing"])
def test_a_checkpoint_that_is_a_folder_a_broken_link_or_gone(damaged, name, what):
    """A folder where a checkpoint goes stops a resume before it trains (it failed at its first
    save, its steps lost); a broken link or a missing file is written again. `runs` keeps the
    run's figures from the other file and says what to do; `sample -c RUN` offers last.pt."""
    with workspace() as root:
        run = root / "ck" / "r"
        copy_run(damaged, run)
        (run / "last.pt").write_bytes((damaged / "last.pt").read_bytes())  # whole again
        (run / name).unlink()
        if what == "folder":
            (run / name).mkdir()
        elif what == "broken link":
            (run / name).symlink_to(root / "nowhere")
        listed = invoke(["runs", "--json", "--checkpoint-dir", "ck"]).stdout
        [rec] = map(json.loads, listed.splitlines())
        assert rec["status"] == "damaged" and rec["step"] is not None, rec
        if what == "folder":
            assert f"first move the folder {name} out of the run folder, then " in rec["note"]
        if (what, name) == ("missing", "last.pt"):  # a spent budget must be given more
            assert "`charrnn train --resume ck/r` (with a larger --steps, --epochs" in rec["note"]
        resumed = invoke(["train", "--resume", "ck/r", "--steps", "30"])
        if what == "folder":
            line = assert_one_error(resumed, 1, f"ck/r/{name} is a folder, where the run writes")
            assert line.endswith("move it out of the run folder, then resume")
            assert checkpoint.load(run / ("last.pt" if name == "best.pt" else "best.pt"))
            (run / name).rename(root / "moved")  # as the advice says: then the resume goes on
            resumed = invoke(["train", "--resume", "ck/r", "--steps", "30"])
            assert resumed.exit_code == 0, resumed.stderr
            return
        assert resumed.exit_code == 0, resumed.stderr
        gone = "is a broken link" if what == "broken link" else "is missing"
        assert f"Warning: ck/r/{name} {gone}" in resumed.stderr
        assert checkpoint.load(run / name)  # written again, a file


def test_a_finished_run_whose_best_pt_is_lost_is_mended_by_a_resume_or_told_how(
    damaged, monkeypatch
):
    """A run that wrote last.pt at its final evaluation and could not copy it to best.pt (a full
    disk): a resume with no more budget writes best.pt from last.pt where that holds the best
    model, and exits 0; where its best model is lost, the error says how a new one is written."""
    resume = importlib.import_module("charrnn.train.resume")
    with workspace() as root:
        run = root / "ck" / "r"
        copy_run(damaged, run)
        (run / "last.pt").write_bytes((damaged / "last.pt").read_bytes())  # whole again
        assert checkpoint.load(run / "best.pt")["trainer"]["step"] == 20  # its last, its best
        (run / "best.pt").unlink()
        with monkeypatch.context() as m:  # as where an earlier evaluation was the best
            m.setattr(resume, "_holds_best", lambda trainer: False)
            resumed = invoke(["train", "--resume", "ck/r"])
        line = assert_one_error(resumed, 1, "run 'r' has already used its budget")
        assert "(its best model is lost: ck/r/best.pt is missing" in line
        assert line.endswith("or sample its last.pt with -c ck/r/last.pt)")
        assert not (run / "best.pt").exists()
        resumed = invoke(["train", "--resume", "ck/r"])
        assert resumed.exit_code == 0, resumed.stderr
        assert (
            "Warning: ck/r/best.pt is missing, though the run was evaluated; written again "
            "from last.pt, which holds its best model (step 20)"
        ) in resumed.stderr
        best, last = (checkpoint.load(run / f) for f in ("best.pt", "last.pt"))
        assert best["trainer"]["step"] == 20 and best["model"].keys() == last["model"].keys()
        assert all(torch.equal(best["model"][k], last["model"][k]) for k in best["model"])
        assert invoke(["runs", "--check", "--checkpoint-dir", "ck"]).exit_code == 0


def test_the_last_pt_holds_the_best_model_where_the_last_evaluation_is_the_best():
    from types import SimpleNamespace

    from charrnn.train.resume import _holds_best

    def trainer(step, *evals, restarted=None):
        metrics = [{"kind": "train", "step": 1}]
        metrics += [{"kind": "eval", "step": s, "val_loss": v} for s, v in evals]
        if restarted is not None:
            metrics[restarted + 1]["best_restarted"] = True
        return SimpleNamespace(pos=SimpleNamespace(step=step, metrics=metrics))

    assert _holds_best(trainer(20, (10, 2.0), (20, 1.9)))
    assert not _holds_best(trainer(20, (10, 1.8), (20, 1.9)))
    assert not _holds_best(trainer(20, (10, 1.9), (20, 1.9)))  # a tie: the earlier is best
    assert not _holds_best(trainer(25, (10, 2.0), (20, 1.9)))  # steps since the evaluation
    assert not _holds_best(trainer(0))
    assert _holds_best(trainer(20, (10, 1.8), (20, 1.9), restarted=1))  # the best before is lost


def test_a_folder_in_the_place_of_metrics_jsonl_stops_a_resume_before_it_trains(damaged):
    """The record a resume appends to, a folder: said before any step, as for a checkpoint."""
    with workspace() as root:
        run = root / "ck" / "r"
        copy_run(damaged, run)
        (run / "last.pt").write_bytes((damaged / "last.pt").read_bytes())  # whole again
        (run / "metrics.jsonl").unlink()
        (run / "metrics.jsonl").mkdir()
        resumed = invoke(["train", "--resume", "ck/r", "--steps", "30"])
        line = assert_one_error(resumed, 1, "ck/r/metrics.jsonl is a folder, where the run")
        assert line.endswith("move it out of the run folder, then resume")
        assert "Resuming" not in resumed.stderr
        listed = invoke(["runs", "--checkpoint-dir", "ck", "--json"])  # said there too
        [rec] = map(json.loads, listed.stdout.splitlines())
        assert rec["status"] == "damaged" and rec["note"] == (
            "damaged: ck/r/metrics.jsonl is a folder, where the run writes its metrics.jsonl: "
            "move it out of the run folder (its checkpoints keep its records: a resume writes it "
            "again)"
        )


@pytest.mark.parametrize("state", ["junk", "links", "metrics only", "last cut short"])
def test_a_new_run_never_takes_over_a_run_folder_without_force(damaged, state):
    """Whatever state a run's files are in, its history (metrics.jsonl) is not replaced without
    --force, and the refusal offers the resume that works, or none where nothing resumes."""
    with workspace() as root:
        run = root / "ck" / "r"
        copy_run(damaged, run)  # last.pt cut short
        history = (run / "metrics.jsonl").read_bytes()
        if state != "last cut short":
            for name in ("best.pt", "last.pt"):
                (run / name).unlink()
                if state == "junk":
                    (run / name).write_bytes(b"junk")
                elif state == "links":
                    (run / name).symlink_to(root / "nowhere")
        r = invoke(["train", "-", "--name", "r", "--checkpoint-dir", "ck"], input="ab\n" * 500)
        line = assert_one_error(r, 1, "run 'r' already exists")
        assert (run / "metrics.jsonl").read_bytes() == history
        if state == "last cut short":
            assert "continue it with --resume ck/r/best.pt" in line
        else:
            assert "(no checkpoint of it loads)" in line and "--resume" not in line


def test_runs_check_reads_every_checkpoint_and_finds_one_changed_on_disk(damaged):
    """A byte flipped inside a tensor of last.pt (a disk's fault): a plain `runs` reads only what
    the checkpoints say, and lists it ok; `runs --check` reads them whole against their digests,
    calls it damaged, as the resume that would load it does, and exits 1 (`runs --check && ...`)."""
    import zipfile

    with workspace() as root:
        run = root / "ck" / "r"
        run.mkdir(parents=True)
        for name in ("best.pt", "last.pt", "metrics.jsonl"):
            (run / name).write_bytes((damaged / name).read_bytes())
        with zipfile.ZipFile(run / "last.pt") as archive:  # the largest tensor's bytes
            tensors = [e for e in archive.infolist() if "/data/" in e.filename]
            entry = max(tensors, key=lambda e: e.file_size)
        with open(run / "last.pt", "r+b") as f:
            f.seek(entry.header_offset + 26)
            names = int.from_bytes(f.read(2), "little") + int.from_bytes(f.read(2), "little")
            f.seek(entry.header_offset + 30 + names + entry.file_size // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
        listed = invoke(["runs", "--json", "--checkpoint-dir", "ck"])
        checking = invoke(["runs", "--json", "--check", "--checkpoint-dir", "ck"])
        plain, checked = (
            [json.loads(x) for x in r.stdout.splitlines()] for r in (listed, checking)
        )
        assert listed.exit_code == 0 and [rec["status"] for rec in plain] == ["ok"]
        assert [rec["status"] for rec in checked] == ["damaged"]  # listed, then exit 1
        assert checking.exit_code == 1
        assert checking.stderr == "Error: 1 run damaged: r (see its note)\n"
        assert "last.pt is damaged" in checked[0]["note"] and "digest" in checked[0]["note"]
        line = assert_one_error(invoke(["train", "--resume", "ck/r"]), 1, "last.pt is damaged")
        assert "digest" in line


def advised(r) -> list[str]:
    """The arguments of the `charrnn train ...` a one-line error advises."""
    assert_contract(r, ok_codes=())
    found = re.search(r"charrnn train (.+)$", r.stderr.rstrip("\n"))
    assert found, r.stderr
    return shlex.split(found.group(1))


@pytest.mark.parametrize(
    ("spec", "base", "folder", "advice"),
    [
        ("r", "ck", "ck/r", "ck/r/best.pt"),
        ("r", None, "checkpoints/r", "checkpoints/r/best.pt"),
        ("ck/r", None, "ck/r", "ck/r/best.pt"),
        ("./ck/r/", None, "ck/r", "./ck/r/best.pt"),
        ("ck/r/last.pt", None, "ck/r", "ck/r/best.pt"),
        ("ABS", None, "ck/r", "ABS/best.pt"),
        ("my ck/r", None, "my ck/r", "my ck/r/best.pt"),
    ],
)
def test_a_damaged_last_pt_beside_a_good_best_pt_offers_best_pt(
    damaged, spec, base, folder, advice
):
    with workspace() as root:
        copy_run(damaged, root / folder)
        spec = spec.replace("ABS", str(root / folder))
        advice = advice.replace("ABS", str(root / folder))
        dir_args = ["--checkpoint-dir", base] if base else []
        r = invoke(["train", "--resume", spec, "--steps", "30", *dir_args])
        assert "last.pt is not a charrnn checkpoint (a zip archive cut short" in r.stderr
        assert "--force" not in r.stderr and "--name" not in r.stderr
        # the whole command again, from best.pt: the budget given is not lost
        assert advised(r) == ["--resume", advice, "--steps", "30"]
        assert "can go on from its best.pt (step " in r.stderr
        best_step = checkpoint.load(root / folder / "best.pt")["trainer"]["step"]
        r = invoke(["train", *advised(r), *dir_args])
        assert r.exit_code == 0, r.stderr
        assert r.stderr.startswith(f"Resuming from best.pt at step {best_step}: 'r': ")
        assert r.stdout == f"{Path(advice).parent / 'best.pt'}\n"
        last = checkpoint.load(root / folder / "last.pt")
        assert last["trainer"]["step"] == 30
        records = [json.loads(line) for line in (root / folder / "metrics.jsonl").open()]
        assert records == last["metrics"]
        r = invoke(["train", "--resume", spec, "--steps", "40", "-q", *dir_args])
        assert r.exit_code == 0, r.stderr  # last.pt is whole again: a plain resume goes on


def test_resuming_from_best_pt_writes_last_pt_before_the_first_step(damaged, tmp_path, text):
    """So that a rollback (or a resume after a stop) goes back to it, not to the damaged file."""
    run = RunDir(copy_run(damaged, tmp_path / "r"))
    with pytest.raises(CheckpointError, match=r"can go on from its best\.pt"):
        resume(run, lambda specs, enc: encode_text(text, "t"), corpus_specs=["-"])
    trainer = resume(
        run,
        lambda specs, enc: encode_text(text, "t"),
        corpus_specs=["-"],
        train={"max_steps": 30},
        checkpoint_file=run.best,
    ).trainer
    assert trainer.save_last_first
    for event in trainer.run():
        if isinstance(event, StepEvent):
            break
    assert checkpoint.load(run.last)["trainer"]["step"] == trainer.pos.step - 1


def test_every_resume_error_names_the_folder_given_and_nothing_destructive(damaged, files):
    with workspace() as root:
        run = copy_run(damaged, root / "ck" / "r")
        # best.pt damaged, last.pt good: --resume RUN/best.pt offers last.pt
        (run / "last.pt").write_bytes((damaged / "last.pt").read_bytes())
        (run / "best.pt").write_bytes(b"junk")
        r = invoke(["train", "--resume", "ck/r/best.pt"])
        assert advised(r) == ["--resume", "ck/r/last.pt"] and "--force" not in r.stderr
        assert "instead, with a larger --steps, --epochs or --time where the run spent" in r.stderr
        # the text and budget given come with the advice (a text that moved, 90 seconds more)
        r = invoke(["train", "my text.txt", "--resume", "ck/r/best.pt", "--time", "1m30s"])
        assert advised(r) == ["my text.txt", "--resume", "ck/r/last.pt", "--time", "90s"]
        assert "with a larger" not in r.stderr  # the budget given is the user's
        # both damaged: nothing left to keep, so the advice of `runs --check` and `sample`
        (run / "last.pt").write_bytes(b"junk")
        for spec in ("ck/r", "ck/r/best.pt", "ck/r/last.pt"):
            r = invoke(["train", "--resume", spec])
            assert_contract(r, ok_codes=())
            assert "has no other checkpoint that loads, so it cannot be resumed" in r.stderr
            assert "; train it again, with --force to replace it (or under another" in r.stderr
        # a run trained on text in memory: the advice to pipe it names the run as given
        make_run(root / "ck", "mem", "good", files)
        for spec, again in (
            ("ck/mem", "ck/mem"),
            ("./ck/mem/", "./ck/mem/"),
            ("ck/mem/best.pt", "ck/mem/best.pt"),
            (str(root / "ck/mem"), str(root / "ck/mem")),
        ):
            r = invoke(["train", "--resume", spec, "--steps", "999"])
            assert_contract(r, ok_codes=())
            assert r.stderr.endswith(f"... | charrnn train - --resume {again} --steps 999\n")
        # by name in another checkpoint folder: the advice names the folder, so that it works
        # as given, without --checkpoint-dir
        r = invoke(["train", "--resume", "mem", "--steps", "999", "--checkpoint-dir", "ck"])
        assert r.stderr.endswith("... | charrnn train - --resume ck/mem --steps 999\n"), r.stderr
        r = invoke(["train", "-", "--resume", "ck/mem", "--steps", "999", "-q"], input="xy" * 99)
        assert "the corpus differs" in r.stderr  # the advice, followed, reaches the run
        assert r.stderr.endswith("from its weights (--init-from ck/mem --name NEW)\n"), r.stderr
        # its last.pt damaged: the advice to go on from best.pt pipes the text too
        with open(root / "ck" / "mem" / "last.pt", "r+b") as f:
            f.truncate(100)
        r = invoke(["train", "--resume", "ck/mem", "--steps", "999"])
        assert r.stderr.endswith("... | charrnn train - --resume ck/mem/best.pt --steps 999\n")
        # a file that is not a run's checkpoint: --resume says what it takes
        (root / "weights.pt").write_bytes((damaged / "best.pt").read_bytes())
        r = invoke(["train", "--resume", "weights.pt"])
        assert_contract(r, ok_codes=())
        assert "weights.pt is not a run's last.pt or best.pt" in r.stderr
        assert r.stderr.endswith("its weights: --init-from weights.pt\n")
        r = invoke(["train", "--resume", "ck/mem/metrics.jsonl"])
        assert_contract(r, ok_codes=())
        assert "--init-from" not in r.stderr
        r = invoke(["train", "--resume", "ck/none/best.pt"])
        assert r.stderr == (
            "Error: no run folder or checkpoint file at ck/none/best.pt; "
            "`charrnn runs` lists the runs\n"
        )


def test_a_stopped_resume_names_the_folder_given(damaged, monkeypatch, text):
    """The `Resume with:` line after Ctrl-C names the run as it was given to --resume, and is a
    command that works as given: a run in another checkpoint folder by its folder, a run read
    from standard input with the text piped again."""
    train_cli = importlib.import_module("charrnn.cli.train")  # the module, not the command

    with workspace() as root:
        run = copy_run(damaged, root / "ck" / "r")
        (run / "last.pt").write_bytes((damaged / "last.pt").read_bytes())
        real = train_cli._run

        def stopping(trainer, *a, **kw):
            trainer.request_stop()
            return real(trainer, *a, **kw)

        monkeypatch.setattr(train_cli, "_run", stopping)
        r = invoke(["train", "--resume", "./ck/r", "--steps", "40"])
        assert r.exit_code == 130, r.stderr
        assert r.stderr.rstrip().endswith("Resume with: charrnn train --resume ./ck/r")
        torch.load(run / "last.pt", weights_only=True)  # saved
        new = ["train", "-", *TINY_CLI, "--steps", "40", "--name", "s", "--checkpoint-dir", "ck2"]
        r = invoke(new, input=text)
        assert r.exit_code == 130, r.stderr
        assert r.stderr.rstrip().endswith("Resume with: ... | charrnn train - --resume ck2/s")
        # standard input among files: the advice gives them, with the text piped in its place
        (root / "a b.txt").write_text(text)
        r = invoke([*new[:1], "a b.txt", *new[1:-3], "m", *new[-2:]], input=text)
        assert r.exit_code == 130, r.stderr
        given = shlex.quote(str((root / "a b.txt").resolve()))
        advice = f"Resume with: ... | charrnn train {given} - --resume ck2/m"
        assert r.stderr.rstrip().endswith(advice)
        monkeypatch.undo()
        r = invoke(["train", "-", "--resume", "ck2/s"], input=text)
        assert r.exit_code == 0 and r.stdout == "ck2/s/best.pt\n", r.stderr
        r = invoke(["train", "--resume", "ck2/m"], input=text)  # the advice when none is given
        assert r.stderr.rstrip().endswith(f"... | charrnn train {given} - --resume ck2/m")
        r = invoke(["train", str(root / "a b.txt"), "-", "--resume", "ck2/m"], input=text)
        assert r.exit_code == 0 and r.stdout == "ck2/m/best.pt\n", r.stderr


def test_a_run_trained_on_a_pipe_is_not_read_from_it_again_unasked(text):
    """A pipe's text is gone once read: reopened, it would wait, silent, for a writer."""
    with workspace() as root:
        (root / "t.txt").write_text(text)
        r = invoke(["train", "t.txt", *TINY_CLI, "--steps", "2", "--name", "r", "-q"])
        assert r.exit_code == 0, r.stderr
        (root / "t.txt").unlink()
        os.mkfifo(root / "t.txt")  # where the text was: now a pipe, as `mkfifo` makes

        def read(specs, encoding):
            raise AssertionError(f"opened {specs}")

        with pytest.raises(CorpusError, match=r"t\.txt, a pipe, whose text is not kept; give"):
            resume(root / "checkpoints" / "r", read, train={"max_steps": 4})
        again = resume(  # the text given again: it goes on
            root / "checkpoints" / "r",
            lambda specs, enc: encode_text(text, "t"),
            corpus_specs=["t.txt"],
            train={"max_steps": 4},
        )
        assert again.trainer.pos.step == 2


def test_a_resume_with_no_time_left_says_no_step_was_trained(
    trained_run, text, tmp_path, monkeypatch
):
    """A --time hardly above what the run has used: less than a start-up is refused before it
    starts (it would only add its start-up to the run's time); where a start-up (on a slow
    machine) takes more than was left, the user is told, with the time to give instead, not left
    with a quiet exit 0."""
    from charrnn.train import resume as resuming

    run = tmp_path / "r"
    shutil.copytree(trained_run.path, run)
    used = checkpoint.load(run / "last.pt")["trainer"]["elapsed"]
    args = ["train", "-", "--resume", str(run), "--time", f"{used + 1:.3f}s"]
    refused = invoke(args, input=text)
    assert_one_error(refused, 1, "s left, less than starting it takes", f"well above {used:.0f}s")
    assert checkpoint.load(run / "last.pt")["trainer"]["elapsed"] == used  # nothing added
    monkeypatch.setattr(resuming, "START_UP_S", 0.0)  # a start-up slower than the time left
    args = ["train", "-", "--resume", str(run), "--time", f"{used + 0.001:.3f}s"]
    r = invoke(args, input=text)
    assert r.exit_code == 0 and r.stdout == f"{run / 'best.pt'}\n"
    warning = r.stderr.splitlines()[-1]
    assert warning.startswith("Warning: no step was trained: ")
    # the time advised is a minute more than the run's time so far, this start-up included (a
    # --time just above it would train nothing again: each start-up adds to it)
    from charrnn.cli.report import fmt_time

    so_far = checkpoint.load(run / "last.pt")["trainer"]["elapsed"]
    assert so_far > used
    advised = re.search(r"give a --time well above it to train it further, e.g. (\S+)$", warning)[1]
    assert advised == fmt_time(math.ceil(so_far) + 60)
    r = invoke(["train", "-", "--resume", str(run), "--steps", "201"], input=text)
    assert r.exit_code == 0 and "no step was trained" not in r.stderr  # it trained one


def test_a_checkpoint_given_as_a_run_folder_is_sent_to_its_folder(
    trained_run, tmp_path, monkeypatch
):
    """`plot best.pt` names the folder to give: the file's own, the one a link points into, and
    with a trailing slash the same. The advice, followed, plots."""
    monkeypatch.chdir(tmp_path)
    run = Path("runs") / "a"
    shutil.copytree(trained_run.path, run)
    Path("links").mkdir()
    os.symlink(os.path.join("..", run, "best.pt"), Path("links") / "a.pt")
    for spec in (f"{run}/best.pt", f"{run}/best.pt/", "links/a.pt"):
        line = assert_one_error(invoke(["plot", spec]), 1, "is a checkpoint file, not a run")
        folder = line.rsplit("give its folder, ", 1)[1]
        assert folder == str(run)
        assert invoke(["plot", folder]).exit_code == 0


def test_a_run_whose_checkpoints_are_broken_links_is_said_so_by_every_command(tmp_path):
    """best.pt and last.pt linked to each other (a loop) or to nothing: not a folder of runs
    (which the links, read as entries, made it look), whichever command is given the run."""
    base = tmp_path / "checkpoints"
    (base / "loop").mkdir(parents=True)
    (base / "loop" / "last.pt").symlink_to("best.pt")
    (base / "loop" / "best.pt").symlink_to("last.pt")
    (base / "gone").mkdir()
    (base / "gone" / "best.pt").symlink_to(tmp_path / "nowhere")
    said = {"loop": "Too many levels of symbolic links", "gone": "best.pt is a broken link"}
    for run, why in said.items():
        resume = ["train", "--resume", run, "--steps", "2"]
        for args in (["plot", run], resume, ["sample", "-c", run]):
            r = invoke([*args, "--checkpoint-dir", str(base)])
            line = assert_one_error(r, 1, why)
            assert "folder of runs" not in line, args


def test_a_run_folder_left_before_its_first_save_is_trained_again_as_it_says(corpus_file):
    """A run killed (or out of disk) before its first checkpoint leaves its lock and an empty
    metrics.jsonl: not a run for `runs`, and the readers say to train it again without --force,
    which works."""
    with workspace() as root:
        left = {"f1": (".lock", "metrics.jsonl"), "f2": (".lock", ".metrics.jsonl.x1.tmp")}
        for run, names in left.items():  # f2: killed before metrics.jsonl was whole
            (root / "checkpoints" / run).mkdir(parents=True)
            for name in names:
                (root / "checkpoints" / run / name).write_text("")
        assert invoke(["runs"]).stderr.startswith("no runs in checkpoints")
        for run in left:
            resume = ["train", "--resume", run, "--steps", "2"]
            for args in (resume, ["sample", "-c", run], ["plot", run]):
                line = assert_one_error(invoke(args), 1, "stopped before its first save")
                assert "no --force needed" in line, args
            args = ["train", str(corpus_file), *TINY_CLI, "--steps", "2", "--name", run, "-q"]
            r = invoke(args)
            assert r.exit_code == 0 and r.stdout.strip().endswith("best.pt"), r.stderr


def test_a_lock_file_this_user_may_not_open_is_named(corpus_file, monkeypatch):
    """The run's .lock left by another user (its folder open to this one): the lock is named,
    and what to do, not the folder's permissions (simulated: root opens any file)."""
    with workspace() as root:
        args = ["train", str(corpus_file), *TINY_CLI, "--steps", "2", "--name", "r", "-q"]
        assert invoke(args).exit_code == 0
        lock, real_open = str(root / "checkpoints" / "r" / ".lock"), os.open

        def opening(path, flags, *a, **kw):
            if os.path.abspath(os.fspath(path)) == os.path.abspath(lock):
                raise PermissionError(13, "Permission denied", path)
            return real_open(path, flags, *a, **kw)

        monkeypatch.setattr(os, "open", opening)
        r = invoke(["train", "--resume", "r", "--steps", "4"])
        line = assert_one_error(r, 1, "cannot open the run's lock file checkpoints/r/.lock: ")
        assert "remove it (it holds no data) while no charrnn trains the run; or, where " in line
        assert line.endswith("and resume the copy (--resume COPY)")


def test_a_disk_too_full_for_the_lock_refuses_the_start_and_leaves_no_folder(tmp_path, monkeypatch):
    """The trainer's pid is the lock file's one write: where the disk is full, the run is refused
    there, naming the file and what to do (not an error about "the output"), and the new run's
    folder goes with its lock."""
    from charrnn.runs import folder as folder_module

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(folder_module.os, "pwrite", full)
    run = RunDir(tmp_path / "ck" / "new")
    said = r"cannot write .*new/\.lock: No space left on device; "
    with pytest.raises(RunError, match=said), run.session(new=True):
        pass
    assert os.listdir(tmp_path / "ck") == []


def test_runs_piped_writes_plain_figures_for_scripts():
    """Piped, a run's step and training time are numbers a script adds up (awk reads `1,806` as
    1); the table on a terminal keeps 1,806 and 39s."""
    from charrnn.cli.misc import _run_row

    class Info:
        cut_off = False

        def summary(self):
            return {
                "run": "r", "cell": "lstm", "shape": "1x128", "step": 1806, "train_seconds": 39.24,
                "best_val_bpc": 2.0, "last_val_bpc": 2.1, "folder": "ck/r", "note": "",
                "from": None, "ended": "steps", "training_pid": None,
            }  # fmt: skip

    assert _run_row(Info(), piped=True)[2:4] == ("1806", "39.2")
    assert _run_row(Info())[2:4] == ("1,806", "39s")
    with workspace() as root:
        (root / "t.txt").write_text(make_text(3000))
        r = invoke(["train", "t.txt", *TINY_CLI, "--steps", "2", "-q"])
        listed = invoke(["runs"]).stdout.splitlines()
        assert r.exit_code == 0 and listed[0].split("\t")[2:4] == ["step", "train seconds"]
        assert re.fullmatch(r"2\t\d+\.\d", "\t".join(listed[1].split("\t")[2:4])), listed
