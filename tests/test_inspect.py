"""`charrnn inspect`: the per-character record (equal to the fused kernel, the scorer and the
sampler), the text's properties, the units found, gate saturation, the page, and the command."""

import base64
import dataclasses
import json
import math
import re

import pytest
import torch
from conftest import DEADLINE, make_text, page_data, tiny
from helpers.cli import assert_one_error, popen, run
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.model.config import CELLS, FIELDS, GATES
from charrnn.model.trained import Model, lead_in
from charrnn.text.vocab import CharVocab
from charrnn.use.inspection import Recording, record
from charrnn.use.page import render
from charrnn.use.sampler import SampleConfig, Sampler
from charrnn.use.scoring import score_text
from charrnn.use.units import PROPERTIES, find_units, gate_saturation, text_properties

VOCAB = CharVocab.from_text("abcdefg \n()\"'")


def model_for(cell, num_layers=2):
    return tiny(cell, num_layers, vocab_size=len(VOCAB))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_the_record_is_the_fused_kernels_reading(cell, num_layers):
    """Read character by character through the named-gate step, the record gives: the state after
    the last character that `forward` gives, the top layer's hidden state at every character, the
    likeliest next characters, and surprises that add up to the scorer's nats."""
    model = model_for(cell, num_layers)
    text = "".join(VOCAB.chars[i] for i in torch.randint(0, len(VOCAB), (60,)).tolist())
    rec = record(Model(model, VOCAB), text)
    assert set(rec.values) == set(FIELDS[cell]) and rec.text == text
    idx = torch.tensor([VOCAB.encode(lead_in(VOCAB) + text)])
    with torch.no_grad():
        x = model.embed(idx)
        out, _ = model.rnn(x)  # (1, P+T, H): the top layer at every character
        logits, state = model(idx)
    n = len(text)
    torch.testing.assert_close(rec.values["hidden"][-1], out[0, -n:], atol=2e-5, rtol=1e-4)
    names = ("hidden", "cell") if cell == "lstm" else ("hidden",)  # the state's own order
    for field, s in zip(names, state, strict=True):
        torch.testing.assert_close(rec.values[field][:, -1], s[:, 0], atol=2e-5, rtol=1e-4)
    probs, ids = torch.softmax(logits[0, -n:], -1).topk(rec.top_ids.shape[1])
    torch.testing.assert_close(rec.top_probs, probs, atol=2e-5, rtol=1e-4)
    assert (rec.top_ids[:, 0] == ids[:, 0]).all()
    nats = score_text(Model(model, VOCAB), text)
    assert math.isclose(float(rec.surprise.sum()) * math.log(2), nats, rel_tol=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_recorded_gates_make_the_recorded_states(cell):
    """The gates in the record are those that made the next state: for the LSTM
    c = forget * c + input * candidate and h = output * tanh(c); for the GRU
    h = (1 - update) * candidate + update * h."""
    rec = record(Model(model_for(cell), VOCAB), "abc (de) 'fg'\n\"ab\" cd\nefg")
    v = rec.values
    if cell == "lstm":
        c, f, i, g = (v[k] for k in ("cell", "forget", "input", "candidate"))
        torch.testing.assert_close(f[:, 1:] * c[:, :-1] + i[:, 1:] * g[:, 1:], c[:, 1:])
        torch.testing.assert_close(v["output"] * torch.tanh(c), v["hidden"])
    else:
        h = v["hidden"]
        torch.testing.assert_close(
            (1 - v["update"][:, 1:]) * v["candidate"][:, 1:] + v["update"][:, 1:] * h[:, :-1],
            h[:, 1:],
        )
    for gate in GATES[cell]:
        assert ((v[gate] > 0) & (v[gate] < 1)).all()


@pytest.mark.parametrize("cell", CELLS)
def test_a_recorded_sample_is_the_samplers_text(cell):
    """--sample writes what `charrnn sample` writes with the same seed, prime and temperature,
    and records the prime as given."""
    model = model_for(cell)
    config = SampleConfig(temperature=(0.9,), seed=7)
    rec = record(Model(model, VOCAB), "ab (", 80, config)
    sampler = Sampler(Model(model, VOCAB), config)
    sampler.prime("ab (")
    written = "".join(chars[0] for chars in sampler.generate(80))
    assert rec.text == "ab (" + written and rec.given == 4 and rec.seed == 7


def test_text_properties_on_a_worked_example():
    text = "A \"b (c\n  [d]) e\n\nKING: x's 'y'"
    p = {k: v.tolist() for k, v in text_properties(text).items()}
    at = {ch: i for i, ch in enumerate(text) if ch in "bcdexy"}
    assert p["double quotes"][at["b"]] == 1 and p["double quotes"][at["x"]] == 0  # blank line
    assert p["bracket depth"][at["c"]] == 1 and p["bracket depth"][at["d"]] == 2
    assert p["in brackets"][at["e"]] == 0
    assert p["indentation"][at["d"]] == 2 and p["indentation"][at["e"]] == 2
    assert p["indentation"][at["x"]] == 0
    assert p["line position"][at["d"]] == 4 and p["to line end"][at["d"]] == 4  # "]) e"
    assert p["upper-case run"][text.index("KING") + 2] == 1 and p["upper-case run"][0] == 0
    assert p["single quotes"][text.index("s ")] == 0  # x's: an apostrophe
    assert p["single quotes"][at["y"]] == 1
    # a ' at a word's edge with no partner on its line is an apostrophe, not a quote to line end
    line = "the boys' toys, 'tis\nsaid 'aye' twice"
    q = text_properties(line)["single quotes"].tolist()
    assert "".join(ch for ch, v in zip(line, q, strict=True) if v) == "'aye"
    code = "s = ' '.join(w) + r'\\d' + 'it''s'"  # code: a space, a prefix, two strings abutting
    q = text_properties(code)["single quotes"].tolist()
    assert "".join(ch for ch, v in zip(code, q, strict=True) if v) == "' '\\d'it's"
    assert p["word start"][at["b"]] == 1 and p["word start"][text.index("ING")] == 0


@given(st.text(alphabet="ab (){}[]\"'\n\t", max_size=200))
def test_text_properties_hold_for_any_text(text):
    p = text_properties(text)
    assert all(len(v) == len(text) for v in p.values())
    assert (p["bracket depth"] >= 0).all()
    assert torch.equal(p["in brackets"], (p["bracket depth"] > 0).double())
    for t, ch in enumerate(text):
        if ch != "\n":  # a character, its place in the line and what is left make the line
            line = text[: t + 1].rsplit("\n", 1)[-1] + text[t + 1 :].split("\n", 1)[0]
            assert p["line position"][t] + p["to line end"][t] == len(line)


def planted(values: dict, text: str, cell: str = "lstm") -> Recording:
    n = len(text)
    return Recording(
        text=text,
        cell=cell,
        values=values,
        surprise=torch.zeros(n),
        top_ids=torch.zeros(n, 1, dtype=torch.long),
        top_probs=torch.ones(n, 1),
        given=n,
        vocab=CharVocab.from_text(text),
    )


def test_find_units_finds_a_planted_unit_and_says_what_chance_gives():
    """A unit that counts the characters of the line, hidden among noise, is the best at `line
    position`, far above the chance level; a property the text lacks is reported as such."""
    text = make_text(3000)
    torch.manual_seed(0)
    cell = torch.randn(2, len(text), 16)
    cell[1, :, 5] = text_properties(text)["line position"].float() + 0.1 * torch.randn(len(text))
    rec = planted({"cell": cell, "hidden": torch.randn(2, len(text), 16)}, text)
    found = {f.property.name: f for f in find_units(rec)}
    unit, r = found["line position"].units[0]
    assert (unit.layer, unit.index, unit.field) == (1, 5, "cell") and r > 0.99
    assert found["line position"].chance < 0.5
    assert found["double quotes"].units == []  # make_text has no quotes
    assert found["double quotes"].unfound == "does not vary in this text"
    assert found["double quotes"].chance is None  # not measured
    assert found["line position"].unfound == ""

    # one word of 500 letters: a single word start and one line's ramp, which a unit that only
    # drifts from its cold start tracks at 0.99: too few to say anything, so not claimed
    text = "a" * 500
    drift = torch.linspace(0, 1, len(text))[None, :, None].expand(1, -1, 4).clone()  # (1, T, 4)
    rec = planted({"cell": drift, "hidden": drift}, text)
    found = {f.property.name: f for f in find_units(rec)}
    assert all(f.units == [] for f in found.values())
    assert found["word start"].unfound == "too rare in this text"  # it occurs, once
    assert found["line position"].unfound == "too rare in this text"
    assert all(f.units == [] for f in find_units(record(Model(model_for("lstm", 1), VOCAB), "")))


@pytest.mark.parametrize("cell", CELLS)
def test_an_untrained_network_is_the_level_a_learnt_unit_must_pass(cell):
    """Each property's `untrained` level is the best |r| a network of the model's shape reaches
    at its initial weights: for a model that is that network, its own best, and its JSON."""
    from conftest import TINY_MODEL

    from charrnn.model.network import CharRNN, ModelConfig
    from charrnn.use.report import UNTRAINED_SEED, inspect

    text = make_text(1500)
    vocab = CharVocab.from_text(text)
    torch.manual_seed(UNTRAINED_SEED)
    net = CharRNN(ModelConfig(vocab_size=len(vocab), cell=cell, **TINY_MODEL))
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    found = inspect(Model(net.eval(), vocab), text, units=True)
    assert torch.equal(torch.rand(2), expected)  # the caller's generator as it was
    assert any(f.units for f in found.found)
    for f in found.found:
        assert f.untrained == (pytest.approx(f.best, abs=1e-6) if f.units else None)
    records = [r for r in found.records("m.pt") if r["kind"] == "units"]
    assert [r["untrained"] for r in records] == [
        None if f.untrained is None else round(f.untrained, 4) for f in found.found
    ]


def test_gate_saturation_counts_the_shares_below_and_above():
    n = 10
    forget = torch.full((1, n, 3), 0.5)
    forget[0, :7, 0] = 0.95  # unit 0: above 0.9 on 7 of 10 characters
    forget[0, :, 1] = 0.05  # unit 1: always below 0.1
    rec = planted({g: forget for g in FIELDS["lstm"]}, "x" * n)
    first = gate_saturation(rec)[0]
    assert first.gate == "forget"
    assert first.right[0].tolist() == pytest.approx([0.7, 0.0, 0.0])
    assert first.left[0].tolist() == pytest.approx([0.0, 1.0, 0.0])
    assert gate_saturation(planted({"hidden": forget}, "x" * n, "rnn")) == []


def test_the_page_is_self_contained_and_holds_the_record():
    """No source outside the file (a Content-Security-Policy forbids any), a text that tries to
    close the script stays data, and each value comes back within a quantisation step."""
    text = 'ab</script><script>alert("x")</script>\n' * 2
    vocab = CharVocab.from_text(text)
    model = tiny("lstm", vocab_size=len(vocab))
    rec = record(Model(model, vocab), text)
    found = [dataclasses.replace(f, untrained=n / 10) for n, f in enumerate(find_units(rec))]
    html = render(rec, "runs/x/best.pt", found, gate_saturation(rec))
    assert "default-src 'none'" in html
    assert not re.search(r"<(script|img|link|iframe)[^>]*\b(src|href)=", html)
    assert "<script>alert" not in html
    data = page_data(html)
    assert data["text"] == text and data["given"] == len(text)
    # r and chance unrounded, for the page to round once as the terminal does
    assert [[u[3] for u in f["units"]] for f in data["found"]] == [
        [r for _, r in f.units] for f in found
    ]
    assert [f["unfound"] for f in data["found"]] == [f.unfound for f in found]
    assert [f["untrained"] for f in data["found"]] == [f.untrained for f in found]
    cell = torch.frombuffer(bytearray(base64.b64decode(data["values"]["cell"])), dtype=torch.uint8)
    levels = data["levels"]  # a byte's steps: an even number, so that 0 travels exactly
    assert levels % 2 == 0 and levels <= 255
    cell = cell.float().reshape(rec.values["cell"].shape) / levels * 2 - 1
    scale = torch.tensor(data["cell_scale"])[:, None, :]  # (L, 1, H): each unit's largest |c|
    assert (scale - rec.values["cell"].abs().amax(1, keepdim=True)).abs().max() < 1e-4
    assert ((cell * scale - rec.values["cell"]).abs() <= scale / levels + 1e-4).all()
    forget = torch.frombuffer(
        bytearray(base64.b64decode(data["values"]["forget"])), dtype=torch.uint8
    )
    forget = forget.float().reshape(rec.values["forget"].shape) / levels
    assert (forget - rec.values["forget"]).abs().max() <= 0.5 / levels + 1e-6
    assert [g["gate"] for g in data["gates"]] == list(GATES["lstm"])
    assert {f["property"] for f in data["found"]} == {p.name for p in PROPERTIES}


@settings(max_examples=30, deadline=None)
@given(
    name=st.lists(
        st.sampled_from(["%DATA%", "%TITLE%", "%", "DATA", "<", "&", "</title>", "x/", "é"]),
        max_size=8,
    ).map("".join),
    text=st.sampled_from(["ab%DATA%c", "%TITLE%", "plain"]),
)
def test_the_page_template_is_filled_in_one_pass(name, text):
    """Whatever the checkpoint's path and the text hold (placeholders among them), the title is
    that path, escaped, and the data is the record: no value is read again as a template."""
    from charrnn.use.page import TEMPLATE

    vocab = CharVocab.from_text(text)
    html = render(record(Model(tiny("lstm", vocab_size=len(vocab)), vocab), text), name)
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert title == f"charrnn inspect: {escaped}"
    assert page_data(html)["text"] == text
    assert html.count('id="data"') == TEMPLATE.count('id="data"') == 1


# ---------------------------------------------------------------------------------------------
# The command


def invoke(env, runs, *args, input=None):
    return env(["inspect", "--checkpoint-dir", str(runs), *args], input)


def test_piped_it_writes_one_line_of_plain_data_per_character(env, runs_by_cell, tmp_path):
    text = "ANNA:\nthe cat sat on a mat.\n"
    (tmp_path / "in.txt").write_text(text)
    result = invoke(env, runs_by_cell, "-c", "lstm", "in.txt", "--unit", "1:3", "--show", "cell")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "position\tchar\tcell_1:3\tsurprise_bits"
    rows = [line.split("\t") for line in lines[1:]]
    shown = "".join(r[1] for r in rows).replace("\\n", "\n").replace("\\t", "\t")
    assert shown == text and [int(r[0]) for r in rows] == list(range(len(text)))
    assert result.stderr == ""


def test_json_values_that_round_to_zero_from_below_are_zero():
    from charrnn.use.report import _rounded

    assert json.dumps(_rounded(torch.tensor([[-4e-5, -0.12344], [0.5, 1e-9]]))) == (
        "[[0.0, -0.1234], [0.5, 0.0]]"
    )


@pytest.mark.parametrize("cell", CELLS)
def test_json_lines_hold_every_layer_for_every_cell(env, runs_by_cell, cell):
    gates = ["--gates"] if GATES[cell] else []  # an RNN has none: a usage error, below
    result = invoke(
        env, runs_by_cell, "-c", cell, "-", "--json", "--find-units", *gates, input="the cat\n"
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    header, chars = records[0], [r for r in records if r["kind"] == "char"]
    assert header["kind"] == "header" and header["cell"] == cell and header["text"] == "the cat\n"
    assert header["fields"] == list(FIELDS[cell]) and header["checkpoint"].endswith("best.pt")
    assert "".join(r["char"] for r in chars) == "the cat\n"
    assert all(len(r["layers"]) == 2 and set(r["layers"][1]) == set(FIELDS[cell]) for r in chars)
    assert all(len(r["layers"][0]["hidden"]) == header["hidden_size"] for r in chars)
    kinds = [r["kind"] for r in records]
    assert kinds.count("units") == len(PROPERTIES)
    found = {r["property"]: r for r in records if r["kind"] == "units"}  # 8 characters: none
    assert found["double quotes"]["unfound"] == "does not vary in this text"
    assert found["word start"]["unfound"] == "too rare in this text"  # twice: a word, a word
    assert found["word start"]["chance"] is None  # not measured, as `untrained`
    assert kinds.count("gates") == 2 * len(GATES[cell])


def test_sample_mode_writes_what_sample_writes(env, runs_by_cell):
    args = ["-c", "gru", "--seed", "5", "--prime", "ANNA:"]
    inspected = invoke(env, runs_by_cell, *args, "--sample", "60", "--json")
    sampled = env(["sample", "--checkpoint-dir", str(runs_by_cell), *args, "--length", "60"])
    header = json.loads(inspected.stdout.splitlines()[0])
    assert header["text"] == sampled.stdout.rstrip("\n") or header["text"] == sampled.stdout
    assert header["given"] == 5 and header["seed"] == 5


def test_coloured_on_request_with_a_legend(env, runs_by_cell, tmp_path):
    (tmp_path / "in.txt").write_text("the cat\nsat\n")
    result = invoke(env, runs_by_cell, "-c", "rnn", "in.txt", "--color", "always", "-u", "0:1")
    assert result.exit_code == 0, result.output
    assert "\x1b[" in result.stdout and "hidden 0:1" in result.stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    assert "the cat \nsat \n" in plain  # a line break shows as a coloured space, then breaks


def test_find_units_and_gates_print_tables(env, runs_by_cell, tmp_path):
    (tmp_path / "in.txt").write_text(make_text(800, seed=3))
    result = invoke(env, runs_by_cell, "-c", "lstm", "in.txt", "--find-units", "--gates")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["property", "best unit", "r"]
    by_name = {line.split("\t")[0]: line.split("\t") for line in lines}
    assert by_name["double quotes"][1] == "does not vary in this text"  # the text has none
    assert re.fullmatch(r"(cell|hidden) [01]:\d+", by_name["line position"][1])
    gates = [line.split("\t") for line in lines if line.split("\t")[1] in GATES["lstm"]]
    assert len(gates) == 2 * 3 and all(g[2].endswith("%") for g in gates)


def test_the_bounds_and_the_unknown(env, runs_by_cell, tmp_path):
    (tmp_path / "long.txt").write_text(make_text(500))
    result = invoke(env, runs_by_cell, "-c", "lstm", "long.txt", "--max-chars", "40", "--json")
    assert json.loads(result.stdout.splitlines()[0])["text"] == make_text(500)[:40]
    assert "first 40 characters" in result.stderr
    # --find-units' rankings need text: it reads 10,000 characters unless told; a view, 2,000
    (tmp_path / "longer.txt").write_text(make_text(12_000))
    ranked = invoke(env, runs_by_cell, "-c", "lstm", "longer.txt", "--find-units")
    assert ranked.exit_code == 0 and "first 10,000 characters" in ranked.stderr, ranked.stderr
    viewed = invoke(env, runs_by_cell, "-c", "lstm", "longer.txt", "--color", "never")
    assert len(viewed.stdout.splitlines()) == 1 + 2000 and "first 2,000" in viewed.stderr
    (tmp_path / "odd.txt").write_text("the cat é\n")
    refused = invoke(env, runs_by_cell, "-c", "lstm", "odd.txt")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.startswith("Error: odd.txt has characters the model has never seen")
    skipped = invoke(env, runs_by_cell, "-c", "lstm", "odd.txt", "--unknown", "skip", "--json")
    assert json.loads(skipped.stdout.splitlines()[0])["text"] == "the cat \n"
    (tmp_path / "odder.txt").write_text("éé the cat " * 20)  # 2 of the first 10 skipped
    args = ["-c", "lstm", "odder.txt", "--unknown", "skip", "--max-chars", "10", "--json"]
    skipped = invoke(env, runs_by_cell, *args)
    assert json.loads(skipped.stdout.splitlines()[0])["text"] == " the cat"
    assert "first 10 characters of odder.txt, 8 of them after --unknown skip" in skipped.stderr
    # a prime the model cannot read says so, as `sample` says it
    primed = invoke(
        env, runs_by_cell, "-c", "lstm", "--sample", "5", "--prime", "éé", "--unknown", "skip"
    )
    assert primed.exit_code == 0, primed.stderr
    assert (
        "Note: --unknown skip left out 2 characters the model never saw (the whole prime"
        in primed.stderr
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["-c", "lstm", "-", "--unit", "2:0"], "not in this model"),
        (["-c", "lstm", "-", "--unit", "0:24"], "not in this model"),
        (["-c", "lstm", "-", "--unit", "a:b"], "is not LAYER:INDEX"),
        (["-c", "gru", "-", "--show", "forget"], "a GRU has no forget"),
        (["-c", "rnn", "-", "--show", "update"], "an RNN has no update"),
        (["-c", "rnn", "-", "--gates"], "an RNN has no gates (an LSTM and a GRU have)"),
        (["-c", "lstm", "-", "--json", "--unit", "0:5"], "--json writes every unit"),
        (["-c", "gru", "-", "--show", "surprise", "--unit", "5"], "no unit's: leave out --unit"),
        (["-c", "lstm", "f.txt", "--sample", "10"], "not both"),
        (["-c", "lstm", "-", "--prime", "x"], "--prime is for --sample"),
        (["-c", "lstm", "--sample", "3000"], "more than --max-chars"),
    ],
)
def test_usage_errors_exit_2(env, runs_by_cell, args, message):
    result = invoke(env, runs_by_cell, *args, input="the cat\n")
    assert result.exit_code == 2 and message in result.stderr and result.stdout == ""


def test_empty_input_and_too_big_a_page_are_one_error_line(env, runs_by_cell, monkeypatch):
    empty = invoke(env, runs_by_cell, "-c", "lstm", "-", input="")
    assert empty.exit_code == 1
    assert empty.stderr == "Error: standard input is empty: there is nothing to inspect\n"
    monkeypatch.setattr("charrnn.use.page.PAGE_BYTES", 10_000)
    big = invoke(env, runs_by_cell, "-c", "lstm", "-", "--html", "p.html", input="the cat " * 20)
    assert big.exit_code == 1 and "pass --max-chars 34 or less" in big.stderr


def test_the_page_opens_on_the_unit_asked_for(env, runs_by_cell):
    args = ["-c", "gru", "-", "--html", "p.html", "--unit", "1:3", "--show", "update"]
    result = invoke(env, runs_by_cell, *args, input="the cat\n")
    assert result.exit_code == 0 and result.stdout.startswith("position\tchar\tupdate_1:3\t")
    with open("p.html", encoding="utf-8") as f:
        assert page_data(f.read())["view"] == [1, 3, "update"]


@given(st.characters())
def test_a_piped_character_is_one_printable_field(ch):
    """No character can move a terminal's cursor, end a line or a field in the piped data."""
    from charrnn.cli.inspect_view import plain_char

    shown = plain_char(ch)
    assert shown.isprintable() and "\t" not in shown
    assert shown == ch or shown.startswith("\\")


def test_the_page_needs_no_numpy(monkeypatch):
    def no_numpy(self, *args, **kwargs):
        raise RuntimeError("Numpy is not available")

    monkeypatch.setattr(torch.Tensor, "numpy", no_numpy)
    rec = record(Model(model_for("gru"), VOCAB), "abc de\n")
    assert page_data(render(rec, "x"))["text"] == "abc de\n"


def test_the_page_goes_through_a_link_and_into_a_pipe(env, runs_by_cell, tmp_path):
    """--html writes as `sample -o` does: a link's target is written and the link stays a link;
    a FIFO (or a device) is written into, never replaced by a file."""
    import os
    import stat
    import threading

    (tmp_path / "target.html").write_text("")
    os.chmod(tmp_path / "target.html", 0o600)
    os.symlink("target.html", tmp_path / "link.html")
    ok = invoke(env, runs_by_cell, "-c", "lstm", "-", "--html", "link.html", input="the cat\n")
    assert ok.exit_code == 0 and os.path.islink(tmp_path / "link.html")
    assert stat.S_IMODE(os.stat(tmp_path / "target.html").st_mode) == 0o600  # its mode kept
    assert "the cat" in page_data((tmp_path / "target.html").read_text(encoding="utf-8"))["text"]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    ok = invoke(env, runs_by_cell, "-c", "lstm", "-", "--html", str(fifo), input="the cat\n")
    reader.join(DEADLINE)
    assert ok.exit_code == 0 and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert page_data(got[0].decode("utf-8"))["text"] == "the cat\n"


def test_a_recording_too_big_for_memory_is_one_error_line(env, runs_by_cell, monkeypatch):
    pages = {"SC_AVPHYS_PAGES": 2000, "SC_PAGE_SIZE": 4096}  # 8 MB free
    monkeypatch.setattr("os.sysconf", lambda name: pages[name])
    big = invoke(env, runs_by_cell, "-c", "lstm", "-", input="the cat " * 400)
    fits = 2000 * 4096 // 2 // (2 * 4 * 2 * 24 * 6)  # half the memory free; 2 x the recording
    assert big.exit_code == 1 and big.stdout == ""
    assert fits > 1000  # written as the option takes it: 1,234 is no integer to click
    assert big.stderr.endswith(f"; pass --max-chars {fits} or less\n")
    sample = invoke(env, runs_by_cell, "-c", "lstm", "--sample", "1900")
    assert sample.exit_code == 1 and f"pass --sample {fits} or less" in sample.stderr
    as_told = invoke(
        env, runs_by_cell, "-c", "lstm", "-", "--max-chars", str(fits), input="the cat"
    )
    assert as_told.exit_code == 0


def with_endless_stdin(args: list[str]) -> tuple[int, bytes, bytes]:
    """`yes "the cat sat" | charrnn ARGS`: exit status, stdout, stderr. It must end by itself:
    the test waits for the process to exit (an event), never a fixed time."""
    import subprocess
    import threading

    p = popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def endless():
        try:
            while True:
                p.stdin.write(b"the cat sat\n" * 1000)
        except (BrokenPipeError, ValueError, OSError):  # it stopped reading, or left
            pass

    threading.Thread(target=endless, daemon=True).start()
    out, err = p.stdout.read(), p.stderr.read()  # until it exits
    return p.wait(DEADLINE), out, err


@pytest.mark.parametrize("after", [b"\xff", b"\x00", b"\xe4\xb8"])  # not UTF-8, binary, cut
@pytest.mark.parametrize(
    "char, encoding",
    [("a", "utf-8"), ("\u732b", "utf-8"), ("\r\n", "utf-8"), ("a", "utf-16"), ("a", "latin-1")],
)
def test_bytes_after_max_chars_are_never_decoded(
    env, runs_by_cell, tmp_path, after, char, encoding
):
    """What --max-chars leaves unread cannot stop the command, however near (the very next byte)
    and wherever it falls in what is read from the file at a time (it stopped it inside the first
    64 KB); inside, it still does."""
    if encoding == "latin-1" and after != b"\x00":
        pytest.skip("every byte is latin-1 text")
    text = "the cat sat.\n" * 20
    text = text.replace("\n", "\r\n") if char == "\r\n" else text
    text = text[:150] + char * 25 if char == "\u732b" else text[:200]
    text = text.rstrip("\r")  # a last \r is read with the byte after it (\r\n is one line end)
    chars = str(len(text.replace("\r\n", "\n")))  # as many as the text has: the next is bad
    data = text.encode(encoding) + after + b"more"
    (tmp_path / "in.txt").write_bytes(data)
    options = ["-c", "lstm", "--unknown", "skip", "-q", "--encoding", encoding]
    file = str(tmp_path / "in.txt")
    r = invoke(env, runs_by_cell, *options, file, "--max-chars", chars)
    assert r.exit_code == 0, r.stderr
    r = invoke(env, runs_by_cell, *options, "-", "--max-chars", chars, input=data)
    assert r.exit_code == 0, r.stderr
    try:  # the bytes after: refused where they are read (binary, or not text in the encoding)
        bad = data.decode(encoding) and b"\x00" in data and encoding != "utf-16"
    except UnicodeDecodeError:
        bad = True
    r = invoke(env, runs_by_cell, *options, file, "--max-chars", "1000")
    assert r.exit_code == (1 if bad else 0) and ("in.txt" in r.stderr) == bad


def test_endless_stdin_is_read_no_further_than_max_chars(runs_by_cell):
    """`yes | charrnn inspect --max-chars 50` ends: stdin is read until 50 characters are in."""
    args = ["inspect", "--checkpoint-dir", str(runs_by_cell), "-c", "lstm"]
    code, out, err = with_endless_stdin([*args, "--max-chars", "50", "-", "-q"])
    assert code == 0, err
    assert len(out.decode().splitlines()) == 1 + 50


def test_sampling_options_with_a_file_are_usage_errors_even_at_their_defaults(env, runs_by_cell):
    result = invoke(env, runs_by_cell, "-c", "lstm", "-", "--temp", "0.8", input="the cat\n")
    assert result.exit_code == 2 and "--temp is for --sample N" in result.stderr


def test_the_legend_says_where_white_is(env, runs_by_cell):
    args = ["-c", "lstm", "-", "--color", "always"]
    surprise = invoke(env, runs_by_cell, *args, input="the cat\n").stdout.splitlines()[0]
    assert "8 bits or more" in surprise and "(white: 0)" in surprise
    gate = invoke(env, runs_by_cell, *args, "-u", "1:2", "--show", "forget", input="the cat\n")
    legend = re.sub(r"\x1b\[[0-9;]*m", "", gate.stdout.splitlines()[0])
    assert "(white: 0.5)" in legend  # and what a gate's ends do, in words
    assert legend.startswith("forget 1:2:  0 (erase the cell) ") and " 1 (keep it) " in legend


@pytest.mark.parametrize("columns", ["0", "-5", "abc"])
def test_a_terminal_width_that_is_no_count_is_left_out(env, runs_by_cell, monkeypatch, columns):
    """COLUMNS=0 (rich took it for a screen of no columns: nothing drawn, exit 0)."""
    monkeypatch.setenv("COLUMNS", columns)
    shown = invoke(env, runs_by_cell, "-c", "lstm", "-", "--color", "always", input="the cat\n")
    assert shown.exit_code == 0 and "8 bits or more" in shown.stdout.splitlines()[0]
    assert "the cat" in re.sub(r"\x1b\[[0-9;]*m", "", shown.stdout)


def test_html_dash_writes_the_page_to_stdout_alone(env, runs_by_cell, tmp_path):
    page = invoke(env, runs_by_cell, "-c", "lstm", "-", "--html", "-", input="the cat\n")
    assert page.exit_code == 0 and page_data(page.stdout)["text"] == "the cat\n"
    assert "Wrote the page to stdout" in page.stderr and not (tmp_path / "-").exists()
    both = invoke(env, runs_by_cell, "-c", "lstm", "-", "--html", "-", "--find-units", input="x")
    assert both.exit_code == 2 and both.stdout == "" and "--find-units would write" in both.stderr


def test_a_page_into_stdout_and_a_prime_from_endless_stdin(runs_by_cell, tmp_path):
    """`--html /dev/stdout | wc -c` writes into the pipe (not a file at /proc/.../pipe:[N]), and
    `yes | inspect --sample 5 --prime -` reads no more of the prime than --max-chars allows."""

    base = ["inspect", "--checkpoint-dir", str(runs_by_cell)]
    (tmp_path / "in.txt").write_text("the cat sat\n")
    page = run(
        [*base, "-c", "lstm", str(tmp_path / "in.txt"), "--html", "/dev/stdout", "-q"],
        text=False,
    )
    assert page.returncode == 0, page.stderr
    assert page_data(page.stdout.decode("utf-8"))["text"] == "the cat sat\n"
    args = ["inspect", "--checkpoint-dir", str(runs_by_cell), "-c", "lstm", "--sample", "5"]
    code, out, err = with_endless_stdin([*args, "--prime", "-", "--max-chars", "50"])
    assert code == 1 and out == b""  # the prime's length, not the usage, is at fault
    assert b"Error: the prime on standard input is longer than --max-chars 50: raise" in err


def test_a_certain_guess_has_a_surprise_of_zero_not_minus_zero():
    """A model sure of every next character (a head that always says 'a'): each surprise is 0,
    written `0.0000`, never `-0.0000` or a hair below 0."""
    model = model_for("lstm", 1)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(-100.0)
        model.head.bias[VOCAB.encode("a")[0]] = 100.0
    rec = record(Model(model, VOCAB), "aaaa")
    assert [math.copysign(1.0, float(s)) for s in rec.surprise] == [1.0] * 4
    assert rec.surprise.tolist() == [0.0] * 4


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_max_chars_reads_the_first_characters_wherever_it_cuts(tmp_path, encoding):
    """Every --max-chars of a text of multi-byte characters and lone \\r line ends reads its first
    characters: a cut inside a character, or where the decoder still holds bytes back (a byte-order
    mark's first four, a \\r that may open \\r\\n), is not a file cut short."""
    from charrnn.cli.inspect import _read_text

    text = "Я помню\rчудное\r\nмгновенье 🐈\r" * 3
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode(encoding))
    read = text.replace("\r\n", "\n").replace("\r", "\n")
    for max_chars in range(1, len(read) + 2):
        got, more = _read_text(str(path), "in.txt", encoding, max_chars)
        assert got == read[:max_chars] and more == (max_chars < len(read)), max_chars


def test_a_prime_from_a_file_is_the_prime_given_otherwise(env, runs_by_cell, tmp_path):
    """--prime-file reads the prime as `sample` does (exactly, its line end kept) and writes what
    --prime with the same text writes; empty, beside --prime, or without --sample: refused."""
    (tmp_path / "p.txt").write_text("ANNA:\n")
    (tmp_path / "e.txt").write_text("")
    base = ["-c", "lstm", "--sample", "20", "--seed", "3"]
    by_file = invoke(env, runs_by_cell, *base, "--prime-file", "p.txt")
    assert by_file.exit_code == 0, by_file.stderr
    assert by_file.stdout == invoke(env, runs_by_cell, *base, "--prime", "ANNA:\n").stdout
    assert (
        by_file.stdout
        == invoke(env, runs_by_cell, *base, "--prime-file", "-", input="ANNA:\n").stdout
    )
    empty = invoke(env, runs_by_cell, *base, "--prime-file", "e.txt")
    assert_one_error(empty, 1, "the prime file e.txt is empty")
    both = invoke(env, runs_by_cell, *base, "--prime", "x", "--prime-file", "p.txt")
    assert_one_error(both, 2, "not both")
    alone = invoke(env, runs_by_cell, "-c", "lstm", "p.txt", "--prime-file", "p.txt")
    assert_one_error(alone, 2, "--prime-file is for --sample N")
