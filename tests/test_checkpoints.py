"""Checkpoints: what a file holds (weights_only, every part), the round trip, and every file that
cannot be trusted refused in one line without running its code: other files, newer versions, lies
about the weights, damage, changed bits."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import Evil, torch_saved_evil
from helpers.cli import assert_one_error, ended
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn import checkpoint
from charrnn.errors import CheckpointError


def test_checkpoint_loads_with_weights_only_and_holds_everything(trained_run):
    raw = torch.load(trained_run.last, weights_only=True)  # plain torch, no charrnn code
    assert raw["format"] == "charrnn" and raw["format_version"] == checkpoint.FORMAT_VERSION
    assert set(checkpoint.REQUIRED) <= set(raw)
    assert raw["model_config"]["vocab_size"] == len(raw["vocab"])
    assert raw["trainer"]["step"] == 200 and raw["metrics"][-1]["step"] == 200
    assert {"sha256", "chars", "sources"} <= set(raw["corpus"])
    assert [s.shape for s in raw["trainer"]["state"]] == [(2, 4, 24)] * 2  # the carried (h, c)


def test_round_trip_gives_identical_logits(trained_run, tmp_path):
    payload = checkpoint.load(trained_run.best)
    model = checkpoint.restore(payload, trained_run.best).net
    copy = tmp_path / "copy.pt"
    checkpoint.save({k: v for k, v in payload.items() if not k.startswith("format")}, copy)
    model2 = checkpoint.restore(checkpoint.load(copy), copy).net
    idx = torch.randint(0, model.config.vocab_size, (2, 9))
    assert torch.equal(model(idx)[0], model2(idx)[0])


def test_a_checkpoint_in_a_folder_whose_name_is_not_utf8_loads(trained_run, tmp_path):
    """A folder named in Latin-1 (`caf\\xe9`): torch's mapped read takes only UTF-8 names, and
    the file was called corrupted."""
    folder = os.fsencode(tmp_path) + b"/caf\xe9"
    try:
        os.mkdir(folder)
    except OSError:  # a file system that takes UTF-8 names only
        pytest.skip("this file system refuses a name that is not UTF-8")
    path = Path(os.fsdecode(folder)) / "best.pt"
    shutil.copy(trained_run.best, path)
    assert torch.equal(
        checkpoint.load_model(path).net.head.weight,
        checkpoint.load_model(trained_run.best).net.head.weight,
    )


# --------------------------------------------------------------- files that are not checkpoints


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a charrnn checkpoint"),
        (b"\x00garbage\xff" * 50, "not a charrnn checkpoint"),
        (torch_saved_evil(), r"refused: it asks to load posix\.system.*nothing in it was run"),
        (pickle.dumps({"format": "charrnn", "x": Evil()}, protocol=2), "refused|not a charrnn"),
        (pickle.dumps({"format": "charrnn", "x": Evil()}), "refused|not a charrnn"),
    ],
)
def test_bad_files_are_refused_and_never_run_code(tmp_path, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(bad)
    assert not (tmp_path / "pwned-marker").exists()
    # the same file does run code under a plain pickle load: the test's trap is real
    if content.startswith(b"\x80") and os.name == "posix":
        pickle.loads(content)
        assert (tmp_path / "pwned-marker").exists()


def test_other_files_and_newer_versions_get_their_own_errors(trained_run, tmp_path):
    payload = checkpoint.load(trained_run.best)
    plain = tmp_path / "plain.pt"
    torch.save(payload["model"], plain)  # a bare state_dict from another tool
    with pytest.raises(CheckpointError, match="not a charrnn checkpoint"):
        checkpoint.load(plain)
    newer = tmp_path / "newer.pt"
    torch.save({**payload, "format_version": checkpoint.FORMAT_VERSION + 1}, newer)
    with pytest.raises(CheckpointError, match="newer than this charrnn reads"):
        checkpoint.load(newer)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(trained_run.best.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a charrnn checkpoint"):
        checkpoint.load(truncated)
    with pytest.raises(CheckpointError, match=r"nothing at .*missing.pt: give a checkpoint file"):
        checkpoint.load(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"/dev/null is not a file: give a checkpoint file"):
        checkpoint.load("/dev/null")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"hello, I am text\n" * 10, "a text file, not a torch archive"),
        (bytes(range(256)) * 4, "not a torch archive"),
        ("half", "a zip archive cut short: the file is truncated"),
        # torch's parser said "[enforce fail at inline_container.cc:180]"
        ("zip", "a zip archive, but its parts are not those of a torch file, or are damaged"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_is_one_clear_line(trained_run, env, content, reason):
    if content == "half":
        blob = trained_run.best.read_bytes()
        content = blob[: len(blob) // 3]
    elif content == "zip":
        with zipfile.ZipFile(buffer := io.BytesIO(), "w") as archive:
            archive.writestr("hello.txt", "hi")
        content = buffer.getvalue()
    Path("bad.pt").write_bytes(content)
    r = env(["sample", "-c", "bad.pt"])
    assert r.exit_code == 1 and r.stdout == ""
    advice = ": give a charrnn checkpoint (a run's best.pt) instead"  # what to give
    if "truncated" in reason:  # a checkpoint damaged
        advice = "; train again, or give another checkpoint"
    assert r.stderr == f"Error: bad.pt is not a charrnn checkpoint ({reason}){advice}\n"


@settings(max_examples=60, deadline=None)
@given(blob=st.binary(max_size=3000), cut=st.floats(0, 1, exclude_max=True))
def test_a_damaged_file_is_refused_in_one_complete_line(trained_run, blob, cut):
    """Random bytes and a real checkpoint cut short anywhere are refused; one overwritten anywhere
    is refused too, or, if the bytes it lost mattered to nothing, gives the same weights. Each
    refusal is one line that names the file."""
    real = trained_run.best.read_bytes()
    at = int(cut * len(real))
    overwritten = real[:at] + blob + real[at + len(blob) :]
    with tempfile.TemporaryDirectory() as where:
        for i, content in enumerate((blob, real[:at], overwritten)):
            path = Path(where) / f"c{i}.pt"
            path.write_bytes(content)
            try:
                loaded = checkpoint.load(path)
            except CheckpointError as e:
                message = str(e)
                assert "\n" not in message and len(message) < 300, message
                assert message.startswith(f"{path} ") and "please" not in message
            else:
                assert i == 2, f"{len(content)} bytes of damage loaded"
                original = checkpoint.load(trained_run.best)["model"]
                assert all(torch.equal(w, loaded["model"][k]) for k, w in original.items())


def test_an_end_record_that_breaks_the_zip_parser_is_refused_in_one_line(
    trained_run, tmp_path, env
):
    """A flipped byte in the ZIP64 end locator torch writes ("two disks") makes zipfile's own
    check raise, where a damaged archive makes it say False: refused all the same, in one line."""
    damaged = bytearray(trained_run.best.read_bytes())
    at = damaged.rfind(b"PK\x06\x07")  # the locator, 20 bytes before the end record
    assert at > 0
    damaged[at + 16 : at + 20] = (2).to_bytes(4, "little")  # the number of disks
    (tmp_path / "c.pt").write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match="is not a charrnn checkpoint"):
        checkpoint.load(tmp_path / "c.pt")
    r = env(["sample", "-c", str(tmp_path / "c.pt")])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("Error: ")
    # ... and as an output, checked for a saved model before it is written over: no longer one
    r = env(["sample", "-c", str(trained_run.best), "-l", "20", "-o", str(tmp_path / "c.pt")])
    out = (tmp_path / "c.pt").read_text()
    assert r.exit_code == 0 and out == ended(out[:20]), r.stderr


# ---------------------------------------------------------------------------------- lying files


@pytest.fixture(scope="module")
def good(trained_run):
    return checkpoint.load(trained_run.best), trained_run.best


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": 99}, "do not fit its config"),
        ({"hidden_size": 8192}, "do not fit its config"),  # the widest a config may say
        # wider than the command line (or a library caller) can make: 160 GB, exabytes
        ({"hidden_size": 10**5}, r"model config \(hidden_size must be at most 8192"),
        ({"hidden_size": 10**9}, r"model config \(hidden_size must be at most 8192"),
        ({"hidden_size": 2**40}, r"model config \(hidden_size must be at most 8192"),
        ({"num_layers": 3}, "not those of a LSTM"),
        ({"cell": "gru"}, "do not fit its config"),  # an LSTM's weights called a GRU's
        ({"cell": "transformer"}, "broken vocabulary or model config"),
        ({"embedding_dim": -4}, r"broken vocabulary or model config \(embedding_dim must be"),
        ({"vocab_size": 5}, "inconsistent"),
        ({"colour": "blue"}, "broken vocabulary or model config"),
    ],
)
def test_configs_that_lie_about_the_weights_are_refused(good, change, message):
    payload, path = good
    lying = {**payload, "model_config": {**payload["model_config"], **change}}
    with pytest.raises(CheckpointError, match=message):
        checkpoint.restore(lying, path)


def test_other_lies_are_refused(good):
    payload, path = good
    with pytest.raises(CheckpointError, match="broken vocabulary"):
        checkpoint.restore({**payload, "vocab": [1, 2, 3]}, path)
    with pytest.raises(CheckpointError, match="inconsistent"):
        checkpoint.restore({**payload, "vocab": payload["vocab"][:-1]}, path)
    weights = dict(payload["model"])
    weights["head.bias"] = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(CheckpointError, match="do not fit"):
        checkpoint.restore({**payload, "model": weights}, path)
    # a version that is no number is damage, not a newer charrnn's file ("upgrade charrnn")
    with pytest.raises(CheckpointError, match=r"its format_version \('4'\) is no version number"):
        checkpoint.validate({**payload, "format_version": "4"}, path)
    # a file of format 4 is written with its digests: taken out, every check would be off
    unchecked = {k: v for k, v in payload.items() if k != "digests"}
    with pytest.raises(CheckpointError, match="lacks digests"):
        checkpoint.validate(unchecked, path)


# -------------------------------------------------------------------------------------- digests


def _flip_a_byte_of_the_first_tensor(src, dst) -> None:
    """A copy of checkpoint `src` with one bit flipped in the bytes of its first tensor (the
    embedding: torch numbers storages as the pickle meets them), as a bad disk or copy would."""
    import zipfile

    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        (info,) = [i for i in z.infolist() if i.filename.endswith("/data/0")]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.file_size // 2] ^= 0x10
    dst.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def untrustworthy(trained_run, tmp_path_factory):
    """Run folders whose best.pt cannot be trusted: weights that are NaN (digest and all, as a
    run that blew up would save them), and weights with a flipped bit."""
    base = tmp_path_factory.mktemp("untrustworthy")
    payload = checkpoint.load(trained_run.best)
    (base / "nan").mkdir()
    weights = {k: v.clone() for k, v in payload["model"].items()}
    weights["head.weight"][0, 0] = float("nan")
    kept = {k: v for k, v in payload.items() if not k.startswith("format") and k != "digests"}
    checkpoint.save({**kept, "model": weights}, base / "nan" / "best.pt")
    (base / "flipped").mkdir()
    _flip_a_byte_of_the_first_tensor(trained_run.best, base / "flipped" / "best.pt")
    raw = torch.load(base / "flipped" / "best.pt", weights_only=True)  # torch sees nothing wrong
    assert not torch.equal(raw["model"]["embed.weight"], payload["model"]["embed.weight"])
    return base


@pytest.mark.parametrize("damage", ["nan", "flipped"])
@pytest.mark.parametrize(
    "command",
    [
        ["sample", "-l", "60"],
        ["sample", "-n", "2", "-l", "60", "--json"],
        ["score", "-"],
        ["inspect", "-"],
        ["inspect", "-", "--json"],
        ["train", "-", "--init-from", "RUN", "--name", "new", "--steps", "1"],
    ],
)
def test_a_checkpoint_is_checked_before_it_is_trusted(untrustworthy, env, command, damage):
    """Weights that are not numbers, or bits flipped after the file was written: every command
    that reads a model refuses the file in one line, and writes nothing (no NaN in JSON)."""
    run = str(untrustworthy / damage)
    args = [a.replace("RUN", run) for a in command]
    if "--init-from" not in args:
        args += ["-c", run]
    r = env(args, input="ANNA:\nthe cat sat on the mat.\n")
    why = "not numbers" if damage == "nan" else "does not match the digest"
    assert_one_error(r, 1, f"{run}/best.pt is damaged: its ", why)


def test_a_damaged_checkpoint_names_the_one_to_read_instead(trained_run, tmp_path, env):
    """A damaged best.pt: the error names its run's last.pt as a -c that works, while that one
    loads; once it is damaged too, the advice is to train again, never the other checkpoint; a
    resume says what to do once, its own way."""
    run = tmp_path / "run"
    shutil.copytree(trained_run.path, run)
    _flip_a_byte_of_the_first_tensor(trained_run.best, run / "best.pt")
    r = env(["sample", "-c", str(run), "-l", "20", "--seed", "1"])
    line = assert_one_error(r, 1, f"{run}/best.pt is damaged", "does not match the digest")
    assert line.endswith(f"give -c {run}/last.pt instead (the run's latest weights, not its best)")
    again = env(["sample", "-c", f"{run}/last.pt", "-l", "20", "--seed", "1"])
    assert again.exit_code == 0 and len(again.stdout) >= 20, again.stderr
    line = assert_one_error(env(["train", "-", "--init-from", str(run)], input="ab\n"), 1)
    assert line.endswith(
        f"cannot start a run from it: give --init-from {run}/last.pt instead "
        "(the run's latest weights, not its best)"
    )
    (run / "best.pt").write_bytes(trained_run.best.read_bytes()[:5000])  # cut short: the same
    line = assert_one_error(env(["sample", "-c", str(run)]), 1, "truncated")
    assert line.endswith(f"give -c {run}/last.pt instead (the run's latest weights, not its best)")

    _flip_a_byte_of_the_first_tensor(trained_run.last, run / "last.pt")
    for command in (["sample", "-c", str(run)], ["score", "-c", str(run), "-"]):
        line = assert_one_error(env(command, input="ANNA:\n"), 1, f"{run}/best.pt is")
        assert line.endswith(
            "its run's last.pt does not load either: train the run again, "
            "with --force to replace it"
        )
    line = assert_one_error(env(["train", "--resume", str(run)]), 1, "last.pt is damaged")
    assert "no other checkpoint that loads" in line and "another checkpoint" not in line


def test_a_runs_file_that_lost_a_part_is_damaged_and_names_the_other(trained_run, tmp_path, env):
    """A bit flipped in the pickle can drop a key a checkpoint always has: in a run, that file
    was whole once, so it is damaged as any other change is, and the error names last.pt."""
    run = tmp_path / "run"
    shutil.copytree(trained_run.path, run)
    payload = torch.load(trained_run.best, weights_only=True)
    del payload["metrics"]
    torch.save(payload, run / "best.pt")
    line = assert_one_error(env(["sample", "-c", str(run)]), 1, "is incomplete: it lacks metrics")
    assert line.endswith(f"give -c {run}/last.pt instead (the run's latest weights, not its best)")
    alone = tmp_path / "alone.pt"  # not in a run: never known whole, so not "damaged"
    alone.write_bytes((run / "best.pt").read_bytes())
    line = assert_one_error(env(["sample", "-c", str(alone)]), 1, "is incomplete: it lacks")
    assert "last.pt" not in line


def test_a_flipped_bit_is_found_before_a_run_is_chosen_or_advised(trained_run, tmp_path, env):
    """A run whose best.pt reads as sound until it is read whole (a flipped bit): without -c,
    `sample` and `score` skip it for an older run with a Note, as they skip a file cut short;
    `runs` never advises a resume from it where its last.pt is damaged."""
    base = tmp_path / "checkpoints"
    shutil.copytree(trained_run.path, base / "older")
    for p in (base / "older").iterdir():
        os.utime(p, (0, 0))
    shutil.copytree(trained_run.path, base / "newer")
    _flip_a_byte_of_the_first_tensor(trained_run.best, base / "newer" / "best.pt")
    for command in (["sample", "-l", "20", "-s", "1"], ["score", "-"]):
        r = env(command, input="ANNA:\n")
        assert r.exit_code == 0 and r.stdout, r.stderr
        assert r.stderr.startswith("Note: using run 'older', skipping newer runs")
        assert (
            "'newer': damaged: checkpoints/newer/best.pt is damaged: its model does not" in r.stderr
        )
    (base / "newer" / "last.pt").write_bytes(trained_run.last.read_bytes()[:1000])
    r = env(["runs", "--json"])
    rec = next(r for r in map(json.loads, r.stdout.splitlines()) if r["run"] == "newer")
    assert "--resume" not in rec["note"] and "does not match the digest" in rec["note"]
    assert rec["note"].endswith(
        "no checkpoint of it loads: train it again, with --force to replace it"
    )


def test_resume_checks_the_optimizer_and_the_state_too(trained_run, tmp_path, env):

    run = tmp_path / "run"
    shutil.copytree(trained_run.path, run)
    payload = torch.load(run / "last.pt", weights_only=True)
    payload["optimizer"]["state"][0]["exp_avg"][0] += 1.0  # changed, digest left as it was
    torch.save(payload, run / "last.pt")
    with pytest.raises(CheckpointError, match="its optimizer does not match the digest"):
        checkpoint.load(run / "last.pt")
    checkpoint.load(run / "last.pt", verify=checkpoint.MODEL_PARTS)  # what sampling reads: intact
    # ... and a fine-tune, which reads the model alone and starts a fresh optimizer
    new = ["train", "-", "--init-from", str(run / "last.pt"), "--name", "ft", "--steps", "1"]
    assert env(new, input="ANNA:\nthe cat sat on the mat.\n" * 40).exit_code == 0
    torch.save({**payload, "trainer": "junk"}, run / "junk.pt")  # its trainer state too
    new = [*new[:3], str(run / "junk.pt"), "--name", "ft2", *new[-2:]]
    assert env(new, input="ANNA:\nthe cat sat on the mat.\n" * 40).exit_code == 0
    older = {k: v for k, v in payload.items() if k != "digests"}  # as written before digests
    torch.save({**older, "format_version": 3}, run / "last.pt")
    assert checkpoint.load(run / "last.pt")["trainer"]["step"] == 200


def test_a_best_pt_damaged_in_its_optimizer_alone_is_said_to_sample_still(
    trained_run, tmp_path, env
):
    """`runs --check` of a best.pt whose optimizer's state changed: damaged, and its model sound
    (what samples reads it, as `sample` does), never advice to read last.pt in its place."""
    run = tmp_path / "checkpoints" / "opt"
    shutil.copytree(trained_run.path, run)
    payload = torch.load(run / "best.pt", weights_only=True)
    payload["optimizer"]["state"][0]["exp_avg"][0] += 1.0  # changed, digest left as it was
    torch.save(payload, run / "best.pt")
    r = env(["runs", "--check", "--json"])
    assert r.exit_code == 1 and r.stderr == "Error: 1 run damaged: opt (see its note)\n"
    (rec,) = map(json.loads, r.stdout.splitlines())
    assert rec["status"] == "damaged" and "its optimizer does not match the digest" in rec["note"]
    assert rec["note"].endswith(
        "its model is sound (sample, score, inspect and export read it), and a resume goes on "
        "from its last.pt"
    )
    again = env(["sample", "-c", "opt", "-l", "20", "--seed", "1"])
    assert again.exit_code == 0 and again.stderr == "" and len(again.stdout) >= 20
    # last.pt's model damaged as well: nothing resumes, but best.pt still reads text, and the
    # advice goes on from its weights (never to train again from nothing, or --force it away)
    last = torch.load(run / "last.pt", weights_only=True)
    last["model"][next(iter(last["model"]))].view(-1)[0] += 1.0
    torch.save(last, run / "last.pt")
    rec = json.loads(env(["runs", "--check", "--json"]).stdout)
    assert "--force" not in rec["note"] and "train it again" not in rec["note"]
    assert re.search(
        r"nothing resumes it, but its best.pt reads text \(sample, score, inspect and export\): "
        r"train on from its weights as a new run, "
        r"`charrnn train \S+ --init-from checkpoints/opt/best.pt`$",
        rec["note"],
    ), rec["note"]
    assert env(["sample", "-c", "opt", "-l", "20", "--seed", "1"]).stdout == again.stdout
    r = env(["train", "--resume", "opt"])
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    torch.save(payload, run / "best.pt")
    shutil.copy(trained_run.last, run / "last.pt")
    payload["model"][next(iter(payload["model"]))].view(-1)[0] += 1.0  # and now its model too
    torch.save(payload, run / "best.pt")
    rec = json.loads(env(["runs", "--check", "--json"]).stdout)
    assert "its model does not match" in rec["note"] and "give -c" in rec["note"]


@pytest.mark.parametrize("part", ["vocab", "model_config", "corpus"])
def test_a_changed_plain_value_is_found_too(trained_run, tmp_path, part):
    """The digests cover the plain values as well: a character of the vocabulary, the lead-in,
    the corpus's record, changed after the file was written, are refused, never used."""
    payload = torch.load(trained_run.best, weights_only=True)
    if part == "vocab":
        payload["vocab"][3] = "#"
    elif part == "model_config":
        payload["model_config"]["lead_in"] = "#"
    else:
        payload["corpus"]["sha256"] = "0" * 64
    torch.save(payload, tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match=f"its {part} does not match the digest"):
        checkpoint.load(tmp_path / "best.pt", verify=checkpoint.MODEL_PARTS)
