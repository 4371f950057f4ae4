"""The Python examples of docs/commands.md, run as a reader would copy them: in a fresh folder
holding their `notes.txt`, the run first, then what uses its model. (The one that reads an ONNX
file with onnxruntime runs in test_export_onnx.py, where onnxruntime is.)"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import DEADLINE, make_text

DOCS = Path(__file__).resolve().parent.parent / "docs" / "commands.md"


def python_blocks(markdown: str) -> list[str]:
    """Every ```python block, dedented (a block inside a list item is indented)."""
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```$", markdown, re.S | re.M)
    return [textwrap.dedent(body) for _, body in blocks]


def test_the_python_examples_run_as_written(tmp_path):
    blocks = [b for b in python_blocks(DOCS.read_text()) if "onnxruntime" not in b]
    assert len(blocks) == 3 and "open_run" in blocks[-2]
    notes = make_text(30_000) + "The same seed writes the same text.\n" * 300
    (tmp_path / "notes.txt").write_text(notes)  # every character the examples use
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    outputs = []
    for block in [blocks[-2], blocks[-1], *blocks[:-2]]:  # the run the others read comes first
        r = subprocess.run(
            [sys.executable, "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        assert r.returncode == 0, r.stderr
        outputs.append(r.stdout)
    assert "DoneEvent" in outputs[0] and (tmp_path / "checkpoints/notes/best.pt").is_file()
    *sample, per_char = outputs[1].splitlines()  # 200 characters, then the score
    assert len("\n".join(sample)) >= 199 and 0 < float(per_char) < 5
    assert outputs[2].strip()  # a line per property the units were sought for


def test_the_readme_tour_is_what_bench_tour_runs():
    """bench/tour.sh regenerates the README's tour: each command the tour shows is one it runs
    (but the one whose unit the run before it finds)."""
    root = DOCS.parent.parent
    readme = (root / "README.md").read_text()
    tour = readme[readme.index("\n## A tour") : readme.index("\n## How it works")]
    shown = [line[2:] for line in tour.splitlines() if line.startswith("$ ")]
    script = (root / "bench" / "tour.sh").read_text()
    runs = re.findall(r"^(?:run|on_a_terminal) '(.*)'$", script, re.M)
    runs += [c.replace('\\"', '"') for c in re.findall(r'^run "(.*)"$', script, re.M)]
    assert len(shown) >= 15
    missing = [c for c in shown if c not in runs and "--unit" not in c]
    assert missing == []


def test_the_table_of_other_tools_names_holds_each_name_the_command_line_knows():
    """Every name of another char-rnn tool that a usage error answers is in docs/commands.md's
    table, so the page and the errors agree on what each means here."""
    from charrnn.cli.other_names import OTHER_NAMES

    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Coming from char-rnn", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z_0-9]+)`", row)}
    assert set(OTHER_NAMES) <= named, set(OTHER_NAMES) - named


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation but '-' and '_' left
    out, each space a '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_every_link_between_the_docs_reaches_a_file_and_a_heading():
    """A link from the README or a page of docs/ to a file of the repository names one that
    exists, and its #anchor a heading there (a page's sections get renamed and moved)."""
    root = DOCS.parent.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    anchors = {}
    for page in pages:
        seen = {}
        for heading in re.findall(
            r"^#+ (.*)$", re.sub(r"(?ms)^```.*?^```", "", page.read_text()), re.M
        ):
            slug = github_anchor(heading)
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.setdefault(page, set()).add(slug if n == 0 else f"{slug}-{n}")
        anchors[page] |= set(re.findall(r'<a id="([^"]+)"', page.read_text()))
    broken = []
    for page in pages:
        prose = re.sub(r"(?ms)^```.*?^```", "", page.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and anchor not in anchors.get(linked, set())):
                broken.append(f"{page.name}: {target}")
    assert broken == []
