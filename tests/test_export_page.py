"""`charrnn export`: the page that writes text in the browser, checked in a real headless Chromium
against the PyTorch model (its next-character probabilities, its sampler's draws, top-k and top-p,
seeded text, text that could break out of the page), and the command's refusals. The browser
tests skip where no Chromium is installed (Debian: apt-get install chromium)."""

import math
import os
import re
import sys

import pytest
import torch
from conftest import DEADLINE, tiny
from helpers.browser import Browser, find_chromium
from helpers.cli import assert_one_error, invoke

from charrnn.model.trained import Model
from charrnn.text.vocab import CharVocab
from charrnn.use.export_page import export_page

CHROMIUM = find_chromium()
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here: apt-get install chromium"
)
VOCAB = CharVocab.from_text("abc de\nfgh!?")
WRITTEN = "window.charrnnDone === true"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium here")
    with Browser(CHROMIUM, DEADLINE) as b:
        yield b


def opened(browser, folder, model: Model, precision="float32", prime="", name="page"):
    """`model`'s page written to `folder` and opened in `browser`, its first text written."""
    path = folder / f"{name}.html"
    path.write_text(export_page(model, name, precision, prime), encoding="utf-8")
    browser.open(path.as_uri(), WRITTEN)
    assert browser.exceptions() == []
    return path


@needs_browser
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_pages_probabilities_are_the_models(browser, tmp_path, cell, layers):
    model = Model(tiny(cell, layers, len(VOCAB), seed=layers), VOCAB)
    opened(browser, tmp_path, model)
    for text in ("", "a", "abc de\nfgh! ba?" * 4):
        page = torch.tensor(browser.evaluate(f"charrnn.probabilities({text!r})"))
        ours = torch.softmax(model.start(1, text).logits[0].double(), -1)
        assert (page - ours).abs().max() < 1e-4, text
    # float16 weights: the same model to about three figures
    opened(browser, tmp_path, model, "float16", name="half")
    page = torch.tensor(browser.evaluate("charrnn.probabilities('abc')"))
    ours = torch.softmax(model.start(1, "abc").logits[0].double(), -1)
    assert 0 < (page - ours).abs().max() < 2e-2


@needs_browser
def test_a_prime_typed_in_the_other_unicode_form_is_read_in_the_models(browser, tmp_path):
    """A page of a model of decomposed text (e + U+0301, Korean letters) refused the composed
    prime a keyboard types ("characters the model never saw"), which the command line reads in
    the model's form."""
    import unicodedata

    vocab = CharVocab.from_text(unicodedata.normalize("NFD", "café ab\n"))
    opened(browser, tmp_path, Model(tiny("lstm", 2, len(vocab)), vocab), name="nfd")
    browser.evaluate("document.getElementById('prime').value = 'caf\u00e9'")
    assert browser.evaluate("options().prime") == "cafe\u0301"
    browser.evaluate("document.getElementById('prime').value = 'caf\u00e9 Z'")
    with pytest.raises(Exception, match="never saw"):  # what is unseen in any form still is
        browser.evaluate("options().prime")


@needs_browser
def test_a_seed_writes_the_same_text_every_time(browser, tmp_path):
    opened(browser, tmp_path, Model(tiny("lstm", 2, len(VOCAB)), VOCAB))

    def text(seed, temperature=1.0):
        o = f"{{prime: 'ab', temperature: {temperature}, topK: null, topP: null, length: 300,"
        return browser.evaluate(f"charrnn.write({o} seed: {seed}}})")

    assert text(5) == text(5) and len(text(5)) == 300
    assert text(5) != text(6)
    assert text(5, 0) == text(6, 0)  # temperature 0: the likeliest character, whatever the seed
    # The page's own controls write that text too, stopped and continued on the way.
    browser.evaluate(
        "(() => { const set = (id, v) => document.getElementById(id).value = v;"
        " set('prime', 'ab'); set('temp', '1'); set('topk', ''); set('topp', '');"
        " set('length', '300'); set('seed', '5'); })()"
    )
    browser.click("#write")
    browser.click("#pause")
    if browser.evaluate("!window.charrnnDone"):
        browser.click("#pause")  # continue
    browser.wait_for(WRITTEN)
    shown = browser.evaluate("document.getElementById('text').textContent")
    assert shown.replace("\u21b5", "") == "ab" + text(5)
    # The cell state colours the text, divided by the unit's largest |c|: that one is full red
    # or blue (214, 47, 39 or 33, 102, 172), and none is further from white.
    browser.evaluate(
        "(() => { const s = document.getElementById('show'); s.value = 'cell';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    assert "largest |c|" in browser.evaluate("document.getElementById('legend').textContent")
    styles = browser.evaluate(
        "Array.from(document.querySelectorAll('#text span'), s => s.style.backgroundColor)"
    )
    assert {"rgb(214, 47, 39)", "rgb(33, 102, 172)"} & set(styles)
    # a gate: its legend says what its ends do, and a character shows the gate's value to the
    # half step its byte holds
    browser.evaluate(
        "(() => { const s = document.getElementById('show'); s.value = 'forget';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    legend = browser.evaluate("document.getElementById('legend').textContent")
    assert "0 (erase the cell)" in legend and "1 (keep it)" in legend, legend
    browser.evaluate("describe(3)")
    info = browser.evaluate("document.getElementById('info').textContent")
    assert re.search(r": [01]\.\d{3} \u00b1 0\.002$", info), info  # a gate: 0 to 1
    assert browser.exceptions() == []


@needs_browser
def test_the_pages_controls_say_what_they_cannot_take(browser, tmp_path):
    """A number the field cannot read, or one out of range, is said and nothing written; one
    given while a text is being written stops it, the error staying on screen (a next batch of
    characters once wrote its count over it); an empty field is its default."""
    opened(browser, tmp_path, Model(tiny("lstm", 1, len(VOCAB)), VOCAB))
    status = "(() => { const s = document.getElementById('status'); return [s.className, " \
        "s.textContent]; })()"  # fmt: skip
    browser.type_into("#temp", "1e400")
    browser.click("#write")
    assert browser.evaluate(status) == ["error", "temperature: not a number the page can read"]
    browser.type_into("#temp", "")  # empty: the default, 0.8
    browser.type_into("#length", "100001")
    browser.click("#write")
    assert browser.evaluate(status) == ["error", "length: a whole number from 1 to 100,000"]
    # a long text started and a bad top-k given in one turn of the page: before its next batch
    started = browser.evaluate(
        "(() => { const set = (id, v) => document.getElementById(id).value = v;"
        " set('length', '100000'); document.getElementById('write').click();"
        " const left = job.writer.left; set('topk', '0');"
        " document.getElementById('write').click(); return left; })()"
    )
    assert 0 < started < 100_000
    assert browser.evaluate("[job.running, job.writer.left]") == [False, started]
    assert browser.evaluate(status) == ["error", "top-k: a whole number, 1 or more"]
    assert browser.evaluate("document.getElementById('pause').textContent") == "Continue"
    browser.evaluate("document.getElementById('topk').value = ''; document.getElementById('seed')"
                     ".value = ''; document.getElementById('length').value = '20'")  # fmt: skip
    browser.click("#write")
    browser.wait_for(WRITTEN)
    text = browser.evaluate("chars.join('')")
    same = "{prime: '', temperature: 0.8, topK: null, topP: null, length: 20, seed: 1}"
    assert text == browser.evaluate(f"charrnn.write({same})")  # the seed's default is 1
    assert browser.exceptions() == []


@needs_browser
def test_the_draws_follow_the_probabilities(browser, tmp_path):
    """Chi-square over 20,000 draws from one fixed distribution, a fixed seed: it fails (p
    0.001) where the draw leans, and a character of zero odds is never drawn."""
    opened(browser, tmp_path, Model(tiny("rnn", 1, len(VOCAB)), VOCAB))
    probs = [0.4, 0.25, 0.0, 0.15, 0.1, 0.06, 0.04]
    n = 20_000
    counts = browser.evaluate(f"charrnn.draws({probs}, 12345, {n})")
    assert sum(counts) == n and counts[2] == 0
    chi2 = sum((c - n * p) ** 2 / (n * p) for c, p in zip(counts, probs, strict=True) if p)
    assert chi2 < 20.52  # 5 degrees of freedom (six odds not zero, less one), p = 0.001


@needs_browser
def test_top_k_and_top_p_keep_the_characters_they_should(browser, tmp_path):
    from charrnn.use.sampler import _outside_nucleus

    opened(browser, tmp_path, Model(tiny("gru", 1, len(VOCAB)), VOCAB))
    logits = torch.randn(12, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2
    cases = [
        (1, 3, None),
        (0.7, None, 0.8),
        (1.5, 5, 0.5),
        (1, None, 0.01),
        (1, 12, 1.0),
        (2, 1, None),
        (0, None, None),
    ]
    for temperature, k, p in cases:
        call = f"charrnn.filtered({logits.tolist()}, {temperature}, {k or 'null'}, {p or 'null'})"
        page = torch.tensor(browser.evaluate(call), dtype=torch.float64)
        if temperature == 0:
            assert page.nonzero().flatten().tolist() == [int(logits.argmax())]
            continue
        z = (logits - logits.max()) / temperature
        if k is not None:
            z = z.masked_fill(logits < logits.topk(k).values[-1], -math.inf)
        ours = torch.softmax(z, -1)  # the page's odds are not renormalised after top-p
        if p is not None and p < 1:
            order = logits.argsort(descending=True)[None]
            ours = ours.masked_fill(_outside_nucleus(z[None], 1.0, p, order)[0], 0.0)
        assert page.nonzero().flatten().tolist() == ours.nonzero().flatten().tolist()
        assert (page - ours).abs().max() < 1e-9
        if k is not None and p is None:
            assert len(page.nonzero()) == k


@needs_browser
def test_text_that_could_break_out_of_the_page_is_inert(browser, tmp_path):
    chars = "</script><!--\u2028\u2029\ufeff\"'&`${}ab\u200d"
    vocab = CharVocab.from_text(chars)
    prime = "</script>\u2028\ufeff<!--${a}a\u200db"  # a joiner joins: shown as itself
    model = Model(tiny("lstm", 1, len(vocab)), vocab)
    page = opened(browser, tmp_path, model, prime=prime, name="evil")
    raw = page.read_text(encoding="utf-8")
    assert raw.count("</script>") == 2 and "<!--" not in raw  # the page's own script elements
    assert not any(ch in raw for ch in "\u2028\u2029\ufeff")
    assert browser.evaluate("document.scripts.length") == 2
    assert browser.evaluate("charrnn.vocab") == list(vocab.chars)
    assert browser.evaluate("document.getElementById('prime').value") == prime
    shown = browser.evaluate(
        "Array.from(document.querySelectorAll('#text span.given'), s => s.textContent).join('')"
    )
    assert shown == prime.replace("\u2028", "\\u2028").replace("\ufeff", "\\ufeff")
    probs = torch.tensor(browser.evaluate(f"charrnn.probabilities({prime!r})"))
    assert (probs - torch.softmax(model.start(1, prime).logits[0].double(), -1)).abs().max() < 1e-4
    assert browser.exceptions() == []


# ---- The command


def export_args(runs_by_cell, *args):
    return ["export", "--checkpoint-dir", str(runs_by_cell), "-c", "lstm", *args]


def test_the_command_writes_a_page_to_a_file_and_to_stdout(runs_by_cell, tmp_path):
    out = tmp_path / "page.htm"
    result = invoke(export_args(runs_by_cell, str(out), "--prime", "a"))
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "default-src 'none'" in page and "float16" in page
    assert result.stdout == "" and "Wrote the page to" in result.stderr
    piped = invoke(export_args(runs_by_cell, "-", "--format", "html", "--prime", "a", "-q"))
    assert piped.exit_code == 0 and piped.stderr == ""
    assert piped.stdout == page
    # a name whose extension says another format: written as --format asks, with a note
    named = invoke(
        export_args(runs_by_cell, str(tmp_path / "page.onnx"), "--format", "html", "--prime", "a")
    )
    assert named.exit_code == 0 and (tmp_path / "page.onnx").read_text(encoding="utf-8") == page
    assert "Note: " in named.stderr and "ends in .onnx but holds a page" in named.stderr
    assert "Note" not in result.stderr


def test_a_run_named_with_any_bytes_titles_its_page_in_text(runs_by_cell, tmp_path):
    """A run folder whose name holds a tab, a terminal's escape or a byte that is not UTF-8: the
    page is written, titled with them escaped (not a UnicodeEncodeError from the write)."""
    import os
    import shutil

    for name, shown in ((b"bad\xff", "bad\\xff"), (b"t\tab\x1b[31m", "t\\tab\\x1b[31m")):
        folder = tmp_path / os.fsdecode(name)
        shutil.copytree(runs_by_cell / "lstm", folder, ignore=shutil.ignore_patterns(".lock"))
        out = tmp_path / "page.html"
        result = invoke(["export", "-c", str(folder / "best.pt"), str(out)])
        assert result.exit_code == 0, result.output
        assert f"<title>charrnn: {shown}</title>" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "code", "word"),
    [
        (["page.txt"], 2, "'.txt'"),
        (["page"], 2, "--format"),
        ([" "], 2, "'OUT': is only blanks"),
        ([".html"], 2, "OUT '.html' is an extension alone; give a name, e.g. page.html"),
        (["sub/"], 2, "'OUT': 'sub/' ends in '/', as a folder's name does"),
        (["."], 2, "'OUT': '.' is a folder"),
        (["sub/", "--format", "html"], 2, "'OUT': 'sub/' ends in '/', as a folder's name does"),
        (["-"], 2, "--format html or onnx"),
        (["page.html", "--format", "pdf"], 2, "pdf"),
        (["no/such/folder/page.html"], 1, "cannot write"),
    ],
)
def test_the_command_refuses_in_one_line(runs_by_cell, tmp_path, monkeypatch, args, code, word):
    monkeypatch.chdir(tmp_path)
    assert_one_error(invoke(export_args(runs_by_cell, *args)), code, word)
    assert os.listdir(tmp_path) == []


def test_no_trained_run_is_one_error(tmp_path):
    args = ["export", "--checkpoint-dir", str(tmp_path), str(tmp_path / "p.html")]
    assert_one_error(invoke(args), 1, "no trained runs")


def test_a_model_too_large_for_a_page_is_one_error(runs_by_cell, tmp_path, monkeypatch):
    import charrnn.use.export_page as export

    monkeypatch.setattr(export, "PAGE_LIMIT", 20_000)
    out = tmp_path / "p.html"
    line = assert_one_error(
        invoke(export_args(runs_by_cell, str(out))),
        1,
        "too large",
        " KB of float16 weights where a page holds at most 20.0 KB (",
    )
    assert "ending in .onnx" in line and not out.exists()


def test_a_prime_the_model_cannot_read_is_one_error(runs_by_cell, tmp_path):
    out = tmp_path / "p.html"
    result = invoke(export_args(runs_by_cell, str(out), "--prime", "AN\u2603"))
    line = assert_one_error(result, 1, "never seen", "U+2603")
    assert not out.exists()
    for policy in ("skip", "replace"):  # the advice the error gives, taken
        assert f"--unknown {policy}" in line
        result = invoke(
            export_args(runs_by_cell, str(out), "--prime", "AN\u2603", "--unknown", policy)
        )
        assert result.exit_code == 0, result.stderr
        assert f"Note: --unknown {policy} " in result.stderr  # what became of the prime, said
        kept = {"skip": "AN", "replace": "AN "}[policy]  # no lookalike: a space
        assert f'"prime":"{kept}"' in out.read_text(encoding="utf-8")


def test_onnx_without_the_onnx_package_is_one_error(runs_by_cell, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    out = tmp_path / "m.onnx"
    result = invoke(export_args(runs_by_cell, str(out)))
    assert_one_error(result, 1, "pip install onnx")
    assert not out.exists()


def test_onnx_is_written_to_a_file_and_to_stdout(runs_by_cell, tmp_path):
    pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    result = invoke(export_args(runs_by_cell, str(out)))
    assert result.exit_code == 0, result.output
    piped = invoke(export_args(runs_by_cell, "-", "--format", "onnx", "-q"))
    assert piped.exit_code == 0 and piped.stdout_bytes == out.read_bytes() != b""
