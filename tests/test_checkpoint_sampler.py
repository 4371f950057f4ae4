"""Checkpoints (round trip, weights_only, atomic writes, refusals) and the sampler."""

import io
import os
import pickle

import pytest
import torch

from charrnn import checkpoint
from charrnn.errors import CheckpointError, ConfigError, VocabError
from charrnn.model.trained import Model, lead_in
from charrnn.text.vocab import CharVocab
from charrnn.use.sampler import SampleConfig, Sampler


def load_model(run):
    return checkpoint.restore_model(checkpoint.load(run.best), run.best)


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
    model, _ = checkpoint.restore_model(payload, trained_run.best)
    copy = tmp_path / "copy.pt"
    checkpoint.save({k: v for k, v in payload.items() if not k.startswith("format")}, copy)
    model2, _ = checkpoint.restore_model(checkpoint.load(copy), copy)
    idx = torch.randint(0, model.config.vocab_size, (2, 9))
    assert torch.equal(model(idx)[0], model2(idx)[0])


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


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-marker",))


def _torch_saved_evil() -> bytes:
    buf = io.BytesIO()
    torch.save({"format": "charrnn", "format_version": 1, "x": _Evil()}, buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a charrnn checkpoint"),
        (b"\x00garbage\xff" * 50, "not a charrnn checkpoint"),
        (_torch_saved_evil(), r"refused: it asks to load posix\.system.*nothing in it was run"),
        (pickle.dumps({"format": "charrnn", "x": _Evil()}, protocol=2), "refused|not a charrnn"),
        (pickle.dumps({"format": "charrnn", "x": _Evil()}), "refused|not a charrnn"),
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
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "missing.pt")


def test_weights_that_do_not_fit_the_config_are_refused(trained_run):
    payload = checkpoint.load(trained_run.best)
    lying = {**payload, "model_config": {**payload["model_config"], "hidden_size": 99}}
    with pytest.raises(CheckpointError, match="do not fit its config"):
        checkpoint.restore_model(lying, trained_run.best)
    short_vocab = {**payload, "vocab": payload["vocab"][:-1]}
    with pytest.raises(CheckpointError, match="inconsistent"):
        checkpoint.restore_model(short_vocab, trained_run.best)


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
    assert r.exit_code == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("Error: ")
    assert f"{run}/best.pt is damaged: its " in r.stderr
    assert ("not numbers" if damage == "nan" else "does not match the digest") in r.stderr


def test_resume_checks_the_optimizer_and_the_state_too(trained_run, tmp_path, env):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run.path, run)
    payload = torch.load(run / "last.pt", weights_only=True)
    payload["optimizer"]["state"][0]["exp_avg"][0] += 1.0  # changed, digest left as it was
    torch.save(payload, run / "last.pt")
    with pytest.raises(CheckpointError, match="its optimizer does not match the digest"):
        checkpoint.load(run / "last.pt")
    checkpoint.load(run / "last.pt", verify=checkpoint.MODEL_PARTS)  # what sampling reads: intact
    older = {k: v for k, v in payload.items() if k != "digests"}  # as written before digests
    torch.save(older, run / "last.pt")
    assert checkpoint.load(run / "last.pt")["trainer"]["step"] == 200


# --------------------------------------------------------------------------- sampler


def sample(run, length=200, prime="", **cfg):
    model, vocab = load_model(run)
    s = Sampler(Model(model, vocab), SampleConfig(**cfg))
    s.prime(prime)
    return "".join(chars[0] for chars in s.generate(length))


def test_same_seed_same_text_and_different_seeds_differ(trained_run):
    a = sample(trained_run, seed=7, temperature=1.0)
    assert a == sample(trained_run, seed=7, temperature=1.0)
    assert a != sample(trained_run, seed=8, temperature=1.0)
    assert len(a) == 200


def test_greedy_equals_top_k_1_and_a_tiny_nucleus(trained_run):
    greedy = sample(trained_run, temperature=0, seed=1)
    assert greedy == sample(trained_run, temperature=0, seed=2)  # no randomness at all
    assert greedy == sample(trained_run, temperature=1.0, top_k=1, seed=3)
    assert greedy == sample(trained_run, temperature=1.0, top_p=1e-6, seed=4)


def test_generation_carries_state_instead_of_rereading(trained_run):
    """Each generated character equals what one forward pass over prime + text predicts."""
    model, vocab = load_model(trained_run)
    s = Sampler(Model(model, vocab), SampleConfig(temperature=0))
    s.prime("ANNA:\n")
    text = "".join(chars[0] for chars in s.generate(40))
    context = lead_in(vocab) + "ANNA:\n"
    with torch.no_grad():
        logits, _ = model(torch.tensor([vocab.encode(context + text)]))
    expected = vocab.decode(logits[0, len(context) - 1 : -1].argmax(-1).tolist())
    assert text == expected


def test_lead_in_is_a_paragraph_break_or_what_the_vocabulary_has():
    assert lead_in(CharVocab.from_text("a\nb")) == "\n\n"
    assert lead_in(CharVocab.from_text("a b")) == " "
    assert lead_in(CharVocab.from_text("xy")) == "x"


def test_a_short_prime_is_continued_as_the_corpus_would(trained_run):
    model, vocab = load_model(trained_run)
    for name in ("ANNA:", "BORIS:", "CLARA:"):
        s = Sampler(Model(model, vocab), SampleConfig(temperature=0))
        s.prime(name)
        assert vocab.chars[int(s.logits[0].argmax())] == "\n"  # a speaker's name ends its line


def test_the_prime_conditions_what_comes_next(trained_run):
    model, vocab = load_model(trained_run)
    odds = {}
    for prime in ("ANNA:", "the dog "):
        s = Sampler(Model(model, vocab), SampleConfig())
        s.prime(prime)
        odds[prime] = torch.softmax(s.logits[0], -1)
    assert vocab.chars[int(odds["ANNA:"].argmax())] == "\n"
    assert vocab.chars[int(odds["the dog "].argmax())] not in "\n :"
    assert (odds["ANNA:"] - odds["the dog "]).abs().sum() > 1.0


def test_unseen_prime_characters_are_named(trained_run):
    model, vocab = load_model(trained_run)
    s = Sampler(Model(model, vocab), SampleConfig())
    with pytest.raises(VocabError, match=r"'Z' \(U\+005A\).*'€'"):
        s.prime("Zoo €")


@pytest.mark.parametrize("bad", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        SampleConfig(**bad)


def test_one_character_written_for_ever_is_a_runaway_at_any_temperature(trained_run, tmp_path, env):
    """A model stuck on one character (a finite but huge bias) is flagged even above temperature
    1, where rarer characters are not judged; a sample too short to judge says null."""
    import json

    payload = checkpoint.load(trained_run.best)
    weights = {k: v.clone() for k, v in payload["model"].items()}
    weights["head.bias"][0] = 1e4  # character 0, whatever the context
    kept = {k: v for k, v in payload.items() if not k.startswith("format") and k != "digests"}
    (tmp_path / "stuck").mkdir()
    checkpoint.save({**kept, "model": weights}, tmp_path / "stuck" / "best.pt")
    base = ["sample", "-c", str(tmp_path / "stuck"), "--json", "-s", "1"]
    for temp in ("0.8", "2"):
        r = env([*base, "-t", temp, "-l", "60"])
        record = json.loads(r.stdout)
        assert r.exit_code == 0 and len(set(record["text"])) == 1
        assert record["runaway"] is True and "one character repeated" in r.stderr
    short = json.loads(env([*base, "-t", "2", "-l", "49"]).stdout)
    assert short["runaway"] is None


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
