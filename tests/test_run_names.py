"""Names a user types are names they can use again, and advice on resuming fits what is there.

A --name is either refused (exit 2, one `Error:` line naming the name to use instead) or kept
exactly, then found by `-c NAME`, `--resume NAME` and `runs`; a lookup of a name that charrnn
would have cleaned names the run it means. A damaged last.pt beside a good best.pt is answered with
`--resume RUN/best.pt`, in the folder as the user gave it, never with --force; and --resume takes
a run's best.pt or last.pt as a file."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
from pathlib import Path

import pytest
import torch
from conftest import TINY_CLI
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_robust_runs import assert_contract, invoke, make_run, workspace

from charrnn import checkpoint, runs
from charrnn.errors import CheckpointError, RunError
from charrnn.runs import RunDir
from charrnn.text.encoded import encode_text
from charrnn.train.resume import resume_run
from charrnn.train.trainer import StepEvent


@pytest.fixture(scope="module")
def files(trained_run) -> dict[str, Path]:
    """The parts of a good run, as test_robust_runs.make_run takes them."""
    return {"best": trained_run.best, "last": trained_run.last}


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
            used = name
        assert r.exit_code == 0, r.stderr
        assert r.stdout == f"checkpoints/{used}/best.pt\n"
        assert r.stderr == ""  # -q: the name was the user's own, or refused: nothing to say
        listed = [json.loads(line) for line in invoke(["runs", "--json"]).stdout.splitlines()]
        assert [rec["run"] for rec in listed] == [used]
        r = invoke(["sample", "-c", used, "-l", "5", "-s", "1"])
        assert r.exit_code == 0 and len(r.stdout) == 5, r.stderr
        r = invoke(["train", "--resume", used, "-q"])  # found: its budget is spent
        assert r.exit_code == 1 and "has already used its budget" in r.stderr, r.stderr


def test_a_name_derived_from_the_corpus_is_cleaned_and_said(text):
    with workspace() as root:
        (root / ".my notes.pt.txt").write_text(text)
        r = invoke(["train", ".my notes.pt.txt", *TINY_CLI, "--steps", "10"])
        assert r.exit_code == 0, r.stderr
        assert r.stderr.startswith("Training 'my-notes-pt': ")
        assert r.stdout == "checkpoints/my-notes-pt/best.pt\n"
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
    for name in ("a/b", "..", ".x", "x.pt", "~", "a" * 400, "ü" * 200, "\udcff", "x" * 252 + ".pt"):
        made = runs.safe_name(name, tmp_path)
        assert runs.safe_name(made, tmp_path) == made and runs.name_problem(made, tmp_path) is None
        assert not runs.is_path(made) and not made.startswith((".", "-"))
        assert len(os.fsencode(made)) <= runs.name_limit(tmp_path)


# ---------------------------------------------------------------- resuming, and what to do instead


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


def advised(r) -> str:
    """The --resume value a one-line error advises."""
    assert_contract(r, ok_codes=())
    found = re.search(r"charrnn train --resume (.+)$", r.stderr.rstrip("\n"))
    assert found, r.stderr
    return shlex.split(found.group(1))[0]


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
        assert advised(r) == advice
        assert "can go on from its best.pt (step " in r.stderr
        best_step = checkpoint.load(root / folder / "best.pt")["trainer"]["step"]
        r = invoke(["train", "--resume", advice, "--steps", "30", *dir_args])
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
        resume_run(run, lambda specs, enc: encode_text(text, "t"), corpus_specs=["-"])
    trainer = resume_run(
        run,
        lambda specs, enc: encode_text(text, "t"),
        corpus_specs=["-"],
        train={"max_steps": 30},
        checkpoint_file=run.best,
    )
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
        assert advised(r) == "ck/r/last.pt" and "--force" not in r.stderr
        # both damaged: no advice to replace it
        (run / "last.pt").write_bytes(b"junk")
        for spec in ("ck/r", "ck/r/best.pt", "ck/r/last.pt"):
            r = invoke(["train", "--resume", spec])
            assert_contract(r, ok_codes=())
            assert "has no other checkpoint that loads, so it cannot be resumed" in r.stderr
            assert "--force" not in r.stderr
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
            assert r.stderr.endswith(f"... | charrnn train - --resume {again}\n"), r.stderr
        r = invoke(["train", "--resume", "mem", "--steps", "999", "--checkpoint-dir", "ck"])
        assert r.stderr.endswith("... | charrnn train - --resume mem\n"), r.stderr
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


def test_a_stopped_resume_names_the_folder_given(damaged, monkeypatch):
    """The `Resume with:` line after Ctrl-C names the run as it was given to --resume."""
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
