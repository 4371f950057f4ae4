"""Finding runs and checkpoints whatever the checkpoint folder holds: damaged, untrained and oddly
named runs beside good ones, and every way of naming one with -c, --resume and --checkpoint-dir."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from charrnn import checkpoint
from charrnn.cli import cli
from charrnn.cli.common import cache_dir
from charrnn.errors import CheckpointError
from charrnn.runs import RunDir, is_path

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


def invoke(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def assert_contract(r, ok_codes=(0,)):
    """Exit 0 (or another code the caller allows), or 1 with exactly one `Error:` line and
    nothing on stdout, or 2 for usage; never a traceback."""
    assert "Traceback" not in r.stderr
    if r.exit_code == 1:
        assert r.stdout == "" and r.stderr.startswith("Error: "), r.stderr
        assert r.stderr.count("\n") == 1, r.stderr
    elif r.exit_code == 2:
        assert r.stdout == "" and "Usage:" in r.stderr
    else:
        assert r.exit_code in ok_codes, (r.exit_code, r.stderr)


def tsv(field: str) -> str:
    """A field as piped `runs` writes it: a backslash doubled, a tab and anything a reader may
    take for a line break written as its Python escape."""
    out = field.replace("\\", "\\\\")
    for c in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029":
        out = out.replace(c, c.encode("unicode_escape").decode())
    return out


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
            assert len(row) == 9 and row[6] == tsv(f"checkpoints/{name}") and row[8] == ""
            if kind in ("good", "binary metrics"):
                assert row[1] == "LSTM 2x24" and row[2] == "200" and row[7] == ""

        r = invoke(["sample", "-l", "5", "-s", "1"])
        assert_contract(r)
        if any(kind in SAMPLEABLE for kind in layout.values()):
            assert r.exit_code == 0 and len(r.stdout) == 5, r.stderr
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
            assert r.exit_code == 0 and len(r.stdout) == 5, r.stderr  # the run, not ./spec
        elif not is_path(spec) and layout.get(spec) in UNTRAINED:
            assert r.exit_code == 1 and "has not trained to its first evaluation" in r.stderr
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


# ---------------------------------------------------------------- one class at a time, by example


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
        assert r.exit_code == 0 and len(r.stdout) == 5
        r = invoke(["sample", "-c", "locked"])
        assert r.exit_code == 1 and r.stderr == (
            "Error: cannot read checkpoints/locked/best.pt: Permission denied\n"
        )


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
        assert r.exit_code == 1 and r.stdout == ""
        assert r.stderr.startswith("Error: no trained runs in checkpoints: 'cut': not trained to")
        assert "charrnn train --resume cut" in r.stderr and r.stderr.count("\n") == 1
        r = invoke(["sample", "-c", "cut", "-l", "5"])
        assert r.exit_code == 1 and "give the file checkpoints/cut/last.pt instead" in r.stderr
        # named as a file, it is the user's explicit choice
        assert invoke(["sample", "-c", "checkpoints/cut/last.pt", "-l", "5"]).exit_code == 0
        make_run(base, "older", "good", files)
        for p in (base / "older").iterdir():
            os.utime(p, (0, 0))
        r = invoke(["sample", "-l", "5", "-s", "1"])
        assert r.exit_code == 0 and len(r.stdout) == 5
        assert r.stderr.startswith("Note: using run 'older', skipping newer runs")
        assert "'cut': not trained" in r.stderr and r.stderr.count("\n") == 1
        r = invoke(["score", "-c", "cut", "-"], input="ANNA:\n")
        assert r.exit_code == 1 and "has not trained to its first evaluation" in r.stderr


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
        assert (rec["step"], rec["last_eval_step"]) == (237, 200)
        assert invoke(["runs"]).stdout.splitlines()[1].split("\t")[2] == "237"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"hello, I am text\n" * 10, "a text file, not a torch archive"),
        (bytes(range(256)) * 4, "not a torch archive"),
        ("half", "a zip archive cut short: the file is truncated"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_is_one_clear_line(trained_run, content, reason):
    with workspace() as root:
        if content == "half":
            blob = trained_run.best.read_bytes()
            content = blob[: len(blob) // 3]
        (root / "bad.pt").write_bytes(content)
        r = invoke(["sample", "-c", "bad.pt"])
        assert r.exit_code == 1 and r.stdout == ""
        assert r.stderr == f"Error: bad.pt is not a charrnn checkpoint ({reason})\n"


@settings(max_examples=50, deadline=None)
@given(blob=st.binary(max_size=2000), cut=st.floats(0, 1))
def test_any_damaged_file_gets_one_complete_line(trained_run, blob, cut):
    """Random bytes, and a real checkpoint cut or overwritten anywhere."""
    real = trained_run.best.read_bytes()
    at = int(cut * len(real))
    with tempfile.TemporaryDirectory() as where:
        for i, content in enumerate((blob, real[:at], real[:at] + blob + real[at + len(blob) :])):
            path = Path(where) / f"c{i}.pt"
            path.write_bytes(content)
            try:
                checkpoint.load(path)
            except CheckpointError as e:
                message = str(e)
                assert "\n" not in message and len(message) < 300, message
                assert message.startswith(f"{path} ") and "please" not in message


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
