"""Learning curves: training records in the metrics (every K steps, exact across a resume, cut
back on a rollback), and `charrnn plot`, which draws them."""

import importlib
import itertools
import json
import math
from pathlib import Path

import pytest
from conftest import drain, make_trainer, poison
from helpers.cli import assert_one_error

from charrnn import checkpoint
from charrnn.runs import is_evaluation
from charrnn.train import config as config_module
from charrnn.train.trainer import EvalEvent, RollbackEvent, StepEvent

# eval_every 10 and 3 records per evaluation: a training record every 3 steps and at every
# evaluation, so both kinds of record boundary are crossed.
RECORDS = {"eval_every": 10, "records_per_eval": 3}


def on_disk(trainer) -> list[dict]:
    return [json.loads(line) for line in trainer.run_dir.metrics.read_text().splitlines()]


def training(records) -> list[dict]:
    return [r for r in records if not is_evaluation(r)]


def test_training_records_come_every_k_steps_and_at_each_evaluation(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=25, **RECORDS)
    events = drain(trainer)
    losses = {e.step: e.loss for e in events if isinstance(e, StepEvent)}
    records = on_disk(trainer)
    assert records == trainer.pos.metrics == checkpoint.load(trainer.run_dir.last)["metrics"]
    train = training(records)
    # every 3 steps, at the evaluations (10, 20), and at the budget's end (25)
    assert [r["step"] for r in train] == [3, 6, 9, 10, 12, 15, 18, 20, 21, 24, 25]
    c, previous = trainer.config, 0
    for r in train:
        assert r["kind"] == "train" and r["steps"] == r["step"] - previous  # no step lost or twice
        window = [losses[s] for s in range(previous + 1, r["step"] + 1)]
        assert r["train_loss"] == round(sum(window) / len(window), 5)
        # each rounded to 5 places on its own: apart by up to 0.5e-5 * (1 + 1 / ln 2)
        assert r["train_bpc"] == pytest.approx(r["train_loss"] / math.log(2), abs=1.3e-5)
        assert r["chars"] == r["step"] * c.batch_size * c.seq_len
        assert r["elapsed"] >= 0 and r["lr"] > 0
        previous = r["step"]
    evals = [r for r in records if is_evaluation(r)]
    assert [(r["kind"], r["step"]) for r in evals] == [("eval", 10), ("eval", 20), ("eval", 25)]
    assert all(r["chars"] == r["step"] * c.batch_size * c.seq_len for r in evals)
    assert next(r for r in records if r["step"] == 10)["kind"] == "train"  # a window ends first
    assert evals == [e.record for e in events if isinstance(e, EvalEvent)]


def test_a_long_run_on_a_short_text_thins_its_records_by_the_doubling(tmp_path, text, monkeypatch):
    """An evaluation an epoch of a few steps would put a record at every step of a long run (an
    hour: 96,901 of them): past FULL_RATE_RECORDS they come at twice the spacing with each
    doubling of the steps, and still at every evaluation, no step lost or counted twice."""
    monkeypatch.setattr(config_module, "FULL_RATE_RECORDS", 6)
    trainer = make_trainer(text, tmp_path / "r", max_steps=100, eval_every=40, records_per_eval=40)
    events = drain(trainer)
    losses = {e.step: e.loss for e in events if isinstance(e, StepEvent)}
    train = training(on_disk(trainer))
    # 1 apart to step 6, 2 to 12, 4 to 24, 8 to 48, 16 after; and at the evaluations (40, 80)
    # and the budget's end (100)
    expected = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 100]
    assert [r["step"] for r in train] == expected
    previous = 0
    for r in train:
        window = [losses[s] for s in range(previous + 1, r["step"] + 1)]
        assert r["steps"] == len(window) and r["train_loss"] == round(sum(window) / len(window), 5)
        previous = r["step"]
    # a budget's worth: about FULL_RATE_RECORDS / 2 a doubling, however many steps
    c = trainer.config
    assert sum(c.records_at(s) for s in range(1, 1_000_001)) < 6 + 3 * 20


def test_a_resumed_run_records_what_an_uninterrupted_one_does(tmp_path, text):
    whole = make_trainer(text, tmp_path / "whole", max_steps=25, **RECORDS)
    drain(whole)
    first = make_trainer(text, tmp_path / "cut", max_steps=25, **RECORDS)
    for event in first.run():
        if isinstance(event, StepEvent) and event.step == 14:  # two steps into a window
            first.request_stop()
    assert first.pos.step == 14
    second = make_trainer(text, tmp_path / "cut", seed=99, max_steps=25, **RECORDS)
    second.restore(checkpoint.load_run(second.run_dir.last))
    drain(second)

    def timeless(records):  # the clock differs
        return [
            {k: v for k, v in r.items() if k not in ("elapsed", "eval_seconds")} for r in records
        ]

    assert timeless(on_disk(second)) == timeless(on_disk(whole))
    assert on_disk(second) == second.pos.metrics


def test_a_rollback_drops_the_records_made_after_the_checkpoint_it_goes_back_to(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=30, **RECORDS)
    poison(trainer, at_steps={25})
    at_rollback = saved = None
    for event in trainer.run():
        if isinstance(event, RollbackEvent):
            at_rollback, saved = on_disk(trainer), checkpoint.load(trainer.run_dir.last)["metrics"]
    assert training(at_rollback)[-1]["step"] == 20  # 21 and 24 were made after last.pt: gone
    assert at_rollback == saved == trainer.pos.metrics[: len(saved)]
    records = on_disk(trainer)
    assert records == trainer.pos.metrics
    train, previous = training(records), 0
    assert [r["step"] for r in train] == [3, 6, 9, 10, 12, 15, 18, 20, 21, 24, 27, 30]
    for r in train:  # once each, in order, across the rollback
        assert r["steps"] == r["step"] - previous
        previous = r["step"]


# --------------------------------------------------------------------------- charrnn plot


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, text):
    """Checkpoint folder with runs 'a' (an LSTM, 30 steps), 'b' (its checkpoint says GRU, 20
    steps), 'young' (stopped at step 5, before its first evaluation) and 'newborn' (stopped
    before its first step)."""
    import torch

    base = tmp_path_factory.mktemp("plot") / "checkpoints"
    drain(make_trainer(text, base / "a", max_steps=30, **RECORDS))
    drain(make_trainer(text, base / "b", seed=1, max_steps=20, **RECORDS))
    for file in ("best.pt", "last.pt"):  # both: files of two cells are two runs' (runs --check)
        path = base / "b" / file
        payload = torch.load(path, weights_only=True)
        torch.save({**payload, "model_config": {**payload["model_config"], "cell": "gru"}}, path)
    for name, stop_at in (("young", 5), ("newborn", 0)):
        trainer = make_trainer(text, base / name, max_steps=30, **RECORDS)
        if stop_at == 0:
            trainer.request_stop()
        for event in trainer.run():
            if isinstance(event, StepEvent) and event.step == stop_at:
                trainer.request_stop()
    return base


def metrics_of(base, name) -> list[dict]:
    return [json.loads(line) for line in (base / name / "metrics.jsonl").read_text().splitlines()]


def test_plot_piped_writes_one_point_a_line(env, runs_dir):
    r = env(["plot", "a", "b", "--checkpoint-dir", str(runs_dir)])
    assert r.exit_code == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == "run\tcell\tcurve\tseconds\tbpc\tfolder"
    rows = [line.split("\t") for line in lines[1:]]
    expected = [
        [name, cell, "val", f"{e['elapsed']:.2f}", f"{e['val_bpc']:.5f}", str(runs_dir / name)]
        for name, cell in (("a", "lstm"), ("b", "gru"))
        for e in metrics_of(runs_dir, name)
        if e["kind"] == "eval"
    ]
    assert rows == expected and len(rows) == 3 + 2  # evaluations only, unless --train

    r = env(["plot", "a", "--train", "--x", "steps", "--checkpoint-dir", str(runs_dir)])
    lines = r.stdout.splitlines()
    assert lines[0] == "run\tcell\tcurve\tstep\tbpc\tfolder"
    steps = [int(line.split("\t")[3]) for line in lines[1:] if line.split("\t")[2] == "train"]
    assert steps == [t["step"] for t in training(metrics_of(runs_dir, "a"))]


def test_plot_json_has_every_point_with_all_three_xs(env, runs_dir):
    r = env(["plot", "a", "b", "--train", "--json", "--checkpoint-dir", str(runs_dir)])
    assert r.exit_code == 0 and r.stderr == ""
    points = [json.loads(line) for line in r.stdout.splitlines()]
    for name in ("a", "b"):
        records = metrics_of(runs_dir, name)
        mine = [p for p in points if p["run"] == name]
        assert [(p["curve"], p["step"], p["bpc"]) for p in mine] == [
            *[("val", e["step"], e["val_bpc"]) for e in records if e["kind"] == "eval"],
            *[("train", t["step"], t["train_bpc"]) for t in training(records)],
        ]
        assert all(p["chars"] == p["step"] * 4 * 16 for p in mine)  # B x T of TINY_TRAIN
        assert {p["cell"] for p in mine} == {"gru" if name == "b" else "lstm"}


def test_more_runs_than_letters_on_a_terminal_are_told_of(env, runs_dir, monkeypatch):
    from click.testing import _NamedTextIOWrapper

    monkeypatch.setattr(_NamedTextIOWrapper, "isatty", lambda self: True)
    plot_module = importlib.import_module("charrnn.cli.plot")  # not the command of that name
    monkeypatch.setattr(plot_module, "LETTERS", "AB")  # as 27 runs are to 26 letters
    r = env(["plot", "a", "b", "young", "--train", "--checkpoint-dir", str(runs_dir)])
    assert r.exit_code == 0 and r.stdout.splitlines()[-1] == "  a  young (lstm) training"
    assert r.stderr == (
        "Note: the text chart tells 2 runs apart; from run 3 on, letters repeat: draw them with "
        "-o FILE.png, or fewer\n"
    )


def test_plot_on_a_terminal_draws_a_labelled_text_chart(env, runs_dir, monkeypatch):
    from click.testing import _NamedTextIOWrapper

    monkeypatch.setattr(_NamedTextIOWrapper, "isatty", lambda self: True)
    monkeypatch.setenv("COLUMNS", "90")
    monkeypatch.setenv("LINES", "40")
    r = env(["plot", "a", "b", "--train", "--x", "chars", "--checkpoint-dir", str(runs_dir)])
    assert r.exit_code == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == "bits per character" and "\t" not in r.stdout
    assert all(len(line) <= 90 for line in lines)
    legend = lines[-4:]
    assert legend == [
        "  A  a (lstm) validation",
        "  a  a (lstm) training",
        "  B  b (gru) validation",
        "  b  b (gru) training",
    ]
    assert lines[-5].strip() == "characters trained"
    area = lines[1:18]  # 17 rows, highest bpc at the top
    bpc = [
        r["val_bpc" if r["kind"] == "eval" else "train_bpc"]
        for name in ("a", "b")
        for r in metrics_of(runs_dir, name)
    ]
    top, bottom = max(bpc), min(bpc)
    assert area[0].split("|")[0].strip() == f"{top:.2f}"
    assert area[-1].split("|")[0].strip() == f"{bottom:.2f}"
    assert all(marker in "".join(area) for marker in "AaBb")
    # the x axis labelled at round values (0, 1k, 2k...), each under its column
    scale = {"k": 1e3, "M": 1e6}
    ticks = [float(t.rstrip("kM")) * scale.get(t[-1], 1) for t in lines[-6].split()]
    step = ticks[1] - ticks[0]
    assert ticks[0] == 0 and all(b - a == pytest.approx(step) for a, b in itertools.pairwise(ticks))
    assert step / 10 ** math.floor(math.log10(step)) in (1, 2, 2.5, 5), ticks
    # a terminal of 20 lines holds the whole chart, its legend too
    monkeypatch.setenv("LINES", "20")
    r = env(["plot", "a", "b", "--train", "--x", "chars", "--checkpoint-dir", str(runs_dir)])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) < 20


def test_plot_of_runs_that_do_not_compare_says_so(env, runs_dir, tmp_path, text):
    """Curves of runs validated on different texts share a chart, said in a note (as `runs`
    says of runs of one text that read different numbers of its characters); a run named
    after its cell is labelled once, not `lstm (lstm)`."""
    import shutil

    base = tmp_path / "ck"
    shutil.copytree(runs_dir / "a", base / "lstm")
    drain(make_trainer(text[::-1], base / "other", max_steps=10, **RECORDS))
    r = env(["plot", "lstm", "other", "--checkpoint-dir", str(base)])
    assert r.exit_code == 0 and r.stderr == (
        "Note: the runs drawn were validated on 2 different texts (or splits of one: lstm | "
        "other): their bits per character do not compare across them\n"
    )
    assert env(["plot", "lstm", "--checkpoint-dir", str(base)]).stderr == ""  # one run: nothing
    # ... and beside it, runs of one of those texts that read it unlike: both notes
    import json

    import torch

    from charrnn import checkpoint

    shutil.copytree(runs_dir / "a", base / "part")
    last = torch.load(base / "part" / "last.pt", weights_only=True)
    records = [*last["metrics"][:-1], {**last["metrics"][-1], "val_chars": 500}]
    kept = {k: v for k, v in last.items() if not k.startswith("format") and k != "digests"}
    checkpoint.save({**kept, "metrics": records}, base / "part" / "last.pt")
    lines = (base / "part" / "metrics.jsonl").read_text().splitlines()
    (base / "part" / "metrics.jsonl").write_text(
        "\n".join([*lines[:-1], json.dumps({**json.loads(lines[-1]), "val_chars": 500})]) + "\n"
    )
    said = env(["plot", "lstm", "other", "part", "--checkpoint-dir", str(base)]).stderr

    first, second = said.splitlines()
    assert first.startswith("Note: the runs drawn were validated on 2 different texts")
    assert second.startswith("Note: runs of the same text read different numbers of its")
    assert "(part: 500; lstm: " in second
    from charrnn.cli.plot import _series
    from charrnn.curves import read_curves
    from charrnn.runs import RunDir

    labels = [s[3] for s in _series([read_curves(RunDir(base / "lstm"))], ("val",))]
    assert labels == ["lstm validation"]


def test_plot_of_a_run_that_diverged_before_any_record_says_to_start_over(env, tmp_path, text):
    """Its resume would refuse (it keeps the rate that blew up): not that advice."""
    trainer = make_trainer(text, tmp_path / "ck" / "blown", max_steps=40, eval_every=10)
    poison(trainer, at_steps=set(range(1, 41)), once=False)
    with pytest.raises(Exception, match="diverged 4 times in a row"):
        drain(trainer)
    r = env(["plot", "blown", "--checkpoint-dir", str(tmp_path / "ck")])
    line = assert_one_error(r, 1, "run 'blown' has no records yet")
    assert line.endswith("start it over with a lower --lr and --force (a resume keeps its rate)")


def test_plot_of_a_run_whose_checkpoints_do_not_load(env, runs_dir, tmp_path):
    """Alone: one line that says to train it again (plot reads no model: no other checkpoint to
    give); beside others: left out with a note, as a run without records is."""
    import shutil

    base = ["--checkpoint-dir", str(tmp_path / "ck")]
    shutil.copytree(runs_dir / "a", tmp_path / "ck" / "a")
    shutil.copytree(runs_dir / "a", tmp_path / "ck" / "bad")
    for name in ("best.pt", "last.pt"):
        path = tmp_path / "ck" / "bad" / name
        path.write_bytes(path.read_bytes()[:3000])
    line = assert_one_error(env(["plot", "bad", *base]), 1, "bad/last.pt is not a charrnn")
    assert line.endswith(
        "its best.pt does not load either: train the run again, with --force to replace it"
    )
    r = env(["plot", "a", "bad", *base])
    assert r.exit_code == 0 and "\na\t" in r.stdout and "bad" not in r.stdout
    assert r.stderr.startswith("Note: left out: ") and "bad/last.pt" in r.stderr


def test_plot_of_a_run_without_records_says_so(env, runs_dir):
    base = ["--checkpoint-dir", str(runs_dir)]
    r = env(["plot", "young", *base])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == (  # the advice `runs` gives: its folder, its text (read from stdin)
        "Error: run 'young' has no evaluation yet (step 5); --train draws its training loss, "
        f"or train it on: ... | charrnn train - --resume {runs_dir}/young\n"
    )
    r = env(["plot", "young", "--train", *base])  # its training records are there to draw
    # step 3's record; steps 4 and 5 are the window its checkpoint keeps for the next one
    assert r.exit_code == 0 and r.stdout.count("\ttrain\t") == 1
    r = env(["plot", "newborn", "--train", *base])
    assert r.exit_code == 1 and r.stderr.startswith("Error: run 'newborn' has no records yet")
    r = env(["plot", "a", "newborn", *base])  # the others are drawn, with a note
    assert r.exit_code == 0 and r.stdout.count("\na\t") == 3 and "newborn" not in r.stdout
    assert r.stderr.startswith("Note: left out: run 'newborn' has no records yet")


def test_a_run_training_now_is_said_to_be_so_not_advised_a_resume_that_is_refused(
    env, runs_dir, tmp_path
):
    """While `charrnn train` holds a run (its lock), every command that finds it not yet
    evaluated says so and to wait, where each advised a `--resume` the lock refuses."""
    import os
    import shutil

    from charrnn.runs import RunDir

    shutil.copytree(runs_dir / "young", tmp_path / "ck" / "young")
    shutil.copytree(runs_dir / "a", tmp_path / "ck" / "a")
    base = ["--checkpoint-dir", str(tmp_path / "ck")]
    pid = os.getpid()
    with RunDir(tmp_path / "ck" / "young").session():  # as a trainer holds it
        r = env(["plot", "young", *base])
        assert r.exit_code == 1 and r.stderr == (
            f"Error: run 'young' has no evaluation yet (it is being trained now, pid {pid}); "
            "--train draws its training loss, or wait for its first evaluation\n"
        )
        r = env(["sample", "-c", "young", *base])
        assert_one_error(r, 1, f"run young is being trained now (pid {pid})", "wait for it")
        assert "--resume" not in r.stderr
        r = env(["runs", "--json", *base])
        rows = {row["run"]: row for row in map(json.loads, r.stdout.splitlines())}
        assert rows["young"]["training_pid"] == pid and rows["a"]["training_pid"] is None
        assert rows["young"]["note"] == (
            f"being trained now (pid {pid}); best.pt comes with its first evaluation"
        )
        r = env(["runs", *base])  # piped: the last column says it
        lines = dict(line.split("\t", 1) for line in r.stdout.splitlines()[1:])
        assert lines["young"].endswith("\ttraining now") and not lines["a"].endswith("now")
    r = env(["runs", "--json", *base])  # the lock released: the advice to go on is back
    young = next(row for row in map(json.loads, r.stdout.splitlines()) if row["run"] == "young")
    assert young["training_pid"] is None and "--resume" in young["note"]


def test_a_probe_of_a_run_never_stops_a_trainer_from_starting(tmp_path, monkeypatch):
    """`charrnn runs` takes the run's lock for an instant to see whether it is held; a trainer
    that starts in that instant waits it out instead of taking it as another trainer's."""
    import fcntl
    import os

    folder = importlib.import_module("charrnn.runs.folder")
    run = folder.RunDir(tmp_path / "r")
    run.path.mkdir()
    probe = os.open(run.path / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # the probe, caught holding it
    waits = []

    def the_probe_lets_go(seconds):
        waits.append(seconds)
        fcntl.flock(probe, fcntl.LOCK_UN)

    monkeypatch.setattr(folder.time, "sleep", the_probe_lets_go)
    with run.session():
        assert run.trainer() == os.getpid()
    assert len(waits) == 1 and run.trainer() is None
    os.close(probe)


def test_plot_usage_and_user_errors(env, runs_dir):
    r = env(["plot", "a", "-o", "curves.pdf", "--checkpoint-dir", str(runs_dir)])
    assert_one_error(r, 2, "must end in .png or .svg")
    r = env(["plot", "a", "-o", "out/.PNG", "--checkpoint-dir", str(runs_dir)])
    assert_one_error(r, 2, "has no name before its type: give one, as curves.png")
    assert_one_error(env(["plot"]), 2)
    r = env(["plot", "nosuch", "--checkpoint-dir", str(runs_dir)])
    assert assert_one_error(r).startswith("Error: no run 'nosuch'")


def test_a_figure_without_matplotlib_is_one_line_naming_the_extra(env, runs_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    r = env(["plot", "a", "-o", "curves.png", "--checkpoint-dir", str(runs_dir)])
    assert_one_error(r, 1, "pip install matplotlib")
    assert not list(Path.cwd().iterdir())  # no figure, no temp file
    assert env(["plot", "a", "--checkpoint-dir", str(runs_dir)]).exit_code == 0  # text needs none


def test_plot_writes_a_png_and_an_svg(env, runs_dir):
    pytest.importorskip("matplotlib")  # an extra: CI installs only '.[test]'
    import shutil
    import warnings
    from xml.etree import ElementTree

    for name in ("curves.png", "curves.SVG"):
        r = env(["plot", "a", "b", "--train", "-o", name, "--checkpoint-dir", str(runs_dir)])
        assert r.exit_code == 0 and r.stdout == "" and r.stderr == f"Wrote {name}\n"
    assert Path("curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert ElementTree.parse("curves.SVG").getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert sorted(p.name for p in Path.cwd().iterdir()) == ["curves.SVG", "curves.png"]
    # a name the font cannot draw: one note (where the font lacks it), no warning of matplotlib's
    shutil.copytree(runs_dir / "a", runs_dir.parent / "cjk" / "\u65e5\u672c")
    with warnings.catch_warnings():  # in a process of its own, a warning would go to stderr
        warnings.simplefilter("error")
        base = ["--checkpoint-dir", str(runs_dir.parent / "cjk")]
        r = env(["plot", "\u65e5\u672c", "-o", "cjk.png", *base])
    assert r.exit_code == 0 and "Warning" not in r.stderr, r.stderr
    assert all(
        line.startswith(("Note: the figure's font", "Wrote")) for line in r.stderr.splitlines()
    )
    Path("cjk.png").unlink()
    Path("figures").mkdir()
    Path("figures/latest.png").symlink_to("../curves.png")  # a link: its target is replaced
    r = env(["plot", "b", "-o", "figures/latest.png", "--checkpoint-dir", str(runs_dir)])
    assert r.exit_code == 0 and Path("figures/latest.png").is_symlink()
    assert Path("curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("figure", [None, float("nan"), float("inf")])
def test_plot_of_a_run_whose_losses_are_not_numbers_says_so(env, runs_dir, tmp_path, figure):
    """Evaluations (and training records) whose losses are not numbers, as a model whose weights
    broke down makes them (null, as charrnn writes them; NaN or Infinity, as it once did): the
    message says what they hold, not that there are none."""
    import shutil

    import torch

    run = tmp_path / "broken"
    shutil.copytree(runs_dir / "a", run)
    records = metrics_of(runs_dir, "a")
    for r in records:
        for key in ("val_loss", "val_bpc", "train_loss", "train_bpc"):
            if key in r:
                r[key] = figure
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    payload = torch.load(run / "last.pt", weights_only=True)  # its own copy says the same
    torch.save({**payload, "metrics": records}, run / "last.pt")
    evals = sum(r["kind"] == "eval" for r in records)
    base = ["--checkpoint-dir", str(tmp_path)]
    r = env(["plot", "broken", *base])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == (
        f"Error: run 'broken' has {evals} evaluations (step 30), none with a finite loss (NaN "
        "or infinity: its weights broke down), so there is nothing to draw; train it again from "
        "the start with --force\n"
    )
    r = env(["plot", "broken", "--train", *base])
    assert r.exit_code == 1 and "training records (step 30), none with a finite loss" in r.stderr


def test_a_figure_that_cannot_be_written_is_one_line_and_keeps_the_old_file(
    env, runs_dir, monkeypatch
):
    pytest.importorskip("matplotlib")
    import errno
    import os

    Path("curves.png").write_bytes(b"the previous figure")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)  # the disk fills as the file is made durable
    r = env(["plot", "a", "-o", "curves.png", "--checkpoint-dir", str(runs_dir)])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == (
        "Error: cannot write the output: curves.png: No space left on device; free some space "
        "on that disk, or write to another file\n"
    )
    assert [p.name for p in Path.cwd().iterdir()] == ["curves.png"]  # no temp file left
    assert Path("curves.png").read_bytes() == b"the previous figure"
    os.symlink("/dev/full", "full.png")  # a device is written in place, never replaced
    r = env(["plot", "a", "-o", "full.png", "--checkpoint-dir", str(runs_dir)])
    assert_one_error(r, 1, "full.png: No space left on device")


class StubFigure:
    """matplotlib's Figure as far as plot draws with it (CI installs no extra): savefig writes
    a few bytes, so that where they go can be checked."""

    def __init__(self, **options):
        pass

    def add_subplot(self):
        from unittest import mock

        return mock.MagicMock()

    def savefig(self, f, format, metadata):
        f.write(b"a figure")


def test_a_figure_never_replaces_a_saved_model_or_a_read_only_file(env, runs_dir, monkeypatch):
    """As every other output: a typo such as `-o best.pt` renamed, or a file marked read-only
    (also to root, who may write any file), is refused and left as it was."""
    import os

    import torch

    monkeypatch.setattr(
        importlib.import_module("charrnn.cli.plot"), "_figure_class", lambda: StubFigure
    )
    base = ["--checkpoint-dir", str(runs_dir)]
    torch.save({"weights": torch.zeros(2)}, "model.png")
    saved = Path("model.png").read_bytes()
    r = env(["plot", "a", "-o", "model.png", *base])
    assert_one_error(r, 1, "model.png holds a saved model")
    assert Path("model.png").read_bytes() == saved
    Path("kept.svg").write_text("the figure to keep")
    os.chmod("kept.svg", 0o444)
    r = env(["plot", "a", "-o", "kept.svg", *base])
    assert_one_error(r, 1, "kept.svg: Permission denied")
    assert Path("kept.svg").read_text() == "the figure to keep"
    r = env(["plot", "a", "-o", "new.png", *base])  # and where nothing stands in the way: written
    assert r.exit_code == 0 and Path("new.png").read_bytes() == b"a figure"
    assert sorted(p.name for p in Path.cwd().iterdir()) == ["kept.svg", "model.png", "new.png"]


def test_a_metrics_file_cut_short_or_emptied_draws_what_the_checkpoint_kept(runs_dir, tmp_path):
    """metrics.jsonl is the newest word while a run trains (training appends to it between
    checkpoints), but a file cut short, emptied or replaced by junk must not hide what the
    checkpoint kept (the plot then said "no evaluation yet" and advised a resume that trained
    nothing), nor lines after the checkpoint of a run that ended add to it."""
    import shutil

    from charrnn.curves import read_curves
    from charrnn.runs import RunDir

    run = tmp_path / "cut"
    shutil.copytree(runs_dir / "a", run)
    whole = read_curves(RunDir(run))
    assert [p.step for p in whole.val] == [
        r["step"] for r in metrics_of(runs_dir, "a") if r["kind"] == "eval"
    ]
    data = (run / "metrics.jsonl").read_bytes()
    junk = b"{}\n" * 300 + b'{"kind": "eval", "step": 1, "val_bpc": 9.9}\n' * 50  # as JSON as any
    for damaged in (data[:500], b"", b"\x00" * 300, data[: len(data) // 2] + b"{junk\n", junk):
        (run / "metrics.jsonl").write_bytes(damaged)
        assert read_curves(RunDir(run)) == whole
    # lines written after the checkpoint (a run training now): drawn after the checkpoint's
    later = {
        "kind": "eval",
        "step": 40,
        "epoch": 9.0,
        "elapsed": 99.0,
        "chars": 2560,
        "val_loss": 1.0,
    }
    (run / "metrics.jsonl").write_bytes(data[:500] + b"\n" + json.dumps(later).encode() + b"\n")
    assert read_curves(RunDir(run)) == whole  # it ended (steps): its checkpoint holds them all
    with RunDir(run).session():  # trained on now: the lines after its last.pt are its newest
        curves = read_curves(RunDir(run))
    assert curves.val[:-1] == whole.val and curves.val[-1].step == 40


def test_curves_of_records_written_before_kinds_and_chars(runs_dir, tmp_path):
    """Old lines (no kind, no chars) are evaluations, their chars from the checkpoint's batch
    shape, and their train_loss the training curve; damaged lines are skipped."""
    import shutil

    import torch

    from charrnn.curves import read_curves
    from charrnn.runs import RunDir, inspect

    run = tmp_path / "old"
    shutil.copytree(runs_dir / "a", run)
    evals = [r for r in metrics_of(runs_dir, "a") if r["kind"] == "eval"]
    old = [{k: v for k, v in r.items() if k not in ("kind", "chars")} for r in evals]
    lines = [json.dumps(r) for r in old]
    (run / "metrics.jsonl").write_bytes(
        ("\n".join(lines) + "\n").encode() + b'{"step": 1\xff\n[1]\n'
    )
    payload = torch.load(run / "last.pt", weights_only=True)  # whose copy was as old
    torch.save({**payload, "metrics": old}, run / "last.pt")
    curves = read_curves(RunDir(run))
    assert [(p.step, p.chars, p.bpc) for p in curves.val] == [
        (r["step"], r["step"] * 4 * 16, r["val_bpc"]) for r in evals
    ]
    assert [p.bpc for p in curves.train] == [r["train_loss"] / math.log(2) for r in evals]
    (run / "metrics.jsonl").unlink()  # then the checkpoint's own records are read
    assert [p.step for p in read_curves(RunDir(run)).val] == [r["step"] for r in evals]
    shutil.copy(runs_dir / "a" / "last.pt", run / "last.pt")
    assert [p.step for p in read_curves(RunDir(run)).train] == [
        r["step"] for r in training(metrics_of(runs_dir, "a"))
    ]
    assert inspect(RunDir(run)).summary()["evaluations"] == 3  # `runs` counts evaluations only
