"""Reading any input, whatever it is: files in any encoding, with or without a BOM, folders with
binary files in them, pipes, closed stdin, malformed catalogs, a cache that killed encodings left
temporaries in, a corpus that moved. The reading layer is tested with many generated examples,
the command line with a few: exit 0 with the documented output, or exit 1 with one `Error:` line
(2 for usage), never a traceback, and no temporary file left behind."""

from __future__ import annotations

import codecs
import encodings.aliases
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import DEADLINE, TINY_CLI, make_text
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from charrnn.cli import cli
from charrnn.errors import CorpusError
from charrnn.text import decode, encoded, resolve
from charrnn.text.catalog import BUILTINS, CatalogEntry, fetch, load_catalog
from charrnn.text.sources import _text_files

FEW = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
MANY = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def _codec(name: str):
    try:
        return codecs.lookup(name)
    except LookupError:
        return None


_ALL = {c.name for n in set(encodings.aliases.aliases.values()) if (c := _codec(n))}
_ALL |= {"utf-8-sig", "utf-7", "idna", "undefined", "unicode-escape", "raw-unicode-escape"}
TEXT_CODECS = sorted(n for n in _ALL if codecs.lookup(n)._is_text_encoding)
NOT_TEXT = ["hex", "base64", "rot13", "zlib", "uu", "bz2", "quopri"]
# Encodings most files are in; the first six need no BOM, utf-16 and utf-32 read one
COMMON = ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252", "latin-1", "utf-16", "utf-32"]

tiny_chunks = st.integers(1, 9)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def outcome(chunks, encoding):
    """What decoding gives: ("ok", text) or ("error", the message); any other exception fails."""
    try:
        return "ok", "".join(decode.decode_chunks(chunks, "f.txt", encoding))
    except CorpusError as e:
        return "error", str(e)


def offsets(message: str) -> list[int]:
    return [int(n) for n in re.findall(r"offset (\d+)", message)]


def temporaries(*folders: Path) -> list[Path]:
    return [p for f in folders if f.is_dir() for p in f.rglob("*.tmp")]


# ---------------------------------------------------------------------------------------------
# Decoding: any bytes in any text codec decode, or fail in one line naming the file and offset


@MANY
@given(
    encoding=st.sampled_from(TEXT_CODECS),
    data=st.binary(max_size=40) | st.text(max_size=20).map(lambda t: t.encode("utf-8")),
    size=tiny_chunks,
)
@example(encoding="ascii", data=b"\x80\x00", size=1)  # found in review
@example(encoding="ascii", data=b"\x00\x80", size=1)
@example(encoding="utf-16", data=b"\x00" * 7 + b"\xd8\x00\x00", size=1)  # no BOM: one refusal
def test_any_bytes_in_any_text_codec_decode_or_fail_in_one_line(encoding, data, size):
    whole = outcome([data], encoding)
    if whole[0] == "error":
        assert "\n" not in whole[1] and whole[1].startswith("f.txt ")
        assert offsets(whole[1]) and all(0 <= n <= len(data) for n in offsets(whole[1]))
    if encoding == "punycode":  # its incremental decoder decodes each chunk on its own
        return
    cut = outcome(chunked(data, size), encoding)
    if b"\x00" in data and "binary" in whole[1] + cut[1]:
        # A NUL makes the block being read binary, so which error is named first (the NUL, or
        # bytes before it that do not decode) depends on the blocks: one line either way.
        assert cut[0] == "error" and "\n" not in cut[1]
    else:
        assert cut == whole


# An always-invalid unit in each encoding, and its byte-order mark
BAD = {
    "utf-8": (b"\xff", b"\xef\xbb\xbf"),
    "utf-8-sig": (b"\xff", b"\xef\xbb\xbf"),
    "utf-16-le": ("\udc00".encode("utf-16-le", "surrogatepass"), b"\xff\xfe"),
    "utf-16-be": ("\udc00".encode("utf-16-be", "surrogatepass"), b"\xfe\xff"),
    "utf-16": ("\udc00".encode("utf-16-le", "surrogatepass"), b"\xff\xfe"),
    "utf-32": (b"\x00\x00\x11\x00", b"\xff\xfe\x00\x00"),  # U+110000, past Unicode
    "cp1252": (b"\x81", b""),
}


@MANY
@given(
    encoding=st.sampled_from(sorted(BAD)),
    bom=st.booleans(),
    before=st.text(alphabet="ab\r\n\u00e9\u20ac", max_size=30),
    after=st.text(alphabet="ab\r\n\u00e9", max_size=30),
    size=tiny_chunks,
)
def test_an_error_names_the_offset_of_the_bad_byte_in_the_file(encoding, bom, before, after, size):
    bad, mark = BAD[encoding]
    unit = {"utf-16": "utf-16-le", "utf-32": "utf-32-le", "utf-8-sig": "utf-8"}.get(encoding)
    bom = bom or encoding in ("utf-16", "utf-32")  # these need one
    head = (mark if bom else b"") + before.encode(unit or encoding)
    data = head + bad + after.encode(unit or encoding)
    kind, message = outcome(chunked(data, size), encoding)
    assert kind == "error" and offsets(message) == [len(head)], message
    assert f"byte 0x{bad[0]:02x} at offset {len(head)}" in message


@MANY
@given(
    text=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40
    ),
    encoding=st.sampled_from(COMMON),
    bom=st.booleans(),
    crlf=st.booleans(),
    size=tiny_chunks,
)
@example(text="\ufeff", encoding="utf-16", bom=False, crlf=False, size=1)  # a U+FEFF after the BOM
def test_text_in_any_encoding_with_or_without_bom_and_crlf_reads_back(
    text, encoding, bom, crlf, size
):
    if crlf:
        text = text.replace("\n", "\r\n")
    writes_bom = encoding in ("utf-16", "utf-32", "utf-8-sig")
    try:
        data = (("\ufeff" if bom and not writes_bom else "") + text).encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    if not (bom or writes_bom):  # a U+FEFF that opens the text is read as its BOM
        text = text.removeprefix("\ufeff")
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert outcome(chunked(data, size), encoding) == ("ok", expected)


@pytest.mark.parametrize("family", ["utf-16", "utf-32"])
def test_utf16_and_utf32_without_a_bom_say_which_byte_order_to_pass(tmp_path, family):
    f = tmp_path / "nobom.txt"
    f.write_bytes("hello\n".encode(f"{family}-le"))
    with pytest.raises(CorpusError, match=rf"nobom\.txt is not valid {family} text.*offset 0"):
        resolve.load_corpus([str(f)], tmp_path, family)
    with pytest.raises(CorpusError) as e:
        resolve.load_corpus([str(f)], tmp_path, family)
    assert f"--encoding {family}-le or --encoding {family}-be" in str(e.value)
    assert resolve.load_corpus([str(f)], tmp_path, f"{family}-le").text == "hello\n"


@pytest.mark.parametrize("name", [*NOT_TEXT, "rot_13", "base64_codec", "klingon", "", "utf\0-8"])
def test_codecs_that_are_not_text_encodings_are_refused(name):
    with pytest.raises(CorpusError, match=r"(not a text encoding|unknown encoding).*utf-8"):
        decode.text_encoding(name)


def test_a_non_text_codec_is_a_usage_error_naming_what_is_accepted(env, tmp_path):
    (tmp_path / "ok.txt").write_text(make_text(3000))
    for name in NOT_TEXT:
        r = env(["train", "ok.txt", "--encoding", name, *TINY_CLI, "--steps", "1"])
        assert r.exit_code == 2 and r.stdout == "" and "Traceback" not in r.stderr
        assert f"'{name}' is not a text encoding; use any text encoding" in r.stderr
    assert not (tmp_path / "checkpoints").exists()


# ---------------------------------------------------------------------------------------------
# Folders: binary files and files in another encoding are skipped, with a note

names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\.\0"),
    min_size=1,
    max_size=8,
)
file_kinds = st.sampled_from(["text", "text", "bom-crlf", "empty", "binary", "latin-1"])


def make_file(path: Path, kind: str, body: str) -> bool:
    """Write a file of `kind`; True if it is text (kept), False if it must be skipped."""
    data = {
        "text": body.encode("utf-8"),
        "bom-crlf": b"\xef\xbb\xbf" + body.replace("\n", "\r\n").encode("utf-8"),
        "empty": b"",
        "binary": b"\x89PNG\r\n\x1a\n\x00\x00" + body.encode("utf-8"),  # NUL in the first block
        "latin-1": "caf\u00e9 ".encode("latin-1") + body.encode("utf-8"),  # not UTF-8 at byte 3
    }[kind]
    path.write_bytes(data)
    return kind not in ("binary", "latin-1")


folders = st.lists(
    st.tuples(
        names,
        file_kinds,
        st.text(st.characters(min_codepoint=1, blacklist_categories=("Cs",)), max_size=30),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda t: t[0],
)


@MANY
@given(files=folders, sub=st.booleans())
def test_a_folder_is_its_text_files_and_skips_the_others(tmp_path_factory, files, sub):
    root = tmp_path_factory.mktemp("folder")
    folder = root / "notes"
    (folder / "sub.d").mkdir(parents=True)  # (names hold no dot)
    kept, skipped = [], []
    for i, (name, kind, body) in enumerate(files):
        path = folder / ("sub.d" if sub and i % 2 else "") / name
        (kept if make_file(path, kind, body) else skipped).append(path)
    order = _text_files(folder)  # reading order: a folder's files, then its subfolders'
    kept.sort(key=order.index)
    if not kept:
        with pytest.raises(CorpusError, match=r"holds no utf-8 text files to train on: \d+ skip"):
            resolve.resolve([str(folder)], root / "cache")
        return
    sources = resolve.resolve([str(folder)], root / "cache")
    assert sources.skipped == [str(p) for p in sorted(skipped, key=order.index)]
    as_folder = outcome_of(lambda: resolve.load_corpus([str(folder)], root / "cache"))
    as_files = outcome_of(lambda: resolve.load_corpus([str(p) for p in kept], root / "cache"))
    assert as_folder == as_files


def outcome_of(load):
    try:
        return "ok", load().text
    except CorpusError as e:
        return "error", str(e).split("(")[0]  # the empty-corpus message names its sources


def test_a_binary_file_named_alone_is_still_an_error(tmp_path):
    f = tmp_path / "module.pyc"
    f.write_bytes(b"\xa7\r\r\n\x00\x00\x00\x00" + b"x" * 100)
    with pytest.raises(CorpusError, match=r"module\.pyc looks like a binary file"):
        resolve.resolve([str(f)], tmp_path).text_chunks().__next__()


def test_train_on_a_folder_with_binary_files_notes_them_once(env, tmp_path):
    (tmp_path / "src" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_text(make_text(4000))
    for i in range(7):
        (tmp_path / "src" / "__pycache__" / f"m{i}.pyc").write_bytes(b"\xa7\r\r\n\x00\x00" * 9)
    r = env(["train", "src", *TINY_CLI, "--steps", "1"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == os.path.join("checkpoints", "src", "best.pt") + "\n"
    notes = [line for line in r.stderr.splitlines() if line.startswith("Note: skipped")]
    assert notes == [
        "Note: skipped 7 files that are not utf-8 text (binary, or another encoding): "
        + ", ".join(os.path.join("src", "__pycache__", f"m{i}.pyc") for i in range(5))
        + " and 2 more"
    ]


# ---------------------------------------------------------------------------------------------
# The cache: what a killed encoding left is removed, what a live one writes is not

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


def test_a_download_sweeps_only_its_own_temporaries(tmp_path):
    """The cache folder may be one shared with other programs: only our files are ours."""
    entry = CatalogEntry("pystdlib", "d", 1000, "l", builtin=True)
    target = entry.cache_file(tmp_path)
    (tmp_path / f".{target.name}.k1ll3d.tmp").write_bytes(b"half a corpus")
    (tmp_path / ".someone-elses.tmp").write_bytes(b"not ours")
    assert fetch(entry, tmp_path) == target and target.is_file()
    assert [p.name for p in temporaries(tmp_path)] == [".someone-elses.tmp"]


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


# ---------------------------------------------------------------------------------------------
# Pipes, <(...), devices and standard input


def feed(path: Path, data: bytes) -> threading.Thread:
    """Write `data` into FIFO `path` from a thread (opening it blocks until a reader opens it)."""
    t = threading.Thread(target=path.write_bytes, args=(data,), daemon=True)
    t.start()
    return t


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_is_read_once_like_stdin(tmp_path):
    fifo = tmp_path / "stream.fifo"
    os.mkfifo(fifo)
    feed(fifo, "caf\u00e9\r\nau lait\n".encode())
    sources = resolve.resolve([str(fifo)], tmp_path / "cache")
    assert "".join(sources.text_chunks()) == "caf\u00e9\nau lait\n"
    assert sources.origins == [str(fifo)] and sources.name == "stream"
    e = encoded.encode_corpus(sources, tmp_path / "cache")  # hashed, counted, encoded: 3 reads
    assert len(e) == 13


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_train_reads_a_pipe_and_points_devices_to_stdin(env, tmp_path):
    fifo = tmp_path / "text"
    os.mkfifo(fifo)
    feed(fifo, make_text(4000).encode())
    r = env(["train", str(fifo), *TINY_CLI, "--steps", "1"])
    assert r.exit_code == 0 and r.stdout.endswith("best.pt\n"), r.stderr
    if os.path.exists("/dev/null"):
        r = env(["train", "/dev/null", *TINY_CLI, "--steps", "1"])
        assert r.exit_code == 1 and r.stdout == "" and r.stderr.count("\n") == 1
        assert "use - to read standard input" in r.stderr


def test_closed_stdin_is_one_error_line(tmp_path):
    """`charrnn train - <&-`: Python starts with sys.stdin None."""
    env = {**os.environ, "CHARRNN_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run(
        [sys.executable, "-m", "charrnn", "train", "-", *TINY_CLI, "--steps", "1"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=DEADLINE,
        preexec_fn=lambda: os.close(0),
    )
    assert r.returncode == 1 and r.stdout == "", r.stderr
    assert r.stderr == (
        "Error: cannot read standard input (it is closed); pipe the text into it, or name a file "
        "instead of -\n"
    )


# ---------------------------------------------------------------------------------------------
# Resuming after the corpus moved


def test_resume_after_the_corpus_moved_says_where_it_was_and_takes_the_new_place(env, tmp_path):
    (tmp_path / "old.txt").write_text(make_text(4000))
    assert env(["train", "old.txt", "--name", "r", *TINY_CLI, "--steps", "2"]).exit_code == 0
    shutil.move(tmp_path / "old.txt", tmp_path / "new.txt")
    r = env(["train", "--resume", "r", "--steps", "4"])
    assert r.exit_code == 1 and r.stdout == "" and r.stderr.count("\n") == 1
    assert f"was trained on {tmp_path / 'old.txt'}, which is not there any more" in r.stderr
    assert "charrnn train NEWPATH --resume r" in r.stderr
    moved = env(["train", "new.txt", "--resume", "r", "--steps", "4"])
    assert moved.exit_code == 0 and moved.stdout.endswith("best.pt\n"), moved.stderr
    again = env(["train", "--resume", "r", "--steps", "6"])  # the new place was remembered
    assert again.exit_code == 0, again.stderr
    assert "Resuming at step 4" in again.stderr


# ---------------------------------------------------------------------------------------------
# The catalog

VALID = {
    "name": "x",
    "description": "d",
    "size": 10,
    "licence": "l",
    "url": "http://127.0.0.1:9/x.txt",
    "sha256": "0" * 64,
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids),
    max_leaves=6,
)


@st.composite
def catalogs(draw):
    """A catalog: arbitrary JSON, or a valid entry with a field dropped, added or changed."""
    entry = dict(VALID)
    action = draw(st.sampled_from(["drop", "set", "set", "json", "builtin"]))
    if action == "json":
        return draw(json_values)
    if action == "drop":
        entry.pop(draw(st.sampled_from(sorted(entry))))
    elif action == "builtin":
        entry = {k: entry[k] for k in ("name", "description", "size", "licence")} | {
            "builtin": draw(json_values)
        }
        entry["name"] = draw(st.sampled_from(["pystdlib", "x", "../pystdlib"]))
    else:
        key = draw(st.sampled_from([*sorted(entry), "builtin", "mirror"]))
        entry[key] = draw(json_values | st.sampled_from(["../../etc/x", "a b", "1" * 64]))
    return {"format": "charrnn-catalog", "corpora": [entry]}


@MANY
@given(catalog=catalogs())
def test_any_catalog_loads_checked_or_fails_in_one_line(tmp_path_factory, catalog):
    path = tmp_path_factory.mktemp("catalog") / "catalog.json"
    path.write_text(json.dumps(catalog))
    try:
        entries = load_catalog(path)
    except CorpusError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    for e in entries.values():
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", e.name)
        assert isinstance(e.size, int) and e.size > 0
        assert (e.builtin and e.name in BUILTINS) or (e.url and len(e.sha256) == 64)


@FEW
@given(catalog=catalogs(), command=st.sampled_from(["list", "get"]))
def test_corpus_commands_with_any_catalog_keep_the_contract(tmp_path_factory, catalog, command):
    root = tmp_path_factory.mktemp("cat")
    path = root / "catalog.json"
    path.write_text(json.dumps(catalog))
    env = {"CHARRNN_CATALOG": str(path), "CHARRNN_CACHE_DIR": str(root / "cache")}
    try:
        name = str(catalog["corpora"][0]["name"])
    except (TypeError, KeyError, IndexError):
        name = "x"
    args = ["corpus", "list"] if command == "list" else ["corpus", "get", "-q", name]
    r = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert_contract(r, root)
    if r.exit_code == 1:
        assert str(path) in r.stderr or "no corpus named" in r.stderr or "download" in r.stderr


def test_an_entry_without_a_url_names_the_catalog_and_the_problem(tmp_path, monkeypatch):
    path = tmp_path / "catalog.json"
    entry = {k: v for k, v in VALID.items() if k != "url"}
    path.write_text(json.dumps({"corpora": [entry]}))
    monkeypatch.setenv("CHARRNN_CATALOG", str(path))
    r = CliRunner().invoke(cli, ["corpus", "get", "x"], catch_exceptions=False)
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == (
        f"Error: the corpus catalog {path} is malformed: entry 1 ('x') needs a 'url' and a "
        "'sha256' (64 hex digits), or 'builtin'; fix it, or point CHARRNN_CATALOG at a good one\n"
    )


@pytest.mark.parametrize("catalog", ["/dev/zero", "/dev/urandom"])
def test_a_catalog_that_is_a_device_is_refused_at_once(catalog, monkeypatch):
    """The catalog is read as every file a user names is: a device that never ends is refused
    before a byte of it is read (it would fill the memory)."""
    monkeypatch.setenv("CHARRNN_CATALOG", catalog)
    r = CliRunner().invoke(cli, ["corpus", "list"], catch_exceptions=False)
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == (
        f"Error: the corpus catalog {catalog} is not a file or a pipe; point CHARRNN_CATALOG at "
        "a JSON file\n"
    )


# ---------------------------------------------------------------------------------------------
# The command line against generated inputs


def assert_contract(r, root: Path) -> None:
    """Exit 0, or 1 with one `Error:` line (after notes, if any) and nothing on stdout, or 2 for
    usage; no traceback, no temporary file left."""
    assert "Traceback" not in r.stderr and r.exit_code in (0, 1, 2), (r.exit_code, r.stderr)
    if r.exit_code == 1:
        *notes, last = r.stderr.splitlines()
        assert r.stdout == "" and last.startswith("Error: ") and r.stderr.endswith("\n")
        assert all(n.startswith("Note: ") for n in notes), r.stderr
    if r.exit_code == 2:
        assert r.stdout == "" and "Error: " in r.stderr
    assert temporaries(root) == []


@FEW
@given(
    files=folders,
    how=st.sampled_from(["folder", "first file", "stdin"]),
    encoding=st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1", "hex", "klingon", "cp1252"]),
    padding=st.sampled_from([0, 2000, 2000, 2000]),
)
def test_train_on_generated_inputs_keeps_the_contract(
    tmp_path_factory, files, how, encoding, padding
):
    root = tmp_path_factory.mktemp("cli")
    folder = root / "in"
    folder.mkdir()
    for name, kind, body in files:
        make_file(folder / name, kind, body + make_text(padding))
    first = _text_files(folder)[0]
    spec = {"folder": str(folder), "first file": str(first), "stdin": "-"}[how]
    stdin = first.read_bytes() if how == "stdin" else None
    args = ["train", spec, "--encoding", encoding, *TINY_CLI, "--steps", "1"]
    old = os.getcwd()
    os.chdir(root)
    try:
        r = CliRunner().invoke(
            cli, args, input=stdin, env={"CHARRNN_CACHE_DIR": str(root / "cache")}
        )
    finally:
        os.chdir(old)
    event(f"exit {r.exit_code}")  # pytest --hypothesis-show-statistics shows the mix
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert_contract(r, root)
    if r.exit_code == 0:
        assert r.stdout.endswith(("best.pt\n", "last.pt\n")) and r.stdout.count("\n") == 1
        assert (root / r.stdout.strip()).is_file()
    if encoding in ("hex", "klingon"):
        assert r.exit_code == 2 and "--encoding" in r.stderr


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
    for stem, suffix, data in junk:
        name = f".{stem}.ids.x{suffix}" if suffix == ".tmp" else stem + suffix
        (folder / name).write_bytes(data)
    env = {"CHARRNN_CACHE_DIR": str(root)}
    listed = CliRunner().invoke(cli, ["corpus", "cache"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0 and "Traceback" not in listed.stderr
    assert listed.stdout.count("\n") == len(list(folder.glob("*.ids")))
    cleared = CliRunner().invoke(cli, ["corpus", "cache", "--clear"], env=env)
    assert cleared.exit_code == 0 and cleared.stdout == "" and "Freed" in cleared.stderr
    assert not list(folder.glob("*.ids")) and not list(folder.glob("*.tmp"))
