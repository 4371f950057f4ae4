"""The page `charrnn inspect --html` writes, in a real headless browser: it loads without a script
error, choosing a unit recolours the text with that unit's values, the units found and the gate
plots select their unit in one click, and a character shows what the model expected next.
Skipped where no Chromium is installed (Debian: apt-get install chromium)."""

import json
import math
import re
from pathlib import Path

import pytest
from conftest import DEADLINE, make_text, page_data, tiny
from helpers.browser import Browser, find_chromium
from helpers.cli import invoke

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here: apt-get install chromium"
)


@pytest.fixture(scope="module")
def page(runs_by_cell, tmp_path_factory):
    """A page of a tiny trained LSTM reading 600 characters, with units found and gate plots."""
    folder = tmp_path_factory.mktemp("page")
    (folder / "in.txt").write_text(make_text(600, seed=4))
    args = ["inspect", "--checkpoint-dir", str(runs_by_cell), "-c", "lstm", str(folder / "in.txt")]
    out = folder / "page.html"
    result = invoke([*args, "--html", str(out), "--find-units", "--gates"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def browser(page):
    with Browser(CHROMIUM, DEADLINE) as b:
        b.open(page.as_uri(), f"document.querySelectorAll('#text span').length === {600}")
        yield b


def colours(browser) -> list[tuple[int, ...]]:
    styles = browser.evaluate(
        "Array.from(document.querySelectorAll('#text span'), s => s.style.backgroundColor)"
    )
    return [tuple(int(x) for x in re.findall(r"\d+", s)) for s in styles]


def expected(data, layer: int, unit: int, field: str) -> list[tuple[int, ...]]:
    """The colours the page's data gives one unit: its byte per character on the diverging
    scale (white at 0, red at +1, blue at -1; gates from 0 to 1 across the whole scale)."""
    import base64

    raw = base64.b64decode(data["values"][field])
    n, h = len(data["text"]), data["hidden"]
    out = []
    for t in range(n):
        q = raw[(layer * n + t) * h + unit] / data["levels"]
        x = 2 * q - 1  # both a signed value and a gate span [-1, 1] on the colour scale
        end = (214, 47, 39) if x >= 0 else (33, 102, 172)
        out.append(tuple(math.floor(255 + (e - 255) * abs(x) + 0.5) for e in end))
    return out


def close(a, b) -> bool:
    """Colour lists equal to within 1 per channel (rounding)."""
    pairs = zip(a, b, strict=True)
    return all(abs(x - y) <= 1 for pa, pb in pairs for x, y in zip(pa, pb, strict=True))


def test_choosing_a_unit_recolours_the_text(browser, page):
    data = page_data(page.read_text(encoding="utf-8"))
    assert browser.exceptions() == []
    browser.evaluate(
        "(() => { const s = document.getElementById('show'); s.value = 'cell';"
        " s.dispatchEvent(new Event('change')); const u = document.getElementById('unit');"
        " u.focus(); u.select(); })()"
    )
    browser.call("Input.insertText", {"text": "1"}, session=True)  # typed into the unit box
    browser.wait_for("location.hash.endsWith(':1:cell')")
    layer = browser.evaluate("+document.getElementById('layer').value")
    before = colours(browser)
    assert close(before, expected(data, layer, 1, "cell"))
    browser.call("Input.insertText", {"text": "5"}, session=True)  # now unit 15
    browser.wait_for("location.hash.endsWith(':15:cell')")
    after = colours(browser)
    assert after != before and close(after, expected(data, layer, 15, "cell"))


def test_a_found_unit_and_a_gate_dot_select_their_unit_in_one_click(browser, page):
    data = page_data(page.read_text(encoding="utf-8"))
    button = browser.evaluate(
        "(() => { const b = document.querySelector('#found button'); b.id = 'first-found';"
        " return [+b.dataset.layer, +b.dataset.unit, b.dataset.show]; })()"
    )
    browser.click("#first-found")
    layer, unit, show = button
    browser.wait_for(f"location.hash === '#{layer}:{unit}:{show}'")
    assert close(colours(browser), expected(data, layer, unit, show))
    dots = browser.evaluate("document.querySelectorAll('#gates [data-gate=forget] circle').length")
    assert dots == data["layers"] * data["hidden"]
    browser.evaluate(
        "document.querySelectorAll('#gates svg[data-gate=output] circle')[30].id = 'dot'"
    )
    browser.click("#dot")  # a real click: where dots overlap, the one on top is chosen
    browser.wait_for("location.hash.endsWith(':output')")
    layer, unit = map(int, re.match(r"#(\d+):(\d+):", browser.evaluate("location.hash")).groups())
    assert close(colours(browser), expected(data, layer, unit, "output"))
    assert browser.exceptions() == []


def test_a_character_shows_what_came_next_and_the_page_is_seen(
    browser, page, tmp_path, runs_by_cell
):
    data = page_data(page.read_text(encoding="utf-8"))
    browser.evaluate("choose(0, 3, 'cell')")  # a cell: its byte's step is the unit's scale's
    browser.evaluate("document.querySelectorAll('#text span')[7].id = 'char7'")
    browser.click("#char7")
    info = browser.evaluate("document.getElementById('info').innerText")
    _, p = data["top"][7][0]
    assert "character 7" in info and "what it expected next" in info
    assert f"{100 * p:.1f}%" in info
    # the unit's value, to the half step its byte holds: the recorded value is within it
    layer, unit, show = re.match(r"#(\d+):(\d+):(\w+)", browser.evaluate("location.hash")).groups()
    shown, half = re.search(r"([-0-9.]+) \u00b1 ([0-9.]+)", info).groups()
    rounding = 10 ** -len(half.split(".")[-1]) / 2 if "." in half else 0.5  # of the figures shown
    args = ["inspect", "--checkpoint-dir", str(runs_by_cell), "-c", "lstm", "--json"]
    records = invoke([*args, str(page.parent / "in.txt")]).stdout.splitlines()
    true = json.loads(records[1 + 7])["layers"][int(layer)][show][int(unit)]
    assert float(half) > 0 and abs(float(shown) - true) <= float(half) + rounding + 1e-4
    shot = browser.screenshot()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000
    (tmp_path / "page.png").write_bytes(shot)
    assert browser.exceptions() == []


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_the_page_of_a_gru_and_of_an_rnn(runs_by_cell, tmp_path, cell):
    """The other cells' pages: their own fields to show, coloured; the RNN has no gate plot."""
    out = tmp_path / "page.html"
    args = ["inspect", "--checkpoint-dir", str(runs_by_cell), "-c", cell, "-", "--html", str(out)]
    gates = ["--gates"] if cell == "gru" else []  # an RNN has none to ask for (a usage error)
    result = invoke([*args, *gates], input=make_text(300, seed=5))
    assert result.exit_code == 0, result.output
    data = page_data(out.read_text(encoding="utf-8"))
    with Browser(CHROMIUM, DEADLINE) as b:
        b.open(out.as_uri() + "#1:4:hidden", "document.querySelectorAll('#text span').length")
        b.wait_for("document.querySelector('#text span').style.backgroundColor")
        options = b.evaluate("Array.from(document.getElementById('show').options, o => o.value)")
        assert options == [*data["fields"], "surprise"]
        assert close(colours(b), expected(data, 1, 4, "hidden"))
        plots = b.evaluate("document.querySelectorAll('#gates svg').length")
        assert plots == {"gru": 2, "rnn": 0}[cell]
        if cell == "gru":  # the legend says what each end of a gate does, as the terminal's
            b.evaluate("choose(0, 2, 'update')")
            legend = b.evaluate("document.getElementById('legend').textContent")
            assert "0 (take the candidate)" in legend and "1 (keep the old h)" in legend, legend
        assert b.exceptions() == []


def page_of(text: str, folder) -> Path:
    """The page of an untrained tiny LSTM of `text`'s characters reading `text`, in `folder`."""
    from charrnn.model.trained import Model
    from charrnn.text.vocab import CharVocab
    from charrnn.use.inspection import record
    from charrnn.use.page import render

    vocab = CharVocab.from_text(text)
    rec = record(Model(tiny("lstm", vocab_size=len(vocab)), vocab), text)
    out = folder / "page.html"
    out.write_text(render(rec, "tiny"), encoding="utf-8")
    return out


def test_every_character_is_one_span_whatever_it_is(tmp_path):
    """Characters outside the Basic Multilingual Plane (two UTF-16 units in JavaScript), markup
    and quotes in the text: one span per character of the record, the text as it was read."""
    text = 'a 🙂 b</script>\n"\\x" 𝄞 é\te\u202eright to left\n'
    out = page_of(text, tmp_path)
    with Browser(CHROMIUM, DEADLINE) as b:
        b.open(out.as_uri(), "document.querySelectorAll('#text span').length")
        spans = b.evaluate(
            "Array.from(document.querySelectorAll('#text span'), e => e.textContent)"
        )
        assert len(spans) == len(text)
        shown = "".join(spans).replace("\u21b5", "").replace("\\u202e", "\u202e")
        assert shown == text  # a character that does not print shows as its code
        assert spans[text.index("\u202e")] == "\\u202e"
        b.click("#text span:nth-child(3)")  # the emoji
        assert "character 2: 🙂" in b.evaluate("document.getElementById('info').innerText")
        assert b.exceptions() == []


def test_a_line_of_right_to_left_text_reads_right_to_left(tmp_path):
    """A Hebrew line's question mark stood at its far right, where a reader of Hebrew finds the
    line's start: each line takes the direction of its first letter, an English one its own."""
    text = "מה שלומך?\nhow are you?\n"
    out = page_of(text, tmp_path)
    with Browser(CHROMIUM, DEADLINE) as b:
        b.open(out.as_uri(), "document.querySelectorAll('#text span').length")
        x = b.evaluate(
            "Array.from(document.querySelectorAll('#text span'),"
            " e => e.getBoundingClientRect().left)"
        )
    hebrew, english = text.index("?"), text.rindex("?")
    assert x[hebrew] < x[0]  # the Hebrew line's mark left of its first letter
    assert x[english] > x[text.index("h")]  # the English line's right of its own


def test_an_address_the_model_has_no_view_for_says_so(page):
    """`page.html#0:999:cell` (a unit past the last), a field of another cell, a layer too many:
    the page shows another view and says why; an address it has shows that view, nothing said."""
    data = page_data(page.read_text(encoding="utf-8"))
    last = data["hidden"] - 1
    with Browser(CHROMIUM, DEADLINE) as b:
        for address, shown in (
            (f"#0:{last}:cell", True),
            ("#0:999:cell", False),
            ("#0:3:update", False),  # a GRU's gate, on an LSTM's page
            (f"#{data['layers']}:0:cell", False),
        ):
            b.open("about:blank", "true")  # a fresh document: the page reads its address once
            b.open(page.as_uri() + address, "document.querySelectorAll('#text span').length")
            notice = b.evaluate("document.getElementById('notice').textContent")
            if shown:
                assert notice == "" and b.evaluate("location.hash") == address
            else:
                assert f"The address {address} names no view of this model" in notice
                assert f"units 0-{last}" in notice and b.evaluate("location.hash") != address
        assert b.exceptions() == []


def test_the_units_found_show_both_baselines_and_the_page_opens_on_the_most_learned(page):
    """The page's table had chance alone, not what an untrained network reaches (an upper-case
    run's unit at r 0.72 against 0.61 untrained looked learned), and opened on the unit furthest
    above chance: it opens on the one furthest above both."""
    data = page_data(page.read_text(encoding="utf-8"))
    found = [f for f in data["found"] if f["units"]]
    assert found and all(f["untrained"] is not None for f in found)
    with Browser(CHROMIUM, DEADLINE) as b:
        b.open(page.as_uri(), "document.querySelectorAll('#found tr').length > 1")
        rows = b.evaluate(
            "Array.from(document.querySelectorAll('#found tr'),"
            " r => Array.from(r.cells, c => c.textContent))"
        )
        opened = b.evaluate("location.hash")
    assert rows[0][2:] == ["chance", "untrained"]
    shown = {row[0]: row for row in rows[1:]}
    for f in found:
        row = shown[f["property"]]
        assert float(row[2]) == pytest.approx(f["chance"], abs=0.0051)
        assert float(row[3]) == pytest.approx(f["untrained"], abs=0.0051)
    best = max(found, key=lambda f: abs(f["units"][0][3]) - max(f["chance"], f["untrained"]))
    layer, unit, field, _ = best["units"][0]
    assert opened == f"#{layer}:{unit}:{field}"
