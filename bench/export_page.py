"""The page `charrnn export` writes, measured in one run: `python bench/export_page.py`.

  precision  a small model trained briefly on the first 20,000 characters of tinyshakespeare,
             scored on them (nats per character) with its float32 weights and with its weights
             rounded to float16 as the page reads them; the page's size in each
  speed      characters per second of one stream in headless Chromium, for the small and medium
             presets (untrained weights: speed does not depend on what they learned): the page's
             sampler alone (its test hook), and the page writing with its controls (text, colours
             and all, wall clock from the click to the last character); against `charrnn
             sample`'s one stream (Sampler.generate, as bench/sample_speed.py measures it)

--screenshot PATH also writes a screenshot of the trained model's page.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from report import header
from sample_speed import ALPHABET, sampling_speed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "helpers"))
from browser import Browser, find_chromium  # noqa: E402

from charrnn import checkpoint  # noqa: E402
from charrnn.model.network import CharRNN  # noqa: E402
from charrnn.model.presets import PRESETS  # noqa: E402
from charrnn.model.trained import Model  # noqa: E402
from charrnn.runs import RunDir  # noqa: E402
from charrnn.text.encoded import encode_text  # noqa: E402
from charrnn.text.vocab import CharVocab  # noqa: E402
from charrnn.train.start import start  # noqa: E402
from charrnn.use.bits import text_nats  # noqa: E402
from charrnn.use.export_page import export_page  # noqa: E402

CORPUS = Path("/work/shared/corpora/tinyshakespeare.txt")


def trained(folder: Path, text: str, steps: int) -> Model:
    train = {"max_steps": steps, "seed": 1}
    for _ in start(encode_text(text), RunDir(folder), size="small", train=train).trainer.run():
        pass
    return checkpoint.load_model(folder / "last.pt")


def rounded(model: Model) -> Model:
    """The model with every weight rounded to float16 and back: the numbers the page reads."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.net.parameters():
            p.copy_(p.half().float())
    return out


def precision_table(model: Model, text: str) -> str:
    rows = ["| weights | nats/char | difference | page size |", "|---|---|---|---|"]
    full = text_nats(model, text, "float32")
    for name, m in (("float32", model), ("float16", rounded(model))):
        nats = text_nats(m, text, name)
        size = len(export_page(model, "bench", name).encode()) / 2**20
        rows.append(f"| {name} | {nats:.6f} | {nats - full:+.6f} | {size:.2f} MiB |")
    return "\n".join(rows)


def page_speeds(browser: Browser, path: Path, chars: int) -> tuple[float, float]:
    """(the sampler alone, the page writing with its controls), characters per second."""
    browser.open(path.as_uri(), "window.charrnnDone === true")
    o = f"{{prime: 'The ', temperature: 0.8, topK: null, topP: null, seed: 1, length: {chars}}}"
    browser.evaluate(f"charrnn.write({{...{o}, length: 200}})")  # warm up
    hook = []
    for _ in range(3):
        ms = browser.evaluate(
            f"(() => {{ const t = performance.now(); charrnn.write({o}); "
            "return performance.now() - t; })()"
        )
        hook.append(chars / (ms / 1000))
    browser.evaluate(
        f"document.getElementById('length').value = '{chars}';"
        "document.getElementById('prime').value = 'The '"
    )
    began = time.perf_counter()
    browser.click("#write")
    browser.wait_for("window.charrnnDone === true")
    return statistics.median(hook), chars / (time.perf_counter() - began)


def speed_table(browser: Browser, folder: Path, chars: int) -> str:
    rows = [
        "| model | page: sampler | page: writing on screen | `charrnn sample` | page / sample |",
        "|---|---|---|---|---|",
    ]
    vocab = CharVocab(sorted(ALPHABET))
    for size in ("small", "medium"):
        torch.manual_seed(0)
        net = CharRNN(PRESETS[size].model_config(len(vocab))).eval()
        model = Model(net, vocab)
        path = folder / f"{size}.html"
        path.write_text(export_page(model, size), encoding="utf-8")
        hook, shown = page_speeds(browser, path, chars)
        native = statistics.median(sampling_speed(model, 1, chars) for _ in range(3))
        rows.append(
            f"| {size} {PRESETS[size].describe()} | {hook:,.0f} | {shown:,.0f} | {native:,.0f} "
            f"| {hook / native:.2f} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps of the model scored")
    ap.add_argument("--chars", type=int, default=2000, help="characters written per speed run")
    ap.add_argument("--screenshot", type=Path, help="write a screenshot of the page here")
    args = ap.parse_args()
    text = CORPUS.read_text(encoding="utf-8")[:20_000]
    with tempfile.TemporaryDirectory() as tmp, Browser(find_chromium(), 600.0) as browser:
        folder = Path(tmp)
        model = trained(folder / "run", text, args.steps)
        print(header())
        print(
            f"Precision: small, {args.steps} steps on the first 20,000 characters of "
            "tinyshakespeare, scored on them\n"
        )
        print(precision_table(model, text) + "\n")
        print(f"Speed: one stream, {args.chars:,} characters, characters per second\n")
        print(speed_table(browser, folder, args.chars))
        if args.screenshot:
            screenshot(browser, model, folder, args.screenshot)


def screenshot(browser: Browser, model: Model, folder: Path, out: Path) -> None:
    path = folder / "shakespeare.html"
    path.write_text(export_page(model, "shakespeare", prime="ROMEO:\n"), encoding="utf-8")
    browser.open(path.as_uri(), "window.charrnnDone === true")
    browser.evaluate(
        "(() => { const set = (id, v) => document.getElementById(id).value = v;"
        " set('length', '600'); set('seed', '3'); set('show', 'cell'); set('unit', '17');"
        " document.getElementById('unit').dispatchEvent(new Event('input'));"
        " document.getElementById('write').click(); })()"
    )
    browser.wait_for("window.charrnnDone === true")
    browser.evaluate(  # the panel shows one character, as a pointer over it would
        "document.querySelectorAll('#text span')[120]"
        ".dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))"
    )
    out.write_bytes(browser.screenshot())


if __name__ == "__main__":
    main()
