"""The encoded-corpus cache: streaming decode, ids equal to encoding in memory, hits, misses and
damaged entries that are rebuilt rather than trusted."""

from __future__ import annotations

import errno
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import torch
from conftest import DEADLINE, TINY_CLI, json_values, make_text, temporaries
from helpers.cli import assert_one_error, invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.errors import CorpusError
from charrnn.text import cache, catalog, data, decode, encoded, resolve, sources
from charrnn.text.vocab import CharVocab


def encode(tmp_path, *specs, encoding="utf-8"):
    sources = resolve.resolve(list(specs), tmp_path / "cache", encoding)
    return encoded.encode_corpus(sources, tmp_path / "cache")


def in_memory(tmp_path, *specs, encoding="utf-8"):
    """What the cache must agree with: the whole text in memory, encoded at once."""
    text = "".join(resolve.resolve(list(specs), tmp_path / "cache", encoding).text_chunks())
    vocab = CharVocab.from_text(text)
    return text, vocab, data.encode(text, vocab)


@pytest.fixture
def small_chunks(monkeypatch):
    """Read files 7 bytes at a time, so characters and \\r\\n pairs straddle chunk boundaries."""
    monkeypatch.setattr(sources, "CHUNK", 7)


@pytest.mark.parametrize(
    "body",
    [
        "plain ASCII\nlines\n" * 50,
        "caf\u00e9 na\u00efve \u2603 \U0001f600\r\nwindows\r\nline ends\rold mac\n" * 20,
        "\ufeffa file with a byte-order mark\r\n",
    ],
    ids=["ascii", "unicode-crlf", "bom"],
)
def test_ids_and_vocab_equal_encoding_in_memory(tmp_path, small_chunks, body):
    f = tmp_path / "c.txt"
    f.write_bytes(body.encode("utf-8"))
    text, vocab, ids = in_memory(tmp_path, str(f))
    e = encode(tmp_path, str(f))
    assert e.vocab.chars == vocab.chars and e.ids.dtype == torch.uint8
    assert torch.equal(e.ids, ids) and len(e) == len(text)
    assert e.sha256 == encoded.encode_text(text).sha256  # what checkpoints compare on resume


def test_more_than_256_characters_widen_to_int16(tmp_path):
    f = tmp_path / "wide.txt"
    f.write_text("".join(chr(0x4E00 + i) for i in range(300)) * 3, encoding="utf-8")
    ids = in_memory(tmp_path, str(f))[2]
    e = encode(tmp_path, str(f))
    assert e.ids.dtype == torch.int16 and len(e.vocab) == 300 and torch.equal(e.ids, ids)


def test_folders_and_several_files_join_as_in_memory(tmp_path, small_chunks):
    d = tmp_path / "notes"
    d.mkdir()
    (d / "a.txt").write_text("no newline at the end")
    (d / "b.txt").write_text("ends with one\n")
    (tmp_path / "c.txt").write_text("last")
    _, _, ids = in_memory(tmp_path, str(d), str(tmp_path / "c.txt"))
    # each file's length, a newline added after one is its own: the same from the cache
    files = [(str(d / "a.txt"), 22), (str(d / "b.txt"), 14), (str(tmp_path / "c.txt"), 4)]
    for hit in (False, True):
        corpus = encode(tmp_path, str(d), str(tmp_path / "c.txt"))
        assert torch.equal(corpus.ids, ids) and (corpus.hit, corpus.files) == (hit, files)
    # an entry from before the lengths were kept: still a hit, the lengths counted and kept
    [meta_path] = (tmp_path / "cache" / "encoded").glob("*.json")
    meta = json.loads(meta_path.read_text())
    del meta["file_chars"]
    meta["meta_sha256"] = encoded._seal(meta)
    meta_path.write_text(json.dumps(meta))
    corpus = encode(tmp_path, str(d), str(tmp_path / "c.txt"))
    assert (corpus.hit, corpus.files) == (True, files)
    assert json.loads(meta_path.read_text())["file_chars"] == [22, 14, 4]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text("ab\n", max_size=30), min_size=1, max_size=6).filter(lambda f: "".join(f)),
    st.data(),
)
def test_places_say_the_files_and_their_lines_or_characters_of_any_span(files, data_):
    """Against the text as one string: a span is said in each file it runs through (empty files
    none), in lines that count the breaks before it in that file, or in characters where the
    file has no break before its last character."""
    from charrnn.text import places as places_module
    from charrnn.text.places import Place, Places

    text = "".join(files)
    val_start = data_.draw(st.integers(0, len(text) - 1))
    vocab = CharVocab.from_list(["\n", "a", "b"])
    ids = data.encode(text, vocab)
    labelled = [(f"f{k}", len(f)) for k, f in enumerate(files)]
    i = data_.draw(st.integers(0, len(text) - val_start - 1))
    j = data_.draw(st.integers(i + 1, len(text) - val_start))
    # line breaks counted a piece at a time (a large text's mask would not fit): in pieces of
    # a few characters here, so that the pieces' ends fall anywhere
    with mock.patch.object(places_module, "COUNT_PIECE", data_.draw(st.integers(1, 8))):
        found = Places(ids, val_start, vocab.index["\n"], labelled)
        places = found.where(ids[val_start:], [(i, j)])
    want, begin = [], 0
    for k, f in enumerate(files):
        end = begin + len(f)
        a, b = max(val_start + i, begin), min(val_start + j, end) - 1
        if a <= b:  # the span's characters a..b are in this file
            if "\n" in text[begin : end - 1]:
                lines = 1 + text[begin:a].count("\n"), 1 + text[begin:b].count("\n")
                want.append(Place(f"f{k}", "line", *lines))
            else:  # the line end closing a file of one line is not counted (the reader's
                # file may not have it: one is added after a file that lacks it, not the last)
                b -= b > a and b == end - 1 and text[b] == "\n"
                want.append(Place(f"f{k}", "character", 1 + a - begin, 1 + b - begin))
        begin = end
    assert places == want


def test_miss_then_hit_keyed_by_content_not_path(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("the same words\n" * 100)
    b.write_text("the same words\n" * 100)
    first, second = encode(tmp_path, str(a)), encode(tmp_path, str(a))
    other_path = encode(tmp_path, str(b))
    assert not first.hit and second.hit and other_path.hit
    assert first.key == second.key == other_path.key
    assert torch.equal(first.ids, second.ids)
    assert len(list((tmp_path / "cache" / "encoded").glob("*.ids"))) == 1
    b.write_text("the same words\n" * 99 + "the same wordz\n")  # one byte differs
    changed = encode(tmp_path, str(b))
    assert not changed.hit and changed.key != first.key
    assert encode(tmp_path, str(a), encoding="latin-1").key != first.key  # encoding is in the key


def _entry(tmp_path):
    (ids,) = (tmp_path / "cache" / "encoded").glob("*.ids")
    return ids, ids.with_suffix(".json")


def _truncate(ids, meta):
    ids.write_bytes(ids.read_bytes()[:-1])


def _flip_a_byte(ids, meta):
    raw = bytearray(ids.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    ids.write_bytes(bytes(raw))


def _garble_metadata(ids, meta):
    meta.write_text("{not json")


def _lie_about_length(ids, meta):
    m = json.loads(meta.read_text())
    m["length"] += 10
    meta.write_text(json.dumps(m))


def _drop_metadata(ids, meta):
    meta.unlink()


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_truncate, "bytes, not"),
        (_flip_a_byte, "checksum"),
        (_garble_metadata, "metadata is unreadable"),
        (_lie_about_length, "bytes, not"),
        (_drop_metadata, "metadata is unreadable"),
    ],
)
def test_a_damaged_entry_is_rebuilt_not_trusted(tmp_path, damage, reason):
    f = tmp_path / "c.txt"
    f.write_text("to be or not to be\n" * 200)
    good = encode(tmp_path, str(f)).ids.clone()
    damage(*_entry(tmp_path))
    again = encode(tmp_path, str(f))
    assert not again.hit and reason in again.rebuilt
    assert torch.equal(again.ids, good)
    healed = encode(tmp_path, str(f))
    assert healed.hit and healed.rebuilt is None and torch.equal(healed.ids, good)


def test_errors_name_the_offset_in_the_file_across_chunks(tmp_path, small_chunks):
    f = tmp_path / "bad.txt"
    f.write_bytes(b"a" * 30 + b"\xff" + b"b" * 30)
    with pytest.raises(CorpusError, match=r"byte 0xff at offset 30"):
        encode(tmp_path, str(f))
    f.write_bytes(b"a" * 30 + "é".encode()[:1])  # cut inside a character at the very end
    with pytest.raises(CorpusError, match=r"offset 30"):
        encode(tmp_path, str(f))
    f.write_bytes(b"a" * 20 + b"\x00")
    with pytest.raises(CorpusError, match=r"NUL byte at offset 20"):
        encode(tmp_path, str(f))
    f.write_bytes(b"")
    with pytest.raises(CorpusError, match="corpus is empty"):
        encode(tmp_path, str(f))
    assert not list((tmp_path / "cache" / "encoded").glob("*.ids"))  # nothing half-written


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab\r\n\u00e9\u2603\U0001f600\ufeff"), max_size=60),
    cuts=st.lists(st.integers(0, 240), max_size=6),
)
def test_decoding_in_chunks_equals_decoding_at_once(text, cuts):
    raw = text.encode("utf-8")
    bounds = sorted({min(c, len(raw)) for c in cuts} | {0, len(raw)})
    chunks = [raw[a:b] for a, b in itertools.pairwise(bounds)]
    whole = "".join(decode.decode_chunks([raw], "t"))
    assert "".join(decode.decode_chunks(chunks, "t")) == whole
    assert "\r" not in whole


def test_a_cache_that_cannot_be_written_is_done_without_and_nowhere_to_write_is_an_error(
    tmp_path, monkeypatch, env
):
    """A cache folder that cannot be made (a read-only home; here, under a file) costs the run
    nothing but the cache: the corpus is encoded in a temporary folder, the same ids, and `train`
    notes it; where no file can be written at all (a full disk), the cache's error says so."""
    f = tmp_path / "c.txt"
    f.write_text(make_text(3000, seed=4))
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    sources_ = resolve.resolve([str(f)], blocked / "cache")
    corpus = encoded.encode_corpus(sources_, blocked / "cache")
    assert "cannot create the corpus cache" in corpus.uncached and not corpus.hit
    _, vocab, ids = in_memory(tmp_path, str(f))
    assert corpus.vocab.chars == vocab.chars and torch.equal(corpus.ids.long(), ids.long())
    assert not list((tmp_path / "tmp").iterdir())  # nothing left behind
    # a named corpus (built or downloaded into the cache) is fetched for the run alone, likewise
    named = resolve.resolve(["recall"], blocked / "cache")
    entry = catalog.load_catalog()["recall"]
    assert named.origins == ["recall"] and named.files[0].label == "recall"
    assert named.files[0].data == catalog.BUILTINS["recall"](entry.size).encode()
    assert not list((tmp_path / "tmp").iterdir())

    def offline(entry, target, progress=None):  # whose advice would name the temporary folder
        raise CorpusError(f"cannot download {entry.name}: save it yourself as {target}")

    monkeypatch.setattr(catalog, "download", offline)
    with pytest.raises(CorpusError, match=r"^cannot create the corpus cache .*CHARRNN_CACHE_DIR"):
        resolve.resolve(["tinyshakespeare"], blocked / "cache")
    args = ["train", str(f), "--steps", "2", "--seq-len", "16", "--batch-size", "4"]
    r = env([*args, *TINY_CLI], env={"CHARRNN_CACHE_DIR": str(blocked / "cache")})
    assert r.exit_code == 0, r.stderr
    (note,) = [line for line in r.stderr.splitlines() if line.startswith("Note: cannot create")]
    assert note.endswith("; encoded the corpus for this run alone")

    def full(path, write):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "atomic_write", full)
    with pytest.raises(CorpusError, match=r"No space left.*CHARRNN_CACHE_DIR") as raised:
        encode(tmp_path, str(f))
    assert str(tmp_path / "cache") in str(raised.value)  # the cache's, not a temporary folder


def test_cli_warns_about_a_damaged_entry_lists_and_clears_the_cache(env, tmp_path, monkeypatch):
    f = tmp_path / "c.txt"
    f.write_text(make_text(6000))
    assert env(["train", str(f), *TINY_CLI, "--steps", "2"]).exit_code == 0
    listed = env(["corpus", "cache"])
    assert listed.exit_code == 0
    header, row = listed.stdout.splitlines()  # piped: a header, then a tab-separated line each
    # figures plain, for a script's arithmetic (a terminal's table says 6.1 KB and 6,000)
    assert header.split("\t") == ["bytes", "characters", "corpus", "encoded file"]
    size, chars, source, path = row.split("\t")
    assert chars == str(len(f.read_text())) and source == str(f.resolve())
    assert Path(path).is_file() and int(size) >= Path(path).stat().st_size  # and its notes
    # an ids file cut short (a full disk, a copy): not whole, so its count is not known; its
    # metadata unreadable: nor are its sources (null, as every --json says what it does not know)
    ids, meta = _entry(tmp_path)
    whole = ids.read_bytes()
    ids.write_bytes(whole[:100])
    assert env(["corpus", "cache"]).stdout.splitlines()[1].split("\t")[1] == "nan"
    assert json.loads(env(["corpus", "cache", "--json"]).stdout)["chars"] is None
    ids.write_bytes(whole)
    kept, meta_text = json.loads(env(["corpus", "cache", "--json"]).stdout), meta.read_text()
    assert kept["chars"] == len(f.read_text()) and kept["sources"] == [str(f.resolve())]
    meta.write_text("{")
    assert json.loads(env(["corpus", "cache", "--json"]).stdout)["sources"] is None
    meta.write_text(meta_text)
    _flip_a_byte(*_entry(tmp_path))
    again = env(["train", str(f), *TINY_CLI, "--steps", "2", "--force"])
    assert again.exit_code == 0 and again.stdout.strip().endswith("best.pt")
    assert "Warning: the cached encoding of this corpus was damaged" in again.stderr
    real_unlink = Path.unlink

    def read_only(path, *args, **kwargs):  # a cache on a read-only disk (root writes any mode)
        if path.suffix in (".ids", ".json"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_unlink(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Path, "unlink", read_only)
        refused = env(["corpus", "cache", "--clear"])
    line = assert_one_error(refused, 1, "cannot delete ")
    assert line.endswith(
        "Read-only file system; make the cache folder writable, or set CHARRNN_CACHE_DIR to "
        "another folder (a cache left as it is costs nothing but its space)"
    )
    cleared = env(["corpus", "cache", "--clear"])
    assert cleared.exit_code == 0 and cleared.stdout == "" and "Freed" in cleared.stderr
    assert not list((tmp_path / "cache" / "encoded").glob("*"))
    assert "no encoded corpora" in env(["corpus", "cache"]).stderr


def test_a_cache_that_is_a_file_is_one_error_for_every_corpus_command(env, tmp_path, monkeypatch):
    """CHARRNN_CACHE_DIR pointed at a file: `corpus cache` (and --clear) say so as `get` does,
    not "no encoded corpora" with exit 0."""
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "file"))
    for args in (["corpus", "cache"], ["corpus", "cache", "--clear"], ["corpus", "get", "recall"]):
        assert_one_error(env(args), 1, "is a file, not a folder", "CHARRNN_CACHE_DIR")


# -------------------------------------------- temporaries of killed encodings, and any metadata

FEW = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from charrnn.text.cache import cache_writing
    from charrnn.fsutil import atomic_write

    def write(f):
        f.write(b"half an encoding")
        f.flush()
        print("writing", flush=True)
        sys.stdin.read()  # until killed

    folder = Path(sys.argv[1])
    with cache_writing(folder):
        atomic_write(folder / "KEY.ids", write)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows")
def test_a_killed_encoding_leaves_nothing_behind_once_the_next_encoding_runs(tmp_path):
    cache = tmp_path / "cache"
    (cache / "encoded").mkdir(parents=True)
    f = tmp_path / "c.txt"
    f.write_text("to be or not to be\n" * 50)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(cache / "encoded")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline() == "writing\n"  # the event: its temporary exists
        assert len(temporaries(cache)) == 1
        encoded.encode_corpus(resolve.resolve([str(f)], cache), cache)
        assert len(temporaries(cache)) == 1  # a live writer's file is left alone
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(DEADLINE)
    f.write_text("something else to encode\n" * 50)
    e = encoded.encode_corpus(resolve.resolve([str(f)], cache), cache)
    assert not e.hit and temporaries(cache) == []
    assert sorted(p.suffix for p in (cache / "encoded").iterdir()) == 2 * [".ids"] + 2 * [".json"]


def test_clearing_the_cache_removes_stale_temporaries_too(tmp_path):
    folder = tmp_path / "encoded"
    folder.mkdir()
    (folder / ".KEY.ids.x1y2.tmp").write_bytes(b"x" * 1000)
    assert encoded.clear_cache(tmp_path) == 1000
    assert list(folder.iterdir()) == []


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    field=st.sampled_from(["format", "key", "length", "dtype", "vocab", "ids_crc32", "sources"]),
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids),
        max_leaves=5,
    ),
)
def test_metadata_of_any_shape_is_rebuilt_or_listed_never_a_crash(tmp_path_factory, field, value):
    root = tmp_path_factory.mktemp("meta")
    f = root / "c.txt"
    f.write_text("to be or not to be\n" * 20)
    good = encoded.encode_corpus(resolve.resolve([str(f)], root), root)
    meta_path = root / "encoded" / f"{good.key}.json"
    meta = json.loads(meta_path.read_text())
    meta[field] = value
    meta_path.write_text(json.dumps(meta))
    again = encoded.encode_corpus(resolve.resolve([str(f)], root), root)
    assert torch.equal(again.ids, good.ids) and again.vocab == good.vocab
    [entry] = encoded.cache_entries(root)
    assert entry.key == good.key
    meta_path.write_text(json.dumps(value))  # JSON that is not even an object
    assert [e.chars for e in encoded.cache_entries(root)] == [None]
    assert torch.equal(encoded.encode_corpus(resolve.resolve([str(f)], root), root).ids, good.ids)


@FEW
@given(
    junk=st.lists(
        st.tuples(
            st.text("0123456789abcdef", min_size=1, max_size=8),
            st.sampled_from([".ids", ".json", ".tmp"]),
            st.binary(max_size=20) | json_values.map(lambda v: json.dumps(v).encode()),
        ),
        max_size=5,
    )
)
def test_corpus_cache_lists_and_clears_whatever_is_in_it(tmp_path_factory, junk):
    root = tmp_path_factory.mktemp("cache")
    folder = root / "encoded"
    folder.mkdir()
    for stem, suffix, content in junk:
        name = f".{stem}.ids.x{suffix}" if suffix == ".tmp" else stem + suffix
        (folder / name).write_bytes(content)
    env = {"CHARRNN_CACHE_DIR": str(root)}
    listed = invoke(["corpus", "cache"], env=env)
    assert listed.exit_code == 0 and "Traceback" not in listed.stderr
    entries = len(list(folder.glob("*.ids")))
    assert listed.stdout.count("\n") == (1 + entries if entries else 0)  # and the header
    records = [
        json.loads(line)
        for line in invoke(["corpus", "cache", "--json"], env=env).stdout.splitlines()
    ]
    assert [r["file"] for r in records] == [
        line.split("\t")[3] for line in listed.stdout.splitlines()[1:]
    ]
    assert all(
        isinstance(r["bytes"], int) and (r["chars"] is None or r["chars"] >= 0) for r in records
    )
    cleared = invoke(["corpus", "cache", "--clear"], env=env)
    assert cleared.exit_code == 0 and cleared.stdout == "" and "Freed" in cleared.stderr
    assert not list(folder.glob("*.ids")) and not list(folder.glob("*.tmp"))


def test_a_cache_that_cannot_be_searched_is_said_in_one_line_and_a_training_gets_round_it(
    env, tmp_path
):
    """A cache this user may not open (a sudo-made folder) or whose path is past PATH_MAX: Path's
    checks raise there, where a missing file is False. Root opens any folder, so the path too
    long stands for both: `train` encodes for itself with a note; `corpus` says so and exits 1."""
    f = tmp_path / "c.txt"
    f.write_text(make_text(3000, seed=5))
    deep = tmp_path.joinpath(*["d" * 200] * 21)  # 4,200 characters: no cache can be read there
    home = {"CHARRNN_CACHE_DIR": str(deep)}
    args = ["train", str(f), "--steps", "2", "--seq-len", "16", "--batch-size", "4", *TINY_CLI]
    r = env(args, env=home)
    assert r.exit_code == 0 and r.stdout.strip().endswith("best.pt"), r.stderr
    (note,) = [line for line in r.stderr.splitlines() if "corpus cache" in line]
    assert note.startswith("Note: cannot read the corpus cache folder ")
    assert note.endswith("at another folder; encoded the corpus for this run alone")
    for command in (["list"], ["get", "recall"], ["cache"], ["cache", "--clear"]):
        r = env(["corpus", *command], env=home)
        line = assert_one_error(r, 1, "cannot read the corpus cache folder")
        assert "CHARRNN_CACHE_DIR" in line and "give this user" not in line  # not a permission
    # a named corpus trains as a file does, fetched for the run alone
    r = env(["train", "recall", "--name", "r", *args[2:]], env=home)
    assert r.exit_code == 0 and "encoded the corpus for this run alone" in r.stderr, r.stderr


def test_an_encoded_folder_that_cannot_be_listed_is_said_not_taken_for_an_empty_cache(
    env, tmp_path, monkeypatch
):
    """A glob of a folder this user may not read finds nothing: `corpus cache` called such a
    cache empty and --clear freed 0 bytes (simulated: root reads any folder)."""
    f = tmp_path / "c.txt"
    f.write_text(make_text(3000, seed=6))
    encode(tmp_path, str(f))
    real = os.listdir
    folder = str(tmp_path / "cache" / "encoded")

    def listdir(path="."):
        if os.fspath(path) == folder:
            raise PermissionError(13, "Permission denied", folder)
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    for args in (["corpus", "cache"], ["corpus", "cache", "--clear"]):
        line = assert_one_error(env(args), 1, f"cannot read the corpus cache folder {folder}: ")
        assert "Permission denied; give this user access to it" in line
