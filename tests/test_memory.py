"""Memory, measured: the recall corpus, its loss per gap, and closers by distance in real text."""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import DEADLINE, TINY_CLI, TINY_MODEL
from torch import nn

from charrnn.errors import ConfigError, CorpusError
from charrnn.model.network import CharRNN, ModelConfig
from charrnn.model.trained import Model
from charrnn.text import recall
from charrnn.text.catalog import catalog_path, load_catalog
from charrnn.text.recall import FILLER, PAIRS, parse_recall, recall_text
from charrnn.text.vocab import CharVocab
from charrnn.use import memory
from charrnn.use.memory import closer_loss_by_distance, match_pairs, recall_loss

# sha256 of `charrnn corpus get recall`: the same bytes on every machine and Python (checked on
# 3.10 to 3.13); a change here changes every number measured on the corpus.
RECALL_SHA256 = "2676464f0cd526e44fe5d902588c8f03f5d1884baca131dfd7a05472a4ad8fd5"
RECALL_VOCAB = CharVocab(sorted(set("".join(PAIRS[:8]) + FILLER + "=\n")))


def tiny_model(vocab_size: int, seed: int = 0) -> nn.Module:
    """The one place a real model is built: a tiny untrained one."""
    torch.manual_seed(seed)
    return CharRNN(ModelConfig(vocab_size=vocab_size, **TINY_MODEL))


def load_model(path: Path) -> tuple[nn.Module, CharVocab]:
    """The one place a checkpoint is read back into a model."""
    from charrnn import checkpoint

    model = checkpoint.restore(checkpoint.load(path), path)
    return model.net, model.vocab


class Oracle(nn.Module):
    """A recall model whose odds are set by hand: after the cue it puts half its probability on
    the right closer if the opener is at most `window` characters back, and shares the rest
    equally among the other K-1 closers; further back it gives the K closers equal odds. The
    state is (kind of the last opener, characters read since it), (B,) each."""

    def __init__(self, vocab: CharVocab, kinds: int = 8, window: int = 4):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # so that it has a device
        self.vocab, self.window = vocab, window
        self.kind = {vocab.index[p[0]]: k for k, p in enumerate(PAIRS[:kinds])}
        self.closers = vocab.encode("".join(p[1] for p in PAIRS[:kinds]))

    def init_state(self, batch_size: int):
        return torch.zeros(batch_size, dtype=torch.long), torch.full((batch_size,), 10**6)

    def read(self, ids, state):  # its "output" is the logits themselves
        kind, age = state[0].clone(), state[1].clone()
        b, t = ids.shape
        logits = torch.zeros(b, t, len(self.vocab))
        cue = self.vocab.index["="]
        for j in range(t):
            for i in range(b):
                ch = int(ids[i, j])
                if ch in self.kind:
                    kind[i], age[i] = self.kind[ch], 0
                else:
                    age[i] += 1
                if ch == cue:
                    logits[i, j] = -1e4
                    logits[i, j, self.closers] = 0.0
                    if age[i] <= self.window:  # odds K-1 : 1 : ... : 1 -> p(right) = 1/2
                        logits[i, j, self.closers[kind[i]]] = math.log(len(self.closers) - 1)
        return logits, (kind, age)

    def logits(self, out):
        return out


class Uniform(nn.Module):
    """Equal odds for every character, always: log2 V bits on each."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))
        self.v = vocab_size

    def init_state(self, batch_size: int):
        return torch.zeros(batch_size)

    def read(self, ids, state):
        return torch.zeros(*ids.shape, self.v), state

    def logits(self, out):
        return out


# --------------------------------------------------------------------------- the recall corpus


def test_every_record_parses_with_the_gaps_and_kinds_asked():
    text = recall_text(20_000, gaps=(3, 7, 40), kinds=4, seed=5)
    records = parse_recall(text)
    assert 20_000 <= len(text) < 20_000 + 44 and text.endswith("\n")
    assert len(records) == text.count("\n")
    assert {r.gap for r in records} == {3, 7, 40}
    assert {r.kind for r in records} == {0, 1, 2, 3}
    record = re.compile(r"([(\[{<])[a-j]*=([)\]}>])")
    for r, line in zip(records, text.splitlines(), strict=True):
        m = record.fullmatch(line)
        assert m and PAIRS[r.kind] == m[1] + m[2] and len(line) == r.gap + 3
        assert text[r.closer_at] == m[2] and text[r.closer_at + 1] == "\n"


def test_the_same_seed_gives_the_same_text_and_another_seed_another():
    assert recall_text(5_000, seed=1) == recall_text(5_000, seed=1)
    assert recall_text(5_000, seed=1) != recall_text(5_000, seed=2)
    # drawn from Random.random() alone, the one stream Python keeps the same across versions
    first = "!ecfehdefjf=?\n{gcjjijdhig=}\n<egjje=>\n!ifahd=?\n!aeicdibfcj=?\n"
    assert recall_text(60, gaps=(5, 10), seed=0) == first


@pytest.mark.parametrize(
    "settings",
    [
        {"kinds": 0},
        {"kinds": 17},
        {"gaps": ()},
        {"gaps": (5, -1)},
        {"filler": "ab("},
        {"filler": ""},
        {"gaps": 5},
        {"kinds": "3"},
        {"kinds": 2.5},
        {"size": "100"},
        {"size": -1},
        {"filler": None},
    ],
)
def test_settings_that_cannot_make_a_corpus_are_refused(settings):
    with pytest.raises(ConfigError):
        recall_text(**{"size": 100, **settings})


def test_parsing_finds_the_closers_and_refuses_what_is_not_a_record():
    records = parse_recall("(ab=)\n[cde=]\n<")  # the cut-off last line is left out
    assert [(r.line, r.kind, r.gap, r.closer_at) for r in records] == [(1, 0, 2, 4), (2, 1, 3, 11)]
    assert parse_recall("{=}\n")[0].gap == 0
    for bad in ["(ab=]\n", "(a(b=)\n", "xab=)\n", "(ab)\n", "(ab=)\n\n", "=)\n"]:
        with pytest.raises(CorpusError, match="not a record"):
            parse_recall(bad)
    with pytest.raises(CorpusError, match="no records"):
        parse_recall("(ab=)")
    with pytest.raises(ConfigError, match="text must be a str, not None"):
        parse_recall(None)


def test_the_catalog_has_recall_and_corpus_get_builds_it_offline(env):
    entry = load_catalog()["recall"]
    assert entry.builtin and entry.size == recall.SIZE and not entry.url
    r = env(["corpus", "get", "-q", "recall"])
    assert r.exit_code == 0, r.stderr
    data = Path(r.stdout.strip()).read_bytes()
    assert hashlib.sha256(data).hexdigest() == RECALL_SHA256


def test_the_recall_corpus_is_built_without_torch():
    code = (
        "import sys; from charrnn.text.catalog import BUILTINS; "
        "assert BUILTINS['recall'](1000).count('=') > 2; assert 'torch' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=DEADLINE).returncode == 0


def test_a_run_trains_on_the_recall_corpus_and_is_measured(env, tmp_path, monkeypatch):
    catalog = json.loads(catalog_path().read_text(encoding="utf-8"))
    catalog["corpora"] = [
        {**e, "size": 20_000} for e in catalog["corpora"] if e["name"] == "recall"
    ]
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    monkeypatch.setenv("CHARRNN_CATALOG", str(tmp_path / "catalog.json"))  # a small corpus
    r = env(["train", "recall", *TINY_CLI, "--steps", "5"])
    assert r.exit_code == 0 and r.stdout.strip().endswith("best.pt"), r.stderr
    model, vocab = load_model(Path(r.stdout.strip()))
    results = recall_loss(Model(model, vocab), recall_text(3_000, seed=99))
    assert sorted(results) == list(recall.GAPS)
    assert all(g.count > 0 and 0 < g.bits < 20 and g.chance == 3.0 for g in results.values())


# --------------------------------------------------------------------------- recall_loss

HAND_MADE = "(ab=)\n[ba=]\n{aaaaaa=}\n(bbbbbb=)\n"  # gaps 2, 2, 6, 6; kinds 0, 1, 2, 0


@pytest.mark.parametrize(("streams", "chunk"), [(1, 8192), (1, 3), (4, 5), (64, 2)])
def test_recall_loss_against_hand_computed_values(streams, chunk):
    oracle = Oracle(RECALL_VOCAB, kinds=8, window=4)  # remembers gap 2 (3 back), not gap 6
    results = recall_loss(
        Model(oracle, RECALL_VOCAB), HAND_MADE, kinds=8, streams=streams, chunk=chunk
    )
    assert list(results) == [2, 6]
    near, far = results[2], results[6]
    assert near.count == 2 and near.bits == pytest.approx(1.0) and near.accuracy == 1.0
    # forgotten: equal odds on 8 closers is chance, 3 bits; ties go to the first closer, `)`,
    # right for the `(` record only
    assert far.count == 2 and far.bits == pytest.approx(3.0) and far.accuracy == 0.5
    assert near.chance == far.chance == 3.0


def test_a_perfect_memory_costs_nothing_and_kinds_default_to_the_text():
    oracle = Oracle(RECALL_VOCAB, kinds=3, window=1000)
    oracle.closers = oracle.closers[:3]
    results = recall_loss(Model(oracle, RECALL_VOCAB), HAND_MADE)  # kinds 0 to 2 seen: K = 3
    assert all(g.chance == pytest.approx(math.log2(3)) for g in results.values())
    assert all(g.bits == pytest.approx(1.0) and g.accuracy == 1.0 for g in results.values())
    with pytest.raises(ConfigError, match="3 kinds"):
        recall_loss(Model(oracle, RECALL_VOCAB), HAND_MADE, kinds=2)


def test_reading_in_streams_and_chunks_is_reading_each_stream_in_one_pass():
    text = recall_text(400, gaps=(5, 10), seed=3)
    model = tiny_model(len(RECALL_VOCAB))
    starts = memory._line_starts(text, 3)
    assert len(starts) == 3 and all(text[s - 1] == "\n" for s in starts[1:])
    got = memory._log_probs_at(Model(model, RECALL_VOCAB), text, range(len(text)), starts, chunk=7)
    lead = RECALL_VOCAB.encode("\n\n")
    want = []
    for a, b in zip(starts, [*starts[1:], len(text)], strict=True):
        ids = torch.tensor([lead + RECALL_VOCAB.encode(text[a:b])])
        logits, _ = model(ids, model.init_state(1))  # (1, T, V)
        want.append(F.log_softmax(logits[0, len(lead) - 1 : -1], -1))
    assert torch.allclose(got, torch.cat(want), atol=1e-5)
    assert model.training  # put back as it was


# --------------------------------------------------------------------------- real text


def test_brackets_nest_and_unbalanced_ones_recover():
    assert match_pairs("f(a[b]{c}(d))") == [(3, 5), (6, 8), (9, 11), (1, 12)]
    assert match_pairs("( [ )") == [(0, 4)]  # the [ is never closed: dropped
    assert match_pairs("( [ ) ]") == [(0, 4)]  # ... for good
    assert match_pairs("( ] )") == [(0, 4)]  # a ] with no [ open: ignored
    assert match_pairs(")(()") == [(2, 3)]
    assert match_pairs("{[}]", pairs=("[]",)) == [(1, 3)]  # only the pairs asked for


def test_quotes_alternate_within_a_line():
    pairs = ("()", '""')
    assert match_pairs('say "hi" (or "yo")', pairs) == [(4, 7), (13, 16), (9, 17)]
    assert match_pairs('"open\n"x"', pairs) == [(6, 8)]  # left open at the line end: dropped
    assert match_pairs('"""doc"""', pairs) == [(0, 1), (2, 6), (7, 8)]  # honest, not clever
    assert match_pairs("'a' \"b\"", ("''", '""')) == [(0, 2), (4, 6)]


@pytest.mark.parametrize("pairs", [("(",), ("()", "(]"), ("()", "))"), ("(\n",), ()])
def test_pairs_that_cannot_be_matched_are_refused(pairs):
    with pytest.raises(ConfigError):
        match_pairs("()", pairs)


def test_closers_are_binned_by_distance_to_their_opener():
    text = "()" + "(xxxx)" + "(xxxxx)" + "[" + "x" * 399 + "]" + '"' + "x" * 400 + '"'
    vocab = CharVocab.from_text(text)  # " ( ) [ ] x
    out = closer_loss_by_distance(Model(Uniform(len(vocab)), vocab), text, pairs=("()", "[]", '""'))
    assert list(out) == ["()", "[]", '""']
    labels = ["1-5", "6-10", "11-20", "21-50", "51-100", "101-200", "201-400", "401+"]
    assert all([b.label for b in bins] == labels for bins in out.values())
    counts = {p: [b.count for b in bins] for p, bins in out.items()}
    assert counts == {  # distances 1 and 5, 6, 400, 401
        "()": [2, 1, 0, 0, 0, 0, 0, 0],
        "[]": [0, 0, 0, 0, 0, 0, 1, 0],
        '""': [0, 0, 0, 0, 0, 0, 0, 1],
    }
    for bins in out.values():
        for b in bins:
            assert (b.count == 0) == math.isnan(b.bits)
            assert b.count == 0 or b.bits == pytest.approx(math.log2(len(vocab)))
    # equal odds: the likeliest character is the first, '"', right for the quote alone
    assert out['""'][-1].accuracy == 1.0 and out["()"][0].accuracy == 0.0
    capped = closer_loss_by_distance(
        Model(Uniform(len(vocab)), vocab), text, ("()", '""'), limit=20
    )
    assert [b.count for b in capped['""']] == [0] * 8 and capped["()"][1].count == 1


def test_a_real_model_reads_code_and_prose():
    text = 'def f(x):\n    return g(x[0], {"a": (1, 2)})\n' * 20
    vocab = CharVocab.from_text(text)
    out = closer_loss_by_distance(
        Model(tiny_model(len(vocab)), vocab), text, ("()", "[]", "{}", '""')
    )
    assert sum(b.count for b in out["()"]) == 60 and sum(b.count for b in out['""']) == 20
    assert all(b.bits > 0 for bins in out.values() for b in bins if b.count)


def test_merged_bins_weigh_each_pairs_mean_by_its_closers():
    bin_ = memory.DistanceBin
    found = {
        "()": [bin_(1, 5, 3, 1.0, 1.0), bin_(6, None, 0, math.nan, math.nan)],
        "[]": [bin_(1, 5, 1, 5.0, 0.0), bin_(6, None, 2, 4.0, 0.5)],
    }
    first, rest = memory.merged(found)
    assert (first.count, first.bits, first.accuracy) == (4, 2.0, 0.75)  # (3*1 + 5) / 4
    assert (rest.lo, rest.hi, rest.count, rest.bits, rest.accuracy) == (6, None, 2, 4.0, 0.5)
    empty = memory.merged({"()": [bin_(1, 5, 0, math.nan, math.nan)]})[0]
    assert empty.count == 0 and math.isnan(empty.bits)


CODE = "".join(f"def f{i}(x):\n    return g(x[{i}], {{'a': ({i}, 2)}})\n" for i in range(150))


@pytest.fixture(scope="module")
def code_run(tmp_path_factory):
    """A tiny run trained a few steps on code, and its text."""
    from helpers.cli import invoke

    folder = tmp_path_factory.mktemp("memory")
    (folder / "code.py").write_text(CODE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("CHARRNN_CACHE_DIR", str(folder / "cache"))
        mp.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
        r = invoke(["train", "code.py", *TINY_CLI, "--steps", "5", "--name", "code"])
    assert r.exit_code == 0, r.stderr
    return folder


def test_the_memory_command_is_the_library_call_per_checkpoint(code_run, monkeypatch):
    from helpers.cli import assert_one_error, invoke

    from charrnn import checkpoint

    monkeypatch.chdir(code_run)
    best = code_run / "checkpoints/code/best.pt"
    r = invoke(["memory", "code.py", "-c", "code", "-c", str(best), "--json"])
    assert r.exit_code == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    model = checkpoint.load_model(best)
    expected = memory.merged(closer_loss_by_distance(model, CODE, ("()", "[]", "{}"), limit=None))
    assert len(records) == 2 and records[0]["bins"] == records[1]["bins"]
    assert (records[0]["cell"], records[0]["characters"]) == ("lstm", len(CODE))
    for got, b in zip(records[0]["bins"], expected, strict=True):
        assert (got["back"], got["closers"]) == (b.label, b.count)
        assert got["bits"] == (None if b.count == 0 else pytest.approx(b.bits, abs=1e-5))
    assert sum(b["closers"] for b in records[0]["bins"]) == len(match_pairs(CODE)) == 750
    table = invoke(["memory", "-", "-c", "code", "--max-chars", "2000"], input=CODE)
    lines = table.stdout.splitlines()  # piped: a header line, then one line a checkpoint
    assert table.exit_code == 0 and len(lines) == 2 and lines[0].startswith("checkpoint\tmodel")
    assert lines[1].startswith("checkpoints/code/best.pt\tLSTM 2x24\t")
    cells = lines[1].split("\t")[2:]  # piped: a bin without closers is nan, as runs writes it
    assert all(re.fullmatch(r"\d+\.\d\d \(\d+\)|nan \(0\)", cell) for cell in cells), cells
    assert "nan (0)" in cells  # (2,000 characters hold no closer 401 back)
    assert "2,000 characters of standard input" in table.stderr
    whole = invoke(["memory", "-", "-c", "code"], input=CODE * 4).stdout.splitlines()[1]
    assert re.search(r"\t\d+\.\d\d \(1240\)\t", whole), whole  # plain figures, not 1,240
    # a pair the model never saw is left out, and said to be, not blamed on the text
    r = invoke(["memory", "code.py", "-c", "code", "--pairs", "<>()"])
    assert r.exit_code == 0 and "has never seen <>: those pairs are left out" in r.stderr
    assert "450 closers of () in" in r.stderr  # three a line: f(x), g(...), (i, 2)
    r = invoke(["memory", "code.py", "-c", "code", "--pairs", "<>()", "--json", "-q"])
    assert json.loads(r.stdout)["pairs"] == "()"  # those measured, where no note is said
    # a later model that cannot be read: the command's error, with nothing written before it
    failed = invoke(["memory", "code.py", "-c", "code", "-c", "nonesuch", "--json"])
    assert_one_error(failed, 1, "nonesuch", alone=False)


def test_the_memory_command_reads_no_further_than_it_measures(code_run):
    """An endless standard input (`yes`) is read up to --max-chars, then the command ends."""
    from helpers.cli import command

    line = "def f(x):\n    return g(x[0], {'a': (1, 2)})\n"
    memory_ = " ".join(command(["memory", "-", "-c", "code", "--max-chars", "3000"]))
    r = subprocess.run(["sh", "-c", f'yes "{line}" | {memory_}'], cwd=code_run,
                       capture_output=True, text=True, timeout=DEADLINE)  # fmt: skip
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr
    assert "in 3,000 characters of standard input" in r.stderr


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--pairs", "()["], 2, "odd number of characters"),
        (["--pairs", "()(]"], 2, "'()(]' has '(' in two pairs: give each once"),  # as typed
        (["--pairs", "(\n"], 2, "a line break cannot open or close a pair"),
        (["--pairs", "::"], 1, "has no closer of :: after its opener"),  # one a line
        (["--pairs", "<>"], 1, "has never seen <>: a model is measured on characters it can "),
        (["--max-chars", "0"], 2, "--max-chars"),
    ],
)
def test_the_memory_command_refuses_what_it_cannot_measure(
    code_run, monkeypatch, args, code, words
):
    from helpers.cli import assert_one_error, invoke

    monkeypatch.chdir(code_run)
    assert_one_error(invoke(["memory", "code.py", "-c", "code", *args]), code, words)


def test_a_text_one_of_several_models_cannot_read_names_that_model(code_run, trained_run):
    from helpers.cli import assert_one_error, invoke

    prose = str(trained_run.best)  # a model of English words: no brackets
    args = ["memory", "-", "-c", str(code_run / "checkpoints/code/best.pt"), "-c", prose]
    line = assert_one_error(invoke([*args, "--unknown", "skip"], input="()" * 500), 1)
    assert f"has no character {prose} knows" in line, line
    line = assert_one_error(invoke(args, input="()" * 500), 1)  # --unknown error: the same
    assert f"has characters {prose} has never seen" in line, line


def test_a_model_that_knows_none_of_the_pairs_is_offered_those_it_knows_never_apostrophes():
    """A model of prose was told to try --pairs "''", which pairs apostrophes (o'er ... 'tis):
    the offer is the brackets and double quotes it knows, or why there are none."""
    from types import SimpleNamespace

    from charrnn.cli.memory import _pairs_it_knows

    def knowing(chars):
        return SimpleNamespace(vocab=SimpleNamespace(index=dict.fromkeys(chars, 0)))

    assert _pairs_it_knows(knowing("ab()\"'{")).endswith("""give --pairs '()""'""")
    assert "knows no brackets nor quotes that pair" in _pairs_it_knows(knowing("abc'’"))
    assert _pairs_it_knows(knowing("ab«»「」")).endswith("give --pairs '«»「」'")  # prose's own


# ---------------------------------------------------------------------------------------------
# The gradient's reach


def cell_model(cell: str, recurrent: bool = True, seed: int = 0) -> Model:
    """A tiny untrained one-layer model of `cell` over RECALL_VOCAB; without its recurrent
    weights (W_hh = 0) where `recurrent` is False."""
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=len(RECALL_VOCAB), cell=cell, **{**TINY_MODEL, "num_layers": 1})
    net = CharRNN(config).eval()
    if not recurrent:
        with torch.no_grad():
            net.layer_weights(0)[1].zero_()  # W_hh: the recurrence, all of it
    return Model(net, RECALL_VOCAB)


TRACED = recall_text(6000, seed=3)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_gradient_is_traced_back_exactly_k_characters(cell):
    """Without W_hh a vanilla RNN's h reads the last character alone: the loss's gradient reaches
    1 character back and no further (an index off by one would show it 2 back, or nowhere). An
    LSTM's cell state is its own path: the conveyor belt carries the gradient back without W_hh
    (f times c, step after step), and a GRU's (1 - z) h does the same."""
    floor = math.log10(torch.finfo(torch.float64).tiny)
    logs = memory.gradient_profile(cell_model(cell, recurrent=False), TRACED, window=20, targets=8)
    assert logs.shape == (20,) and logs[0] > -3
    if cell == "rnn":
        assert logs[1:].tolist() == pytest.approx([floor] * 19)  # at float64's floor: none
    else:
        assert (logs[1:] > floor + 10).all() and (logs.diff() < 0).all()  # fading, not gone


def test_one_back_is_the_gradient_of_the_next_character_s_loss_at_the_last_one_read():
    """Without W_hh an RNN's prediction of text[p] reads text[p - 1] alone: the size one back is
    that of d nats(text[p]) / d embedding(text[p - 1]), here taken as the gradient of the
    embedding table's row, one character read from a cold start."""
    model = cell_model("rnn", recurrent=False, seed=4)
    net, ids = model.net.double(), torch.tensor(RECALL_VOCAB.encode(TRACED))
    sizes = []
    for p in memory.traced_positions(len(ids), 16, 24).tolist():
        net.zero_grad()
        logits, _ = net(ids[p - 1 : p][None])  # (1, 1, V)
        F.cross_entropy(logits[0, -1:], ids[p : p + 1]).backward()
        sizes.append(math.log10(net.embed.weight.grad[ids[p - 1]].norm()))
    logs = memory.gradient_profile(model, TRACED, window=16, targets=24)
    assert float(logs[0]) == pytest.approx(sum(sizes) / len(sizes), abs=1e-9)


def test_tracing_positions_together_is_tracing_each_alone():
    model = cell_model("lstm", seed=1)
    together = memory.gradient_profile(model, TRACED, window=30, targets=12, batch=12)
    alone = memory.gradient_profile(model, TRACED, window=30, targets=12, batch=1)
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-9)


def test_the_positions_traced_are_chosen_among_those_given_that_have_a_window_before_them():
    among = [3, 50, 17, 50, 99, 100, 64, 20]
    assert memory.traced_positions(100, 20, 8, among).tolist() == [20, 50, 64, 99]
    assert memory.traced_positions(100, 20, 2, among).tolist() == [20, 99]
    assert memory.traced_positions(100, 20, 3, among).tolist() == [20, 64, 99]
    model = cell_model("lstm", seed=1)
    with pytest.raises(ConfigError, match="none of the positions given stands 20 characters"):
        memory.gradient_profile(model, TRACED, window=20, among=[3, 19])
    # tracing the positions chosen equals tracing them as the only text's positions there are
    one = memory.gradient_profile(model, TRACED, window=20, among=[40])
    alone = memory.gradient_profile(model, TRACED[20:41], window=20, targets=1)
    assert torch.equal(one, alone)


def test_the_bins_are_the_profile_s_means_relative_to_one_back():
    model = cell_model("gru", seed=2)
    logs = memory.gradient_profile(model, TRACED, window=10, targets=16)
    bins = memory.gradient_by_distance(model, TRACED, bins=(1, 4, 10), targets=16)
    assert [b.label for b in bins] == ["1-1", "2-4", "5-10"]
    assert bins[0].relative == pytest.approx(1.0)
    for b, (lo, hi) in zip(bins, [(1, 1), (2, 4), (5, 10)], strict=True):
        assert math.log10(b.absolute) == pytest.approx(float(logs[lo - 1 : hi].mean()))
        assert math.log10(b.relative) == pytest.approx(float(logs[lo - 1 : hi].mean() - logs[0]))
    with pytest.raises(ConfigError, match="tracing a loss 10 characters back needs 11"):
        memory.gradient_profile(model, TRACED[:10], window=10)


def test_the_memory_command_traces_gradients_as_the_library_does(code_run, monkeypatch):
    from helpers.cli import assert_one_error, invoke

    from charrnn import checkpoint

    monkeypatch.chdir(code_run)
    text = CODE * 2
    (code_run / "long.py").write_text(text)
    r = invoke(["memory", "long.py", "-c", "code", "--gradients", "--json"])
    assert r.exit_code == 0, r.stderr
    record = json.loads(r.stdout)
    model = checkpoint.load_model(code_run / "checkpoints/code")
    expected = memory.gradient_by_distance(model, text)
    assert [g["back"] for g in record["gradients"]] == [b.label for b in expected]
    for got, b in zip(record["gradients"], expected, strict=True):
        assert got["relative"] == pytest.approx(b.relative, rel=1e-3)
        assert got["absolute"] == pytest.approx(b.absolute, rel=1e-3)
    piped = invoke(["memory", "long.py", "-c", "code", "--gradients"])
    header, row = piped.stdout.splitlines()
    assert header.split("\t")[2:] == [f"{b.label} back" for b in expected]
    assert [float(x) for x in row.split("\t")[2:]] == pytest.approx(
        [b.relative for b in expected], rel=0.05
    )
    assert "the loss of 128 characters in long.py traced 400 characters back" in piped.stderr
    assert record["positions"] == 128 and "pairs" not in record
    every = record
    # with --pairs, the closers' loss alone: the library's figures traced over the closers
    r = invoke(["memory", "long.py", "-c", "code", "--gradients", "--pairs", "()", "--json"])
    closers = [c for _, c in memory.match_pairs(text, ["()"]) if c >= 400]
    expected = memory.gradient_by_distance(model, text, among=closers)
    record = json.loads(r.stdout)
    assert record["pairs"] == "()" and record["positions"] == min(128, len(closers))
    assert record["gradients"] != every["gradients"]  # other positions traced: other sizes
    got = [g[k] for g in record["gradients"] for k in ("relative", "absolute")]
    assert got == pytest.approx([x for b in expected for x in (b.relative, b.absolute)], rel=1e-3)
    assert f"the loss of {record['positions']} closers of () in long.py traced" in r.stderr
    early = "()" + " " * 500  # its one closer too near the start to trace 400 back
    r = invoke(["memory", "-", "-c", "code", "--gradients", "--pairs", "()"], input=early)
    assert_one_error(r, 1, "standard input has no closer of () after its opener 400 or more")
    r = invoke(["memory", "-", "-c", "code", "--gradients"], input=CODE[:300])
    line = assert_one_error(r, 1, "standard input holds 300 characters to read: tracing a loss 400")
    assert line.endswith("needs 401 or more; give a longer text")
    r = invoke(["memory", "long.py", "-c", "code", "--gradients", "--max-chars", "300"])
    assert_one_error(r, 1, "needs 401 or more; give a longer text, or a larger --max-chars")
    r = invoke(["memory", "-", "-c", "code", "--gradients", "--json"], input=CODE[:410])
    assert json.loads(r.stdout)["positions"] == 10
    assert "Note: under 30 characters traced: the sizes are noise" in r.stderr
