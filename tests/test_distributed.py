"""Training under torchrun: two CPU processes (gloo) with a tiny model, disjoint streams, rank 0
alone writing, exact resume across ranks, and a checkpoint a single process can load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import DEADLINE, TINY_CLI

from charrnn import checkpoint
from charrnn.model.trained import Model
from charrnn.text import data
from charrnn.use.sampler import SampleConfig, Sampler

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this torch has no torch.distributed"
)


DRIVER = Path(__file__).parent / "helpers" / "ddp_driver.py"


def torchrun(tmp_path, *args, procs=2, stop_at=0):
    """`torchrun --standalone --nproc_per_node=N charrnn train ...` (one thread per rank)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CHARRNN_CHECKPOINT_DIR": str(tmp_path / "ck")}
    env["CHARRNN_STOP_AT"] = str(stop_at)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={procs}", str(DRIVER), "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=DEADLINE)


def records(run_dir):
    """The evaluation records of a run's metrics.jsonl."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "eval"]


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory, corpus_file):
    """The same 60 steps on 2 ranks: straight through, and stopped by rank 0 alone after step 30
    (as by a Ctrl-C), then resumed. The LSTM's (h, c): the state is gathered by map_state, which
    knows nothing of its form, so the other cells' (h,) needs no run of its own."""
    tmp = tmp_path_factory.mktemp("ddp")
    common = [str(corpus_file), "--steps", "60", *TINY_CLI, "--dropout", "0.1", "--seed", "7"]
    straight = torchrun(tmp, *common, "--name", "straight")
    first = torchrun(tmp, *common, "--name", "halves", stop_at=30)
    second = torchrun(tmp, "--resume", "halves")
    return tmp / "ck", straight, first, second


def test_two_ranks_train_and_loss_falls(two_rank_runs):
    ck, straight, _, _ = two_rank_runs
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert straight.stdout.strip() == str(ck / "straight" / "best.pt")  # rank 0 only, once
    assert straight.stderr.count("Training 'straight'") == 1 and "x 2 processes" in straight.stderr
    vals = [r["val_loss"] for r in records(ck / "straight")]
    # from the characters' frequencies (the head's start) down, evaluation after evaluation
    assert len(vals) == 6 and vals[-1] < vals[0] - 0.15 and vals == sorted(vals, reverse=True)


def test_the_checkpoint_loads_and_samples_in_one_process(two_rank_runs):
    ck = two_rank_runs[0]
    payload = checkpoint.load(ck / "straight" / "best.pt")
    t = payload["trainer"]
    assert t["world_size"] == 2 and t["state"][0].shape[1] == 2 * 4  # B x world streams saved
    trained = checkpoint.restore(payload, ck / "straight" / "best.pt")
    model, vocab = trained.net, trained.vocab
    sampler = Sampler(Model(model, vocab), SampleConfig(seed=1))
    text = "".join(step[0] for step in sampler.generate(50))
    assert len(text) == 50 and set(text) <= set(vocab.chars)


def test_resume_across_ranks_is_exact(two_rank_runs):
    ck, _, first, second = two_rank_runs
    assert "Stopped at step 30" in first.stderr  # every rank stopped at rank 0's step
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Resuming at step 30" in second.stderr
    a = checkpoint.load(ck / "straight" / "last.pt")["model"]
    b = checkpoint.load(ck / "halves" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # dropout on: the RNG of both ranks resumed
    assert records(ck / "halves")[-1]["val_loss"] == records(ck / "straight")[-1]["val_loss"]


def test_a_distributed_run_cannot_resume_in_one_process(two_rank_runs, monkeypatch):
    from helpers.cli import assert_one_error, invoke

    ck = two_rank_runs[0]
    result = invoke(["train", "--resume", "halves", "--steps", "70", "--checkpoint-dir", str(ck)])
    assert_one_error(result, 1, "trained by 2 processes; resume it", alone=False)


def test_ranks_own_disjoint_blocks_of_the_streams():
    ids = torch.arange(1000) % 251
    whole = data.StreamBatcher(ids, 6, 10)
    parts = [data.StreamBatcher(ids, 3, 10, rank=r, world=2) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole)
    for k in range(len(whole)):
        x, y = whole[k]
        assert torch.equal(torch.cat([parts[0][k][0], parts[1][k][0]]), x)
        assert torch.equal(torch.cat([parts[0][k][1], parts[1][k][1]]), y)
    tails = [[c for c in p.eval_chunks() if c[2]] for p in parts]
    assert tails[0] == [] and len(tails[1]) == 1  # the leftover continues the last rank's stream
    n_targets = sum(c[1].numel() for p in parts for c in p.eval_chunks())
    assert n_targets == len(ids) - 1  # every target once, across ranks


def test_two_ranks_fine_tune_from_a_run_with_new_characters(two_rank_runs, tmp_path):
    ck = two_rank_runs[0]
    new = tmp_path / "new.txt"
    new.write_text("Quick jumps of 7 foxes: 'vexing'? (yes)\n" * 400)  # j, 7, ' ... are new
    env = ["--checkpoint-dir", str(ck)]
    r = torchrun(tmp_path, str(new), "--init-from", str(ck / "straight"), "--steps", "20", *env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("Fine-tuning 'new'") == 1 and "x 2 processes" in r.stderr
    saved = checkpoint.load(ck / "new" / "last.pt")
    assert saved["origin"]["run"] == "straight" and saved["trainer"]["world_size"] == 2
    assert (
        saved["vocab"][: saved["origin"]["vocab_size"]]
        == checkpoint.load(ck / "straight" / "best.pt")["vocab"]
    )


def test_torchruns_variables_are_read_and_values_it_never_sets_are_one_error():
    """The ranks come from RANK / WORLD_SIZE / LOCAL_RANK; a value torchrun never writes (set by
    hand, or a launcher's slip) is a ConfigError that says how to start the ranks, never a
    ValueError or KeyError from inside the command."""
    from charrnn.errors import ConfigError
    from charrnn.train.distributed import SINGLE, Dist, from_env

    assert from_env({}) == SINGLE and from_env({"WORLD_SIZE": "1"}) == SINGLE
    assert from_env({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}) == Dist(1, 2, 1)
    for env, said in [
        ({"WORLD_SIZE": "1.5"}, "WORLD_SIZE='1.5' is not a whole number"),
        ({"WORLD_SIZE": "2"}, "RANK is not set"),
        ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "x"}, "LOCAL_RANK='x' is not a whole"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 and LOCAL_RANK=0 do not fit WORLD_SIZE=2"),
        ({"WORLD_SIZE": "2", "RANK": "-1"}, "do not fit"),
    ]:
        with pytest.raises(ConfigError, match=said):
            from_env(env)


def test_a_users_error_under_torchrun_is_one_error_line_and_no_rank_prints_a_traceback(tmp_path):
    """Rank 0 meets the error (a corpus that is not there) while rank 1 waits for it: rank 1's
    broken connection is said as a consequence in one line, not a traceback from gloo (it may
    also be killed by torchrun first, and say nothing)."""
    r = torchrun(tmp_path, str(tmp_path / "nothing.txt"), *TINY_CLI, "--steps", "5")
    assert r.returncode != 0
    ours = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    assert sum("no such file, folder or corpus" in x for x in ours) == 1, ours
    consequence = "Error: rank 1 of 2: another process of this torchrun job stopped first"
    assert all("no such file" in x or x.startswith(consequence) for x in ours), ours
    assert "[rank1]: Traceback" not in r.stderr and "[rank0]: Traceback" not in r.stderr


def test_a_resumes_warning_is_said_once_whatever_the_ranks(tmp_path, corpus_file):
    """Every rank opens the run, and so meets its warnings: rank 0 alone says them."""
    common = [str(corpus_file), "--steps", "60", *TINY_CLI, "--name", "w"]
    # stopped between evaluations (TINY_CLI's every 10 steps), so a resume has one to make
    assert "Stopped at step 25" in torchrun(tmp_path, *common, stop_at=25).stderr
    r = torchrun(tmp_path, "--resume", "w", "--steps", "10")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("Warning: --steps counts the run's steps in all") == 1, r.stderr
