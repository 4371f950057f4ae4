"""Scoring, in the library and through `charrnn score`: the model's own cross-entropy, lines scored
as if alone, texts and lines of any length read in bounded chunks with the state carried, the
contract for any text, and the streams around it."""

import itertools
import json
import math
import os
import pty
import select
import subprocess

import pytest
import torch
from conftest import DEADLINE, make_text, tiny
from helpers.cli import assert_one_error, ended, invoke, popen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.errors import CorpusError
from charrnn.model.network import CharRNN
from charrnn.model.trained import Model, lead_in
from charrnn.text.decode import decode_lines
from charrnn.use import scoring
from charrnn.use.sampler import SampleConfig, Sampler
from charrnn.use.scoring import (
    CHUNK,
    MIN_PIECE,
    PASS_COLS,
    STREAMS,
    score_lines,
    score_text,
    split,
)

PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def score(trained_run, tmp_path, monkeypatch):
    """score(args, input=None): `charrnn score -c RUN ARGS` in an empty folder."""
    monkeypatch.chdir(tmp_path)
    best = str(trained_run.best)
    return lambda args, input=None: invoke(["score", "-c", best, *args], input=input)


def bits(nats: float) -> str:
    """A loss in nats as `score` writes it: bits per character, 4 decimals."""
    return f"{nats / math.log(2):.4f}"


def test_scores_are_the_models_own_cross_entropy(model_vocab):
    model, vocab = model_vocab
    text = "ANNA:\nthe cat sat on a mat.\n\nBORIS:\nwe all sang.\n"
    context = lead_in(vocab)
    with torch.no_grad():
        logits, _ = model(torch.tensor([vocab.encode(context + text)]))
    expected = torch.nn.functional.cross_entropy(
        logits[0, len(context) - 1 : -1], torch.tensor(vocab.encode(text)), reduction="sum"
    )
    assert score_text(Model(model, vocab), text, chunk=7) == pytest.approx(
        expected.item(), rel=1e-5
    )


@given(
    lines=st.lists(st.text("ANBOR: thecasmn.\n", min_size=1, max_size=40), min_size=1, max_size=9),
    batch=st.integers(1, 5),
    chunk=st.integers(1, 50),
)
@settings(max_examples=20, deadline=None)
def test_a_batch_scores_each_line_as_if_alone(model_vocab, lines, batch, chunk):
    model, vocab = model_vocab
    together = score_lines(Model(model, vocab), lines, batch=batch, chunk=chunk)
    alone = [score_text(Model(model, vocab), line) / len(line) for line in lines]
    assert together == pytest.approx(alone, rel=1e-4, abs=1e-5)


@pytest.fixture
def passes(monkeypatch):
    """The size (rows x characters) of every pass of the model's recurrent part from now on
    (`forward` reads through it too)."""
    sizes, read = [], CharRNN.read

    def recorded(model, idx, state=None):
        sizes.append(idx.numel())
        return read(model, idx, state)

    monkeypatch.setattr(CharRNN, "read", recorded)
    return sizes


def test_no_pass_reads_more_than_a_chunk(model_vocab, passes):
    """Lines and primes of any length go to the LSTM in bounded pieces (oneDNN refuses one
    sequence of a few hundred thousand characters), and a batch's padding too."""
    model, vocab = model_vocab
    lines = ["the cat sat. " * n for n in (1, 3, 50, 200)]
    scores = score_lines(Model(model, vocab), lines, chunk=64)
    assert max(passes) <= 64
    assert scores == pytest.approx(score_lines(Model(model, vocab), lines, chunk=10**6), rel=1e-4)
    passes.clear()
    Sampler(Model(model, vocab), SampleConfig()).prime(
        "the cat sat. " * 631
    )  # CHUNK + 11 characters
    assert max(passes) <= CHUNK and len(passes) > 1


@pytest.mark.parametrize("streams", [1, None])
def test_a_text_is_read_in_passes_the_thread_tuner_can_time(model_vocab, monkeypatch, streams):
    """One stream or a few: no pass reads more than PASS_COLS characters of a stream, so the
    thread tuner has units to time from the first second; the figure is what long passes give."""
    model = Model(*model_vocab)
    text = "the cat sat on a mat.\n" * 600  # 13,200 characters: 3 streams when split
    widths, read = [], CharRNN.read

    def recorded(self, idx, state=None):
        widths.append(idx.shape[1])
        return read(self, idx, state)

    monkeypatch.setattr(CharRNN, "read", recorded)
    bounded = score_text(model, text, streams=streams)
    assert max(widths) == PASS_COLS and len(widths) > 13_200 // (3 * PASS_COLS)
    widths.clear()
    monkeypatch.setattr(scoring, "PASS_COLS", 10**9)  # passes of CHUNK positions, as before
    assert score_text(model, text, streams=streams) == pytest.approx(bounded, rel=1e-6)
    assert max(widths) > PASS_COLS


def latched(vocab_size: int, latch: int) -> CharRNN:
    """An LSTM whose hidden unit 0 switches on at character `latch` and stays on for good (its
    forget gate shut open), and whose predictions lean on that unit: a stream that starts cold
    after the latch never reads the text as one stream from the start does, however long its
    warm-up (as a young model's cold start that runs away)."""
    model = tiny("lstm", num_layers=1, vocab_size=vocab_size)
    h = model.config.hidden_size
    i, f, g, o = (gate * h for gate in range(4))  # unit 0's row of each gate (PyTorch's order)
    with torch.no_grad():
        model.embed.weight[:, 0] = (torch.arange(vocab_size) == latch).float()
        for rows in (model.rnn.weight_ih_l0, model.rnn.weight_hh_l0):
            rows[[i, f, g, o]] = 0.0
        model.rnn.bias_hh_l0[[i, f, g, o]] = 0.0
        model.rnn.weight_ih_l0[i, 0] = 40.0  # the input gate opens at the latch only
        model.rnn.bias_ih_l0[[i, f, g, o]] = torch.tensor([-20.0, 40.0, 20.0, 40.0])
        model.head.weight[:, 0] = 20 * torch.randn(vocab_size)
    return model


def test_a_split_read_whose_warm_up_cannot_catch_up_is_read_as_one_stream(passes):
    """Each warm-up's last characters, read by the stream before too, must read alike: where
    they do not, the streams are read again as one, and the figure is the exact one-stream
    read's, where the warm-ups alone were 5 nats a character off."""
    from charrnn.text.vocab import CharVocab

    vocab = CharVocab(list(" \nLabc"))
    model = Model(latched(len(vocab), vocab.index["L"]), vocab)
    text = "L" + make_text(4 * MIN_PIECE, seed=3).translate(str.maketrans("", "", "L"))[:20_000]
    text = "".join(ch if ch in vocab.index else "abc"[ord(ch) % 3] for ch in text)
    exact = score_text(model, text, streams=1)
    passes.clear()
    said = []
    assert abs(score_text(model, text, progress=lambda *a: said.append(a)) - exact) <= 1e-6 * exact
    assert sum(passes) <= 2.2 * len(text)  # every piece apart: one exact read after the split
    # progress: the split's round, then the text again as one stream, each to its total
    ends = [i for i, (done, total) in enumerate(said) if done == total]
    assert len(ends) == 2 and said[-1] == (len(text), len(text)) and ends[-1] == len(said) - 1
    assert said[ends[0] + 1][0] < said[ends[0]][0]  # the second round starts from 0
    for (a, n), (b, m) in itertools.pairwise(said):
        assert (b > a and m == n) or b < a  # grows, but where a round begins
    cold = score_text(model, text[MIN_PIECE:], streams=1)  # a piece's stream, as the split read it
    warm = exact - score_text(model, text[:MIN_PIECE], streams=1)  # as read after the latch
    assert abs(cold - warm) > len(text[MIN_PIECE:])  # a nat a character apart or more
    passes.clear()
    later = "\n" + text[1:]  # no latch: every warm-up agrees, and nothing is read twice
    split_read, reads = score_text(model, later), sum(passes)
    assert split_read == pytest.approx(score_text(model, later, streams=1), rel=1e-4)
    assert reads <= 1.1 * len(later) and len(split(len(later))) > 1


def test_a_long_prime_is_read_in_passes_the_thread_tuner_can_time(model_vocab, monkeypatch):
    """`sample --prime-file` reads a long prime as `score` reads: passes of PASS_COLS at most,
    each timed for a ThreadTuner (two threads beside a busy process read at half the speed of
    one), to the state the long passes of a plain Model.start reach."""
    model = Model(*model_vocab)
    prime = "the cat sat on a mat.\n" * 100  # 2,200 characters
    widths, read = [], CharRNN.read

    def recorded(self, idx, state=None):
        widths.append(idx.shape[1])
        return read(self, idx, state)

    monkeypatch.setattr(CharRNN, "read", recorded)
    sampler = Sampler(model, SampleConfig(seed=1))
    sampler.prime(prime)
    assert max(widths) == PASS_COLS and len(widths) > len(prime) // PASS_COLS
    widths.clear()
    whole = model.start(1, prime)  # no tuner: one pass of the whole prime
    assert widths == [len(model.lead_in) + len(prime)]
    assert torch.allclose(sampler.logits, whole.logits, atol=1e-5)


def test_a_long_line_and_a_long_prime_through_the_command_line(
    score, trained_run, tmp_path, passes
):
    long = "the cat sat on a mat. " * 500  # 11,000 characters on one line
    (tmp_path / "long.txt").write_text(long + "\nANNA:\n")
    r = score(["--per-line", "long.txt"])
    assert r.exit_code == 0 and len(r.stdout.split()) == 2, r.stderr
    r = invoke(["sample", "-c", str(trained_run.best), "--prime-file", "long.txt", "-l", "5"])
    assert r.exit_code == 0 and r.stdout == ended(r.stdout[: len(long) + 7 + 5]), r.stderr
    assert max(passes) <= CHUNK


# ---------------------------------------------------------------------------------- the command


def test_score_a_file_whole_and_per_line(score, model_vocab, tmp_path):
    """The numbers are the library's, in bits per character: the whole text's, or each line's as
    if alone."""
    model, vocab = model_vocab
    text = "ANNA:\nthe cat sat.\n\nmgmgrwrwuu\n"
    (tmp_path / "t.txt").write_text(text)
    whole = score(["t.txt"])
    assert whole.exit_code == 0 and "bits per character" in whole.stderr
    assert whole.stdout == bits(score_text(Model(model, vocab), text) / len(text)) + "\n"
    lines = score(["--per-line", "t.txt"]).stdout.split()
    nats = score_lines(Model(model, vocab), text.splitlines(keepends=True))
    assert lines == [bits(n) for n in nats]
    assert float(lines[1]) < float(lines[3])  # words beat gibberish
    assert score(["-"], input=text).stdout == whole.stdout  # stdin, as a file
    # a last line without its line break scores as it does ended: lines rank wherever they are
    unended = score(["--per-line", "-"], input="the cat sat.\nANNA:").stdout.split()
    assert unended == [lines[1], lines[0]]


def test_several_files_one_line_each_and_one_that_cannot_be_scored_stops_none(score, tmp_path):
    """Of several texts, each is the number one alone gets, a tab, its name, in the order given;
    a text that cannot be scored is an Error line on stderr, the others still scored, exit 1."""
    texts = {"a.txt": "ANNA:\nthe cat sat.\n", "b.txt": "mgmgrwrwuu\n", "c.txt": "the cat\n"}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    alone = {name: score(["-q", name]).stdout.strip() for name in texts}
    r = score(["-q", "a.txt", "b.txt", "-", "c.txt"], input=texts["b.txt"])
    assert r.exit_code == 0 and r.stderr == ""
    want = [f"{alone[n]}\t{n}" for n in ("a.txt", "b.txt")] + [f"{alone['b.txt']}\t-"]
    assert r.stdout.splitlines() == [*want, f"{alone['c.txt']}\tc.txt"]
    (tmp_path / "bad.txt").write_text("Ω\n")
    (tmp_path / "empty.txt").write_text("")
    r = score(["-q", "a.txt", "bad.txt", "empty.txt", "c.txt"])
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert r.stdout.splitlines() == [f"{alone['a.txt']}\ta.txt", f"{alone['c.txt']}\tc.txt"]
    errors = r.stderr.splitlines()
    assert len(errors) == 2 and all(e.startswith("Error: ") for e in errors)
    assert "bad.txt" in errors[0] and "empty.txt is empty" in errors[1]
    # a file that is not there, or a folder: each an Error line, before the model loads
    (tmp_path / "dir").mkdir()
    r = score(["-q", "gone.txt", "a.txt", "dir", "gone2.txt"])
    assert r.exit_code == 1 and r.stdout == f"{alone['a.txt']}\ta.txt\n"
    errors = r.stderr.splitlines()
    assert [e.split(": ")[0] for e in errors] == ["Error"] * 3
    assert ["gone.txt" in errors[0], "dir" in errors[1], "gone2.txt" in errors[2]] == [True] * 3
    none = score(["gone.txt", "gone2.txt"])
    assert none.exit_code == 1 and none.stdout == "" and none.stderr.count("Error: ") == 2
    assert_one_error(score(["-", "a.txt", "-"]), 2, "standard input (-) more than once")
    assert_one_error(score(["--per-line", "a.txt", "c.txt"]), 2, "--per-line reads one FILE")


def test_several_files_names_stay_one_field_and_notes_say_whose(score, tmp_path):
    """A name's tab, line break, backslash or terminal escape is escaped in its field (the line
    stays one row, the name whole); bytes that are not UTF-8 show as \\xNN, told apart from a
    backslash of the name; JSON gives each name back exactly; --unknown's note names its file."""
    text = "the cat sat.\n"
    bad = os.fsdecode(b"bad\xffname.txt")
    names = ["tab\tname.txt", "new\nline.txt", bad, "lit\\xffname.txt", "esc\x1b[2Jname.txt"]
    for name in names:
        (tmp_path / name).write_text(text)
    r = score(["-q", *names])
    number = score(["-q", "-"], input=text).stdout.strip()
    shown = [
        r"tab\tname.txt",
        r"new\nline.txt",
        r"bad\xffname.txt",
        r"lit\\xffname.txt",
        r"esc\x1b[2Jname.txt",
    ]
    assert r.exit_code == 0 and r.stdout.splitlines() == [f"{number}\t{n}" for n in shown]
    as_json = score(["-q", "--json", *names]).stdout_bytes.decode("utf-8")  # strict UTF-8
    assert [json.loads(line)["file"] for line in as_json.splitlines()] == names
    r = score(["new\nline.txt", "gone\n.txt"])  # an Error line stays one line too
    assert r.exit_code == 1 and r.stderr.splitlines()[0] == (
        r"Error: cannot read gone\n.txt: No such file or directory; check the name and the folder"
    )
    (tmp_path / "odd.txt").write_text("the cat \u03a9\n")
    r = score(["--unknown", "skip", names[0], "odd.txt"])
    assert "Note: --unknown skip left out 1 character the model never saw in odd.txt." in r.stderr
    r = score(["--unknown", "skip", "odd.txt"])  # one file: the note needs no name
    assert "Note: --unknown skip left out 1 character the model never saw.\n" in r.stderr


def test_a_lone_surrogate_in_a_line_is_escaped_in_json(score, tmp_path):
    """UTF-7 can spell a lone surrogate: plain numbers never write it, and JSON's text escapes it
    (raw, it cannot be written as UTF-8)."""
    (tmp_path / "u7.txt").write_bytes(b"the +2AA- cat\n")
    r = score(["--per-line", "--json", "-q", "--encoding", "utf-7", "--unknown", "skip", "u7.txt"])
    assert r.exit_code == 0 and "Traceback" not in r.stderr
    assert json.loads(r.stdout_bytes.decode("utf-8"))["text"] == "the \ud800 cat"


def test_json_gives_each_text_and_each_line_its_record(score, tmp_path):
    """--json: the figures printed, unrounded to 6 places, with what they are of; a line that
    scores nan is null, its text kept."""
    text = "ANNA:\r\nthe cat sat.\nwhy \u00e9\n\nend"
    (tmp_path / "t.txt").write_text(text, newline="")
    plain = score(["--per-line", "-q", "t.txt"]).stdout.split()
    r = score(["--per-line", "--json", "-q", "t.txt"])
    assert r.exit_code == 0 and r.stderr.startswith("Warning: 1 line")
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["line"] for x in records] == [1, 2, 3, 4, 5]
    assert [x["text"] for x in records] == ["ANNA:", "the cat sat.", "why \u00e9", "", "end"]
    assert records[2]["bpc"] is None and plain[2] == "nan"
    for record, number in zip(records, plain, strict=True):
        if record["bpc"] is not None:
            assert f"{record['bpc']:.4f}" == number
    (tmp_path / "u.txt").write_text("the cat sat.\n")
    r = score(["--json", "-q", "u.txt", "-"], input="ANNA:\n")
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["file"], x["characters"]) for x in records] == [("u.txt", 13), ("-", 6)]
    for record, name in zip(records, ("u.txt", "-"), strict=True):
        alone = score(["-q", name], input="ANNA:\n").stdout.strip()
        assert f"{record['bpc']:.4f}" == alone
        assert record["nats"] == pytest.approx(record["bpc"] * math.log(2), abs=2e-6)
        assert record["checkpoint"].endswith("best.pt")


def test_score_options(score, tmp_path):
    """--encoding reads the file; --unknown skip scores it as the text without the character."""
    (tmp_path / "l1.txt").write_bytes("the cat sat ñ\n".encode("latin-1"))
    assert_one_error(score(["l1.txt"]), 1, "not valid utf-8")
    assert_one_error(score([""]), 2, "is empty")  # an empty name, never the folder it would mean
    r = score(["l1.txt", "--encoding", "latin-1", "--unknown", "skip", "-q"])
    assert r.exit_code == 0 and r.stderr == ""
    assert r.stdout == score(["-q", "-"], input="the cat sat \n").stdout


def test_a_model_that_never_saw_a_line_break_warns_of_the_blank_lines_it_cannot_score():
    """Its lines are read without their line breaks: a blank line is left with nothing, nan,
    and counted in the warning, as a line of characters it never saw is."""
    from charrnn.text.vocab import CharVocab
    from charrnn.use.bits import line_bits

    vocab = CharVocab(list(" ab"))
    model = Model(tiny("lstm", 1, vocab_size=len(vocab)), vocab)
    found = line_bits(model, ["ab\n", "\n", "ba"], "skip")
    assert [math.isnan(b) for b in found.bits] == [False, True, False] and found.emptied == [1]


def test_blank_and_one_character_lines_score_one_number_each(score):
    r = score(["--per-line", "-"], input="\n\n\n\n")
    assert r.exit_code == 0 and len(r.stdout.split()) == 4 and r.stderr == ""
    r = score(["--per-line", "-"], input="a\n\nb")
    assert r.exit_code == 0 and len(r.stdout.split()) == 3


def _lines(raw: bytes, encoding: str) -> list[str]:
    """The lines of `raw` as `score --per-line` reads them, fed one byte at a time and whole: the
    same lines whatever the pieces a pipe delivers."""
    whole = [line for group in decode_lines([raw], "t", encoding) for line in group]
    bytewise = (raw[i : i + 1] for i in range(len(raw)))
    assert [line for group in decode_lines(bytewise, "t", encoding) for line in group] == whole
    return whole


def test_lines_end_at_a_newline_only_as_paste_counts_them():
    raw = "a\fb\x1cc\x85d\u2028e\nf\rg\r\nh\r\r\ni".encode()
    assert _lines(raw, "utf-8") == ["a\fb\x1cc\x85d\u2028e\n", "f\ng\n", "h\n\n", "i"]
    assert _lines(b"", "utf-8") == [] and _lines(b"x\r", "utf-8") == ["x\n"]
    assert _lines(b"\xef\xbb\xbfx\r\n\r\n", "utf-8") == ["x\n", "\n"]  # the BOM is no text
    assert _lines("a\rb\nc".encode("utf-16"), "utf-16") == ["a\nb\n", "c"]
    # a UTF-16 or UTF-32 file with its byte-order mark, read where UTF-8 is asked for (Windows'
    # "Unicode" text, CRLF, and a 0x0d byte inside a character: U+010D)
    for codec in ("utf-16", "utf-16-be", "utf-32", "utf-32-be"):
        raw = ("\ufeff" * codec.endswith("-be") + "č\r\nb\rx\nc").encode(codec)
        assert _lines(raw, "utf-8") == ["č\n", "b\nx\n", "c"], codec


@pytest.mark.parametrize("through", ["stdin", "named pipe"])
def test_per_line_scores_each_line_of_a_pipe_as_it_arrives(trained_run, tmp_path, through):
    """`tail -f log | charrnn score --per-line -` (or `<(tail -f log)`, a named pipe): a line's
    number is written while the pipe is still open (the command waits for the next line, not for
    the end or a block of bytes), a first line of two bytes too (not held for a byte-order mark's
    four), and the rest follow."""
    args = ["score", "-c", str(trained_run.best), "--per-line"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    if through == "stdin":
        p = popen([*args, "-"], cwd=tmp_path, stdin=subprocess.PIPE, **pipes)
        writer = p.stdin
    else:
        os.mkfifo(tmp_path / "fifo")
        p = popen([*args, "fifo"], cwd=tmp_path, **pipes)
        writer = open(tmp_path / "fifo", "wb")  # noqa: SIM115 (closed below, as a pipe's end)
    writer.write(b"A\n")
    writer.flush()
    ready, _, _ = select.select([p.stdout], [], [], DEADLINE)
    first = p.stdout.readline() if ready else b""
    writer.write(b"the cat\nsat")
    writer.close()
    rest, err = p.stdout.read(), p.stderr.read()
    assert p.wait(DEADLINE) == 0, err
    one = invoke(["score", "-c", str(trained_run.best), "--per-line", "-"], input="A\n")
    assert first.decode() == one.stdout and len(rest.split()) == 2


def test_a_nul_past_the_first_block_is_a_character_of_its_line():
    """A binary file shows in its first block (refused, as grep judges one); a NUL byte later, in
    a stream of lines, is a character of its line (scored nan, as any unseen character), not the
    end of the stream at a place that depends on how the bytes arrived."""
    lines = lambda chunks: [x for group in decode_lines(chunks, "t") for x in group]  # noqa: E731
    assert lines([b"ok\n" * 30_000, b"a\x00b\n", b"c"]) == ["ok\n"] * 30_000 + ["a\x00b\n", "c"]
    for chunks in ([b"ok\na\x00b\n"], [b"ok\n", b"a\x00", b"b\n"]):  # however it arrives
        with pytest.raises(CorpusError, match="binary"):
            lines(chunks)


def test_unseen_characters_in_a_line_score_nan_with_one_warning(score):
    r = score(["--per-line", "-"], input="ANNA:\nΩ\nthe cat\nwhy é\n")
    assert r.exit_code == 0
    numbers = r.stdout.split()
    assert [math.isnan(float(n)) for n in numbers] == [False, True, False, True]
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("Warning: 2 lines")
    assert (
        "(lines 2, 4; line 2: 'Ω' (U+03A9) at character 1)" in r.stderr
        and "--unknown skip" in r.stderr
    )
    whole = score(["-"], input="ANNA:\nΩ\n")  # the whole text stays refused
    assert_one_error(whole, 1, "'Ω' (U+03A9) at character 7")
    # a line that --unknown skip leaves with nothing (but its line break): nan, and a warning
    for unknown_line in ("ΩΩ\n", "ΩΩ"):  # ended or not
        skip = score(["--per-line", "--unknown", "skip", "-"], input="ANNA:\n" + unknown_line)
        assert skip.stdout.split()[1] == "nan"
        assert skip.stderr == (
            "Note: --unknown skip left out 2 characters the model never saw.\n"
            "Warning: 1 line of standard input has no character the model reads, scored nan "
            "(line 2)\n"
        )
    whole = score(["--unknown", "replace", "-"], input="ANNA:\nΩΩ\n")
    assert whole.stderr.startswith(
        "Note: --unknown replace replaced 2 characters the model never saw.\n"
    )
    # the whole text left with nothing is not "empty": it says what happened
    whole = score(["--unknown", "skip", "-"], input="ΩΩ")
    assert_one_error(whole, 1, "Error: standard input has no character the model knows")


def test_summary_counts_in_the_singular_and_plural(score):
    assert "1 character," in score(["-"], input="a").stderr
    assert "2 characters," in score(["-"], input="an").stderr


# ------------------------------------------------------------------- the contract, for any text


def paste_lines(text: str) -> int:
    """How many lines `paste` shows: one per \\n, and a last one without it (a BOM is no text)."""
    text = text.removeprefix("\ufeff")
    return text.count("\n") + (not text.endswith("\n") if text else 0)


def texts(known: str):
    """Texts of the model's own characters, of any characters, and of line breaks of all kinds."""
    breaks = st.sampled_from(["\n", "\r", "\r\n", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"])
    mixed = st.lists(st.one_of(st.text(known, max_size=12), breaks), max_size=12).map("".join)
    return st.one_of(
        st.text(known, max_size=80),
        st.text(st.characters(codec="utf-8"), max_size=40),
        st.text("\n", max_size=6),
        mixed,
        st.integers(0, 1000).map(lambda n: "the cat " * (n // 8) + "\n" * (n % 2)),  # long lines
    )


def assert_contract(r, per_line: bool, text: str):
    """Exit 0 with one number per line (or one in all), or exit 1 with one Error: line."""
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.stderr
    if r.exit_code == 1:
        assert_one_error(r, 1)
        return
    assert r.exit_code == 0, r.stderr
    numbers = r.stdout.splitlines()
    assert r.stdout.endswith("\n") or not r.stdout
    assert len(numbers) == (paste_lines(text) if per_line else 1)
    for n in numbers:
        assert not math.isinf(float(n)) and (float(n) >= 0 or math.isnan(float(n)))
    if per_line:  # nothing on stderr but a note of the characters --unknown changed and
        # warnings about lines scored nan, one of each kind
        lines = r.stderr.splitlines()
        notes = [line for line in lines if line.startswith("Note: --unknown ")]
        warnings = [line for line in lines if line.startswith("Warning: ")]
        assert len(notes) <= 1 and len(warnings) <= 2 and len(notes) + len(warnings) == len(lines)
        assert ("nan\n" in r.stdout) >= bool(warnings)
    else:  # the summary, after a note of the characters --unknown left out or replaced
        *notes, summary = r.stderr.splitlines()
        assert "bits per character" in summary and len(notes) <= 1
        assert all(n.startswith("Note: --unknown ") for n in notes)


@given(data=st.data())
@PROPERTY
def test_score_any_text_keeps_the_contract(score, model_vocab, tmp_path, data):
    text = data.draw(texts("".join(model_vocab[1].chars)), label="text")
    unknown = data.draw(st.sampled_from(["error", "skip", "replace"]), label="unknown")
    (tmp_path / "in.txt").write_bytes(text.encode("utf-8"))
    source = data.draw(st.sampled_from([["in.txt"], ["-"]]), label="from")
    for per_line in (False, True):
        args = ["--unknown", unknown, *(["--per-line"] if per_line else []), *source]
        r = score(args, input=text.encode("utf-8"))
        assert_contract(r, per_line, text)
        if per_line:  # whatever the characters: only a NUL byte (a binary file) refuses the text
            assert r.exit_code == 0 or "binary" in r.stderr


# ---------------------------------------------------------------------------------- the streams


def test_a_reader_that_leaves_early_is_a_quiet_exit_0(trained_run, tmp_path):
    (tmp_path / "some.txt").write_text("the cat\n" * 100)
    for args in (["--per-line", "some.txt"], ["some.txt"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before a byte is written (`| head -0`)
        p = popen(
            ["score", "-c", str(trained_run.best), *args],
            tmp_path,
            stdout=write,
            stderr=subprocess.PIPE,
        )
        os.close(write)
        _, err = p.communicate(timeout=DEADLINE)
        assert p.returncode == 0 and err == b"", err


def test_a_reader_that_leaves_after_a_file_failed_still_gets_its_status(trained_run, tmp_path):
    """Of several files, one that failed before the reader left decides the exit status: 1."""
    (tmp_path / "some.txt").write_text("the cat\n" * 100)
    read, write = os.pipe()
    os.close(read)  # gone before the first number is written
    args = ["score", "-q", "-c", str(trained_run.best), "gone.txt", "some.txt", "some.txt"]
    p = popen(args, tmp_path, stdout=write, stderr=subprocess.PIPE)
    os.close(write)
    _, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 1 and err.decode().splitlines() == [
        "Error: cannot read gone.txt: No such file or directory; check the name and the folder"
    ], err


def test_closed_stdin_is_one_error_line(trained_run, tmp_path):
    p = popen(
        ["score", "-c", str(trained_run.best), "-"],
        tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(0),
    )
    out, err = p.communicate(timeout=DEADLINE)
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    assert assert_one_error(r).startswith("Error: cannot read standard input")


def test_a_terminal_on_stdin_gets_a_hint_before_the_text_is_read(
    trained_run, model_vocab, tmp_path
):
    master, slave = pty.openpty()
    p = popen(
        ["score", "-c", str(trained_run.best)],
        tmp_path,
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    try:
        hint = b""
        while not hint.endswith(b"\n"):  # wait for the hint, then type
            ready, _, _ = select.select([p.stderr], [], [], DEADLINE)
            assert ready, "no hint on stderr"
            hint += os.read(p.stderr.fileno(), 1)
        assert b"Ctrl-D" in hint
        os.write(master, b"ANNA:\n\x04")
        out, err = p.communicate(timeout=DEADLINE)
    finally:
        os.close(master)
    assert p.returncode == 0 and b"6 characters" in err
    model, vocab = model_vocab
    assert out.decode() == bits(score_text(Model(model, vocab), "ANNA:\n") / 6) + "\n"


# ------------------------------------------------------------- a long text, as streams side by side


@given(length=st.integers(0, 3000), streams=st.one_of(st.none(), st.integers(1, 40)))
@settings(max_examples=200, deadline=None)
def test_a_split_scores_every_character_once_in_order(length, streams):
    rows = split(length, streams, warmup=50)
    assert rows[0].start == rows[0].scored == 0  # the first stream: the one-stream read's start
    assert [r.scored for r in rows[1:]] == [r.end for r in rows[:-1]] and rows[-1].end == length
    for r in rows:
        assert r.start == max(0, r.scored - 50) or r is rows[0]
        assert r.start <= r.scored <= r.end
    wanted = min(STREAMS, length // MIN_PIECE) if streams is None else min(streams, length)
    assert len(rows) == max(1, wanted)  # a short text: one stream


@given(
    length=st.integers(1, 400),
    streams=st.integers(1, 12),
    warmup=st.integers(0, 60),
    data=st.data(),
)
@PROPERTY
def test_each_character_is_scored_once_by_the_split_read(
    model_vocab, monkeypatch, length, streams, warmup, data
):
    """With a loss that is the target's own id, the total is the sum of the text's ids: every
    character scored once, none of a warm-up, none of the padding."""
    model, vocab = model_vocab
    text = data.draw(st.text("".join(vocab.chars), min_size=length, max_size=length))
    monkeypatch.setattr(model, "nats", lambda out, targets: targets.float())
    total = score_text(Model(model, vocab), text, chunk=37, streams=streams, warmup=warmup)
    assert total == sum(vocab.encode(text))


def test_a_long_text_split_agrees_with_the_one_stream_read(model_vocab):
    model, vocab = model_vocab
    text = make_text(30_000, seed=3)  # not the training text
    m = Model(model, vocab)
    assert len(split(len(text))) > 4
    exact = score_text(m, text, streams=1) / len(text)
    assert abs(score_text(m, text) / len(text) - exact) < 0.005
    # The warm-up matters: read cold, each piece's start costs more.
    cold = score_text(m, text, warmup=0) / len(text)
    assert cold - exact > abs(score_text(m, text) / len(text) - exact)


def test_the_one_stream_read_is_the_models_cross_entropy_and_a_short_text_is_read_so(
    model_vocab,
):
    model, vocab = model_vocab
    text = make_text(2 * MIN_PIECE + 10, seed=4)
    context = lead_in(vocab)
    with torch.no_grad():
        logits, _ = model(torch.tensor([vocab.encode(context + text)]))
    expected = torch.nn.functional.cross_entropy(
        logits[0, len(context) - 1 : -1], torch.tensor(vocab.encode(text)), reduction="sum"
    )
    m = Model(model, vocab)
    assert score_text(m, text, streams=1) == pytest.approx(expected.item(), rel=1e-5)
    short = text[: 2 * MIN_PIECE - 1]
    assert score_text(m, short) == score_text(m, short, streams=1)


def test_score_exact_through_the_command_line(score, model_vocab, tmp_path):
    model, vocab = model_vocab
    text = make_text(3 * MIN_PIECE, seed=5)
    (tmp_path / "long.txt").write_text(text)
    m = Model(model, vocab)
    exact, split_read = score(["--exact", "long.txt"]), score(["long.txt"])
    assert exact.exit_code == 0 and split_read.exit_code == 0, exact.stderr + split_read.stderr
    assert exact.stdout == bits(score_text(m, text, streams=1) / len(text)) + "\n"
    assert split_read.stdout == bits(score_text(m, text) / len(text)) + "\n"
    assert abs(float(exact.stdout) - float(split_read.stdout)) < 0.01
