"""What `sample` and `inspect` compute, called from Python: the sampling job (stop strings, the
per-sample results, runaway judgement, the JSON records), the inspection and its records, and the
budget of a recording; what `score` computes line by line."""

import math
import time

import pytest
import torch
from test_cells import tiny

from charrnn.errors import CheckpointError, ConfigError, VocabError
from charrnn.model.config import ModelConfig
from charrnn.model.trained import Model
from charrnn.text.vocab import CharVocab
from charrnn.use import budget as budget_mod
from charrnn.use.bits import line_bits
from charrnn.use.budget import recording_budget
from charrnn.use.inspection import record
from charrnn.use.report import inspect
from charrnn.use.sample_job import SampleJob
from charrnn.use.sampler import SampleConfig, Sampler, sample_text
from charrnn.use.units import most_varied

VOCAB = CharVocab.from_text("abcdefg \n()\"'")


def model_for(cell="lstm", char_counts=None):
    return Model(tiny(cell, 2, vocab_size=len(VOCAB)), VOCAB, char_counts)


def test_a_job_streams_exactly_its_results_and_never_a_stop_string():
    model, config = model_for(), SampleConfig(temperature=1.5, seed=7, num_samples=3)
    job = SampleJob(model, config, 200, prime="ab", stops=["a", "b("])
    streamed = ["", "", ""]
    for row, piece in job:
        streamed[row] += piece
    assert job.flush() == []  # given once, at the end of the iteration
    results = job.results()
    assert [r.text for r in results] == streamed
    assert all("a" not in t and "b(" not in t for t in streamed)
    assert [r.seed for r in results] == [7, 8, 9]
    plain = Sampler(model, config)  # the same samples as the sampler alone, cut at a stop
    plain.prime("ab")
    rows = ["", "", ""]
    for chars in plain.generate(200):
        rows = [r + ch for r, ch in zip(rows, chars, strict=True)]
    assert streamed == [r[: min((r + "a").find("a"), (r + "b(").find("b("))] for r in rows]


def test_a_runaway_is_judged_where_it_can_be_and_null_where_not():
    config = SampleConfig(temperature=0.0, seed=1)  # greedy: one character repeated, often
    job = SampleJob(model_for(char_counts=[1] * len(VOCAB)), config, 80)
    list(job)
    (result,) = job.results()
    (record,) = job.records([result], "x.pt")
    assert record["runaway"] is result.looks_runaway
    assert (result.runaway is not None) == (record["runaway"] is True)
    assert record["runaway"] is not None  # judged: temperature 0, counts known, 80 characters
    short = SampleJob(model_for(), SampleConfig(temperature=1.0, seed=1), 10)
    list(short)
    assert short.results()[0].looks_runaway is None  # too short, no counts: not judged
    assert short.results()[0].mean_logprob is not None


def test_each_sample_says_why_it_ends_where_it_does():
    """`ended`: all the characters asked for, a stop string, or a stop signal that cut the job
    short (the writer's finish after Ctrl-C), which --json's records must not pass off as whole."""
    config = SampleConfig(temperature=1.0, seed=2, num_samples=2)
    whole = SampleJob(model_for(), config, 40)
    list(whole)
    assert [r.ended for r in whole.results()] == ["length", "length"]
    cut = SampleJob(model_for(), config, 40)
    for _ in zip(range(5), cut, strict=False):  # a signal arrives after five pieces
        pass
    cut.flush()
    results = cut.results()
    assert [r.ended for r in results] == ["stopped", "stopped"]
    assert [r["ended"] for r in cut.records(results, "x.pt")] == ["stopped", "stopped"]
    texts = [r.text for r in whole.results()]
    stop = texts[0][10:12]  # met by the first sample at 10 at the latest
    stopped = SampleJob(model_for(), config, 40, stops=[stop])
    list(stopped)
    ends = [(r.ended, len(r.text)) for r in stopped.results()]
    expected = [("stop", t.find(stop)) if stop in t else ("length", 40) for t in texts]
    assert ends == expected and expected[0] == ("stop", texts[0].find(stop))


def test_an_inspection_writes_a_header_its_characters_then_what_was_found():
    found = inspect(model_for("gru"), "(a 'b' c)\n", units=True, gates=True)
    kinds = [r["kind"] for r in found.records("m.pt")]
    assert kinds[0] == "header" and kinds[1:11] == ["char"] * 10
    assert kinds[11:] == ["units"] * len(found.found) + ["gates"] * 2 * 2  # 2 gates, 2 layers
    assert found.few_chars and inspect(model_for(), "abc").found is None
    layer, index = most_varied(found.recording, "hidden")
    values = found.recording.values["hidden"].std(1)  # (L, H)
    assert values[layer, index] == values.max()


def test_what_a_reader_returns_is_an_ordinary_tensor():
    """Not an inference tensor: a caller may change it in place or train on it."""
    import torch

    recording = record(model_for(), "abc")
    sampler = Sampler(model_for(), SampleConfig(seed=1))
    sampler.prime("ab")
    for t in (*recording.values.values(), recording.surprise, sampler.logits):
        assert not t.is_inference()
        t.add_(0)
    probe = torch.nn.Linear(recording.values["cell"].shape[-1], 1)
    probe(recording.values["cell"][0]).sum().backward()
    assert probe.weight.grad is not None


def test_a_sampled_inspection_is_the_sample():
    config = SampleConfig(temperature=1.0, seed=3)
    found = inspect(model_for(), length=30, prime="ab", config=config)
    job = SampleJob(model_for(), config, 30, prime="ab")
    assert found.recording.text == "ab" + "".join(piece for _, piece in job)
    assert found.recording.given == 2 and found.recording.seed == 3


def test_the_budget_is_the_smallest_bound_and_says_what_to_pass(monkeypatch):
    c = model_for().config
    assert recording_budget(c, 10, with_page=True).bound == "chars"
    assert recording_budget(c, 10, with_page=True).error(11, "--max-chars") is None
    monkeypatch.setattr("charrnn.use.page.PAGE_BYTES", 10_000)
    page = recording_budget(c, 10**6, with_page=True)
    assert page.bound == "page" and "pass --sample" in str(page.error(page.fits + 1, "--sample"))
    monkeypatch.setattr(budget_mod, "free_memory", lambda: 400 * 1024)
    memory = recording_budget(c, 10**6, with_page=False)
    assert memory.bound == "memory" and memory.fits == 400 * 1024 // 2 // (2 * 4 * 2 * 24 * 6)
    with pytest.raises(ConfigError, match=f"pass --max-chars {memory.fits} or less"):
        raise memory.error(memory.fits + 1, "--max-chars")
    # finding units records the text a second time, untrained: one recording more at the peak
    units = recording_budget(c, 10**6, with_page=False, units=True)
    assert units.fits == 400 * 1024 // 2 // (3 * 4 * 2 * 24 * 6)


def test_line_bits_name_the_lines_with_unseen_characters_and_leave_the_lines_alone():
    lines = ["abc\n", "xyz\n", "a\n"]
    found = line_bits(model_for(), lines, "error")
    assert lines == ["abc\n", "xyz\n", "a\n"] and found.unseen == [1]
    assert math.isnan(found.bits[1]) and not math.isnan(found.bits[0])
    assert found.where.startswith("'x' (U+0078) at character 1")
    assert line_bits(model_for(), lines, "skip").unseen == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_steps", 0),
        ("max_steps", -5),
        ("max_epochs", -1.0),
        ("max_time", -3.0),
        ("max_time", math.inf),
        ("batch_size", 0),
        ("seq_len", 0),
        ("lr", -0.01),
        ("lr", math.nan),
        ("val_frac", 1.0),
        ("weight_decay", -0.1),
        ("patience", 0),
        ("eval_every", 0),
        ("max_steps", True),
        ("seed", 2**64),
        ("weight_decay", 2.0),
        ("eval_at_start", "yes"),  # a flag
        ("precision", 16),
    ],
)
def test_a_training_call_refuses_what_the_command_refuses(tmp_path, field, value):
    """A library caller's budget of 0 steps or a negative rate is a ConfigError before anything
    is made, as `charrnn train` refuses it, not a run folder that trained nothing."""
    from charrnn.runs import RunDir
    from charrnn.text.encoded import encode_text
    from charrnn.train.start import start

    train = {"batch_size": 4, "seq_len": 8, "max_steps": 2, field: value}
    with pytest.raises(ConfigError, match=field):
        start(encode_text("a few words of text, " * 40), RunDir(tmp_path / "r"), train=train)
    assert not (tmp_path / "r").exists()


def test_sample_text_refuses_what_cannot_be_sampled():
    model = model_for()
    with pytest.raises(
        ConfigError, match=r"temperature \(--temp\) must be 0 or more and finite, not -1$"
    ):
        sample_text(model, "ab", 10, temperature=-1)
    for length in (-5, 5.0, "5", True):
        with pytest.raises(ConfigError, match="length must be a whole number of 0 or more"):
            sample_text(model, "ab", length)
    with pytest.raises(ConfigError, match="prime must be text"):
        sample_text(model, 123, 10)
    assert sample_text(model, "ab", 0) == ""


def test_library_calls_refuse_what_the_commands_refuse(tmp_path, trained_run):
    """What a library caller can get wrong is a ConfigError (a CharRNNError) that says which
    value, as the command line's checks say it, never torch's own error from deep inside."""
    import torch

    from charrnn import checkpoint
    from charrnn.runs import RunDir
    from charrnn.text.encoded import encode_text
    from charrnn.train.start import start
    from charrnn.use.export_page import export_page
    from charrnn.use.scoring import score_lines, score_text

    text = encode_text("a few words of text, " * 40)
    train = {"batch_size": 4, "seq_len": 8, "max_steps": 2}
    for shape, field in [
        ({"hidden_size": 0}, "hidden_size"),
        ({"num_layers": 1.5}, "num_layers"),
        ({"embedding_dim": -1}, "embedding_dim"),
        ({"dropout": 1.0}, "dropout"),
        ({"input_dropout": -0.1}, "input_dropout"),
        ({"input_dropout": False}, "input_dropout"),  # a flag, not a rate
    ]:
        with pytest.raises(ConfigError, match=field):
            start(text, RunDir(tmp_path / "r"), model=shape, train=train)
    unusable = ["tpu9", "cuda:x", 3.5, "meta"] + (
        [] if torch.cuda.is_available() else ["cuda", "cuda:1"]
    )
    for device in unusable:
        with pytest.raises(ConfigError, match=r"device|CUDA|cuda"):
            checkpoint.load_model(trained_run.best, device=device)
        with pytest.raises(ConfigError, match=r"device|CUDA|cuda"):
            start(text, RunDir(tmp_path / "r"), train=train, device=device)
    assert not (tmp_path / "r").exists()
    model = model_for()
    for kwargs, field in [
        ({"streams": 0}, "streams"),
        ({"streams": -2}, "streams"),
        ({"chunk": 0}, "chunk"),
        ({"warmup": -1}, "warmup"),
    ]:
        with pytest.raises(ConfigError, match=field):
            score_text(model, "abc " * 100, **kwargs)
    with pytest.raises(ConfigError, match="must be a str"):
        score_text(model, b"abc")
    with pytest.raises(ConfigError, match="batch"):
        score_lines(model, ["ab\n"], batch=0)
    with pytest.raises(ConfigError, match="prime must be text"):
        export_page(model, "m", "float16", None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"temperature": "0.8"}, "temperature"),  # not read a character at a time
        ({"temperature": math.inf}, "temperature"),  # as --temp refuses it
        ({"temperature": [0.5, math.nan]}, "temperature"),
        ({"temperature": []}, "temperature"),
        ({"temperature": None}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"seed": "1"}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**53 - 1, "num_samples": 2}, "seed"),  # seed+1 is out of range
        ({"num_samples": "2"}, "num_samples"),
        ({"num_samples": 2.0}, "num_samples"),
        ({"num_samples": 0}, "num_samples"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": True}, "top_p"),
        ({"top_p": "0.9"}, "top_p"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_a_sampling_config_refuses_what_the_command_refuses_and_names_the_field(kwargs, field):
    """A wrong type or value is a ConfigError that names the field (and its option) when the
    config is made, never a TypeError from inside the sampler later, nor a value taken silently."""
    with pytest.raises(ConfigError, match=rf"^{field} \("):
        SampleConfig(**kwargs)


def test_good_sampling_configs_are_taken_as_given():
    assert SampleConfig(temperature=1).temperature == (1.0,)
    assert SampleConfig(temperature=(0, 0.5)).temperature == (0.0, 0.5)
    config = SampleConfig(top_k=3, top_p=1, seed=2**53 - 2, num_samples=2)
    assert (config.top_k, config.top_p, config.seed) == (3, 1, 2**53 - 2)
    assert type(config.top_p) is float and type(config.temperature[0]) is float


def test_sampling_without_a_seed_leaves_the_callers_generator_alone():
    """A fresh seed comes from the system: the caller's seeded torch code draws what it drew."""
    import torch

    model = model_for()
    torch.manual_seed(42)
    expected = torch.rand(3)
    for write in (
        lambda: sample_text(model, "ab", 20),
        lambda: list(Sampler(model, SampleConfig()).generate(5)),
    ):
        torch.manual_seed(42)
        write()
        assert torch.equal(torch.rand(3), expected)
    seeds = {Sampler(model, SampleConfig()).seeds[0] for _ in range(5)}
    assert len(seeds) > 1  # still fresh each time
    assert len({sample_text(model, "ab", 40) for _ in range(3)}) > 1


def test_the_readers_refuse_what_is_not_a_model_or_not_text(trained_run):
    """A path for a model, bytes for text, one text for its lines: a ConfigError that says what
    to give, not an AttributeError from inside the reader."""
    from charrnn.use.inspection import record
    from charrnn.use.scoring import score_lines, score_text

    path = str(trained_run.best)
    for call in (
        lambda: sample_text(path, "", 10),
        lambda: Sampler(path, SampleConfig()),
        lambda: score_text(path, "abc"),
        lambda: score_lines(path, ["abc\n"]),
        lambda: record(path, "abc"),
    ):
        with pytest.raises(ConfigError, match=r"must be a charrnn Model .*load_model"):
            call()
    model = model_for()
    with pytest.raises(ConfigError, match="the config must be a SampleConfig"):
        Sampler(model, {"seed": 1})
    for lines in ("ab\ncd\n", ["ab\n", b"cd\n"], iter(["ab\n"])):
        with pytest.raises(ConfigError, match=r"lines must be a list of str"):
            score_lines(model, lines)
    assert score_lines(model, ("ab\n", "")) == [
        pytest.approx(score_lines(model, ["ab\n"])[0]),
        pytest.approx(math.nan, nan_ok=True),
    ]
    with pytest.raises(ConfigError, match="the text must be a str"):
        record(model, b"abc")
    for length in (-1, 2.0):
        with pytest.raises(ConfigError, match="length must be a whole number"):
            record(model, "abc", length, SampleConfig(seed=1))
    with pytest.raises(ConfigError, match="needs a SampleConfig"):
        record(model, "abc", 5)
    assert record(model, "abc").text == "abc"


def _wrong_arguments(best):
    """(call, the field its error names): a library call given what it cannot take."""
    from charrnn import checkpoint, runs
    from charrnn.train.open import RunRequest, TextReader, open_run
    from charrnn.use.export_page import export_page, page_size
    from charrnn.use.inspection import record
    from charrnn.use.onnx_export import onnx_bytes
    from charrnn.use.scoring import score_text
    from charrnn.use.units import episodes, find_units, gate_saturation, text_properties

    model = model_for()
    recording = record(model, "abc")
    return [
        (lambda: RunRequest(None), "checkpoint_dir"),
        (lambda: RunRequest("ck", name=5), "name"),
        (lambda: RunRequest("ck", name=""), "name"),
        (lambda: RunRequest("ck", resume=3), "resume"),
        (lambda: RunRequest("ck", init_from=["a"]), "init_from"),
        (lambda: RunRequest("ck", replace="yes"), "replace"),
        (lambda: RunRequest("ck", size=None), "size"),
        (lambda: RunRequest("ck", cell=None), "cell"),
        (lambda: RunRequest("ck", model=[1]), "model"),
        (lambda: RunRequest("ck", train=5), "train"),
        (lambda: RunRequest("ck", encoding=None), "encoding"),
        (lambda: RunRequest("ck", prime=5), "prime"),
        (lambda: RunRequest("ck", started="now"), "started"),
        (lambda: RunRequest("ck", started=math.nan), "started"),
        (lambda: RunRequest("ck", started=time.perf_counter() + 60), "started"),
        (lambda: RunRequest(""), "checkpoint_dir"),
        (lambda: RunRequest("ck", resume=""), "resume"),
        (lambda: RunRequest("ck", init_from=""), "init_from"),
        (lambda: TextReader(""), "cache"),
        (lambda: checkpoint.load(best, verify={"bogus"}), "verify"),
        (lambda: checkpoint.load(best, verify=[]), "verify"),
        (lambda: open_run({}, TextReader("cache")).__enter__(), "request"),
        (lambda: open_run(RunRequest("ck"), None).__enter__(), "reader"),
        (lambda: TextReader(None), "cache"),
        (lambda: TextReader("cache", note="print"), "note"),
        (lambda: TextReader("cache", stdin_file=[1, 2]), "stdin_file"),
        (lambda: checkpoint.load_model(5), "path"),
        (lambda: checkpoint.load_model(None), "path"),
        (lambda: checkpoint.load(best, verify=5), "verify"),
        (lambda: checkpoint.load(best, verify="model"), "verify"),
        (lambda: sample_text(model, "ab", 5, should_stop="yes"), "should_stop"),
        (lambda: score_text(model, "abc " * 300, between=5), "between"),
        (lambda: record(model, "abc", between=5), "between"),
        (lambda: record(model, "abc", 5, {"seed": 1}), "config"),
        (lambda: record(model, "abc", 5, SampleConfig(num_samples=2)), "num_samples"),
        (lambda: Sampler(model, SampleConfig()).generate("5"), "length"),
        (lambda: Sampler(model, SampleConfig()).generate(-1), "length"),
        (lambda: Sampler(model, SampleConfig()).generate(None), "length"),
        (lambda: Sampler(model, SampleConfig()).prime(5), "prime"),
        (lambda: recording.top(3), "t must be a position in the 3"),
        (lambda: recording.top("1"), "t must be"),
        (lambda: recording.top(True), "t must be"),
        (lambda: recording.top(torch.tensor(1)), r"a Python int is wanted: int\(x\)"),
        (lambda: find_units(recording, top=1.5), "top"),
        (lambda: find_units(recording, top=0), "top"),
        (lambda: find_units(None), "recording"),
        (lambda: gate_saturation(recording, low="0.1"), "low must be a number"),
        (lambda: gate_saturation(recording, low=0.9, high=0.1), "low and high"),
        (lambda: most_varied(recording, "bogus"), "field must be one of"),
        (lambda: most_varied(record(model, ""), "hidden"), "nothing was recorded"),
        (lambda: export_page(model, None), "name must be a str"),
        (lambda: export_page(model, "m", ["float16"]), "float16 or float32"),
        (lambda: export_page(model, "m", prime="x", unknown="bogus"), "unknown must be one of"),
        (lambda: page_size(model, "f8"), "float16 or float32"),
        (lambda: page_size(None), "must be a charrnn Model"),
        (lambda: runs.list_runs(None), "base must be a path to the folder of runs"),
        (lambda: runs.find_run(None, best.parent.parent), "spec must be a run's name or folder"),
        (lambda: runs.find_run("", best.parent.parent), "spec must be a run's name or folder"),
        (
            lambda: runs.resolve_checkpoint("", best.parent.parent),
            "spec must be a run's name or a checkpoint's path",
        ),
        (lambda: SampleConfig(temperature={0.5: 1}), "temperature"),
        (lambda: SampleConfig(temperature={0.5}), "temperature"),
        (lambda: runs.find_resume(None, best.parent.parent), "spec must be a run's name"),
        (lambda: runs.find_resume(5, best.parent.parent), "spec must be a run's name"),
        (lambda: gate_saturation(record(model, "")), "nothing was recorded"),
        (lambda: SampleJob(model, SampleConfig(), 5, stops=[None]), "stops must be a str or"),
        (lambda: SampleJob(model, SampleConfig(), 5, stops=5), "stops must be a str or"),
        (lambda: onnx_bytes(str(best)), "must be a charrnn Model"),  # before onnx is looked for
        (lambda: model_for().to("meta"), "not a device charrnn runs on"),
        (lambda: model_for().to(torch.float16), "is not a device"),
        (lambda: model_for().to("banana"), "is not a device"),
        (lambda: ModelConfig(5, 8, 8193, 1), "hidden_size must be at most 8192"),
        (lambda: ModelConfig(5, 4097, 8, 1), "embedding_dim must be at most 4096"),
        (lambda: ModelConfig(5, 8, 8, 17), "num_layers must be at most 16"),
        # another library's whole number: the conversion named
        (lambda: sample_text(model, "ab", torch.tensor(5)), r"a Python int is wanted: int\(x\)"),
        (lambda: SampleConfig(top_k=torch.tensor(3)), r"a Python int is wanted"),
        (lambda: SampleConfig(temperature=torch.tensor(0.5)), r"a Python float is wanted"),
        (lambda: SampleConfig(top_p=torch.tensor(0.5)), r"a Python float is wanted"),
        (lambda: Sampler(model, SampleConfig(), track_logprob=False).mean_logprob(), "track"),
        (lambda: text_properties(b"ab"), "text must be a str"),
        (lambda: episodes([0, 1, 0]), "values must be a real tensor"),
        (lambda: episodes(torch.tensor([1j, 0j])), "values must be a real tensor"),
    ]


def test_every_library_call_names_the_argument_it_cannot_take(trained_run):
    """A wrong type or value given to any library call is a ConfigError naming it, raised when the
    call is made (a generator's too), never a TypeError or IndexError from deep inside, nor a
    default taken in its place (an empty name, a cell of None)."""
    from charrnn.use.inspection import record

    for call, field in _wrong_arguments(trained_run.best):
        with pytest.raises(ConfigError, match=field):
            call()
    model = model_for()
    assert [len(s) for s in Sampler(model, SampleConfig(num_samples=2)).generate(3)] == [2, 2, 2]
    from charrnn.text.encoded import cache_entries, clear_cache

    folder = str(trained_run.best.parent)  # a str is a path here too: no encoded corpora in it
    assert cache_entries(folder) == [] and clear_cache(folder) == 0
    assert record(model, "abc").top(-1) == record(model, "abc").top(2)


def test_load_model_reads_a_run_folder_as_its_best_pt(trained_run, tmp_path):
    from charrnn import checkpoint

    from_folder = checkpoint.load_model(trained_run.path)
    folder = tmp_path / "young"  # a run stopped before its first evaluation
    folder.mkdir()
    (folder / "last.pt").write_bytes(trained_run.last.read_bytes())
    with pytest.raises(CheckpointError, match=r"without a best\.pt .* give its last\.pt"):
        checkpoint.load_model(folder)
    for load in (checkpoint.load, checkpoint.load_run):  # a folder with a best.pt: not "without"
        with pytest.raises(CheckpointError, match=r"is a run folder: give one of its checkpoint"):
            load(trained_run.path)
    from_file = checkpoint.load_model(trained_run.best)
    assert from_folder.vocab.chars == from_file.vocab.chars
    for a, b in zip(from_folder.net.parameters(), from_file.net.parameters(), strict=True):
        assert a.equal(b)


def test_stop_strings_are_read_as_the_command_reads_them():
    """One str is one stop string (`--stop '\\n\\n'`), never one a character; None is none."""
    config = SampleConfig(temperature=1.5, seed=7, num_samples=2)
    texts = {}
    for stops in ("ab", ["ab"], None, []):
        job = SampleJob(model_for(), config, 300, stops=stops)
        list(job)
        texts[repr(stops)] = [r.text for r in job.results()]
        assert job.stops == ([] if stops in (None, []) else ["ab"])
    assert texts["'ab'"] == texts["['ab']"] and texts["None"] == texts["[]"]
    assert texts["'ab'"] != texts["None"]  # (the seed writes "ab" in its 300 characters)


def test_unseen_characters_are_named_where_they_are_whatever_the_split():
    from charrnn.use.scoring import MIN_PIECE, score_lines, score_text

    text = "abc de\n" * (3 * MIN_PIECE // 7)
    text = text[: 2 * MIN_PIECE + 5] + "Z" + text[2 * MIN_PIECE + 6 :]
    said = set()
    for streams in (1, None, 3):
        with pytest.raises(VocabError) as e:
            score_text(model_for(), text, streams=streams)
        said.add(str(e.value))
    assert said == {f"the vocabulary lacks 'Z' (U+005A) at character {2 * MIN_PIECE + 6}"}
    said = r"^lines\[2\]: the vocabulary lacks 'Z' \(U\+005A\) at character 2$"
    with pytest.raises(VocabError, match=said):
        score_lines(model_for(), ["ab\n", "cd\n", "aZ\n"])


def test_a_line_in_the_other_unicode_form_scores_as_the_same_line():
    """`score --per-line` read é typed as e + U+0301 as an unseen U+0301 (nan), where the whole
    text, a prime and inspect read it in the model's form; and an unseen character is placed
    where it stands in the line as typed."""
    import unicodedata

    from charrnn.use.bits import line_bits

    vocab = CharVocab.from_text("ab é\n")
    model = Model(tiny("lstm", 2, vocab_size=len(vocab)), vocab)
    typed = unicodedata.normalize("NFD", "a é\n")
    found = line_bits(model, [typed, "a é\n", "éé Z\n"], "error")
    assert found.bits[0] == found.bits[1] and not math.isnan(found.bits[0])
    assert found.unseen == [2] and "'Z' (U+005A) at character 4" in found.where
    typed_z = unicodedata.normalize("NFD", "éé Z\n")  # counted as typed, as a prime's are
    assert "at character 6" in line_bits(model, [typed_z], "error").where


def test_a_prime_in_the_other_unicode_form_is_the_same_prime():
    """é typed as e + U+0301 to a model that read it as one code point: the same text, read in
    the model's form by every sampler (the command line's too: apply_unknown)."""
    import unicodedata

    vocab = CharVocab.from_text("ab é\n")
    model = Model(tiny("lstm", 2, vocab_size=len(vocab)), vocab)
    typed = unicodedata.normalize("NFD", "a é")
    assert sample_text(model, typed, 20, seed=3) == sample_text(model, "a é", 20, seed=3)
    sampler = Sampler(model, SampleConfig(seed=3))
    sampler.prime(typed)
    assert "".join(c[0] for c in sampler.generate(20)) == sample_text(model, "a é", 20, seed=3)
