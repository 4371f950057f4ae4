"""Memory, measured: the recall corpus, its loss per gap, and closers by distance in real text."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEADLINE, TINY_CLI

from charrnn import memory
from charrnn.corpus import catalog_path, load_catalog
from charrnn.errors import ConfigError, CorpusError
from charrnn.memory import PAIRS, parse_recall, recall_text

# sha256 of `charrnn corpus get recall`: the same bytes on every machine and Python (checked on
# 3.10 to 3.13); a change here changes every number measured on the corpus.
RECALL_SHA256 = "2676464f0cd526e44fe5d902588c8f03f5d1884baca131dfd7a05472a4ad8fd5"

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
    ],
)
def test_settings_that_cannot_make_a_corpus_are_refused(settings):
    with pytest.raises(ConfigError):
        recall_text(100, **settings)


def test_parsing_finds_the_closers_and_refuses_what_is_not_a_record():
    records = parse_recall("(ab=)\n[cde=]\n<")  # the cut-off last line is left out
    assert [(r.line, r.kind, r.gap, r.closer_at) for r in records] == [(1, 0, 2, 4), (2, 1, 3, 11)]
    assert parse_recall("{=}\n")[0].gap == 0
    for bad in ["(ab=]\n", "(a(b=)\n", "xab=)\n", "(ab)\n", "(ab=)\n\n", "=)\n"]:
        with pytest.raises(CorpusError, match="not a record"):
            parse_recall(bad)
    with pytest.raises(CorpusError, match="no records"):
        parse_recall("(ab=)")


def test_the_catalog_has_recall_and_corpus_get_builds_it_offline(env):
    entry = load_catalog()["recall"]
    assert entry.builtin and entry.size == memory.SIZE and not entry.url
    r = env(["corpus", "get", "-q", "recall"])
    assert r.exit_code == 0, r.stderr
    data = Path(r.stdout.strip()).read_bytes()
    assert hashlib.sha256(data).hexdigest() == RECALL_SHA256


def test_the_recall_corpus_is_built_without_torch():
    code = (
        "import sys; from charrnn.corpus import build_builtin; "
        "assert build_builtin('recall', 1000).count('=') > 2; assert 'torch' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=DEADLINE).returncode == 0


def test_a_run_trains_on_the_recall_corpus(env, tmp_path, monkeypatch):
    catalog = json.loads(catalog_path().read_text(encoding="utf-8"))
    catalog["corpora"] = [
        {**e, "size": 20_000} for e in catalog["corpora"] if e["name"] == "recall"
    ]
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    monkeypatch.setenv("CHARRNN_CATALOG", str(tmp_path / "catalog.json"))  # a small corpus
    r = env(["train", "recall", *TINY_CLI, "--steps", "5"])
    assert r.exit_code == 0 and r.stdout.strip().endswith("best.pt"), r.stderr
