"""Reading corpora and every file a user names, whatever it is: files in any encoding, with or
without a BOM, folders with binary files in them, pipes, devices, closed stdin, the catalog and
checked downloads. The reading layer is tested with many generated examples, the command line with
a few: exit 0 with the documented output, or exit 1 with one `Error:` line (2 for usage), never a
traceback, and no temporary file left behind."""

from __future__ import annotations

import codecs
import encodings.aliases
import errno
import hashlib
import http.server
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import DEADLINE, TINY_CLI, json_values, make_text, temporaries
from helpers.cli import assert_one_error, invoke, run
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from charrnn.errors import CorpusError
from charrnn.text import catalog, decode, encoded, resolve, sources
from charrnn.text.sources import _text_files

FEW = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


MANY = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def load(tmp_path, *specs, **kw):
    """The corpus as training reads it (resolve, then encode_corpus), its text decoded back."""
    cache = tmp_path / "cache"
    e = encoded.encode_corpus(resolve.resolve(list(specs), cache, **kw), cache)
    return SimpleNamespace(text=e.vocab.decode(e.ids.tolist()), name=e.name, sources=e.sources)


def test_bom_and_line_ends_are_normalised(tmp_path):
    f = tmp_path / "win.txt"
    f.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree\n")
    c = load(tmp_path, str(f))
    assert c.text == "one\ntwo\nthree\n"
    assert c.name == "win" and c.sources == [str(f.resolve())]


def test_non_utf8_names_the_file_and_offset_and_encoding_option_reads_it(tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin\.txt is not valid utf-8.*offset 3.*--encoding"):
        load(tmp_path, str(f))
    assert load(tmp_path, str(f), encoding="latin-1").text == "café au lait"


def test_binary_and_empty_files_are_refused(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"PQ\x03\x04\x00\x00binary")
    with pytest.raises(
        CorpusError, match=r"a\.bin looks like a binary file \(NUL byte at offset 4"
    ):
        load(tmp_path, str(tmp_path / "a.bin"))
    (tmp_path / "a.zip").write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(CorpusError, match=r"a\.zip is a zip archive, not text: unzip "):
        load(tmp_path, str(tmp_path / "a.zip"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match="corpus is empty"):
        load(tmp_path, str(tmp_path / "empty.txt"))


def test_utf16_with_encoding_option(tmp_path):
    f = tmp_path / "u16.txt"
    f.write_bytes("hello\r\nмир".encode("utf-16"))
    assert load(tmp_path, str(f), encoding="utf-16").text == "hello\nмир"


def test_a_folder_reads_every_text_file_in_order_skipping_hidden(tmp_path):
    d = tmp_path / "notes"
    (d / "sub").mkdir(parents=True)
    (d / "b.txt").write_text("bee")
    (d / "a.md").write_text("ay\n")
    (d / "sub" / "c.txt").write_text("sea\n")
    (d / ".hidden").write_text("secret")
    c = load(tmp_path, str(d))
    assert c.text == "ay\nbee\nsea\n" and c.name == "notes"
    (tmp_path / "void").mkdir()
    with pytest.raises(CorpusError, match="holds no files"):
        load(tmp_path, str(tmp_path / "void"))


def test_a_folder_follows_its_links_once_each_and_names_those_to_nothing(tmp_path):
    """A corpus gathered by links is read whole: a link to a file or to a folder is followed, a
    link back up the tree is not a loop (each folder is read once), a second link to a file of
    the folder is not a second copy of it (each file read once: /etc holds such pairs), and a
    link that leads nowhere is named, not quietly read as nothing."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "far.txt").write_text("far\n")
    (tmp_path / "one.txt").write_text("one\n")
    d = tmp_path / "notes"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("ay\n")
    (d / "b.txt").symlink_to(tmp_path / "one.txt")
    (d / "gone.txt").symlink_to(tmp_path / "nothing.txt")
    (d / "linked").symlink_to(tmp_path / "elsewhere")
    (d / "sub" / "up").symlink_to(d)  # back to the top: read once, not forever
    (d / "sub" / "c.txt").write_text("sea\n")
    (d / "sub" / "d.txt").symlink_to(d / "a.txt")  # a.txt again, through a link
    (d / "sub" / "e.txt").symlink_to(tmp_path / "one.txt")
    found = resolve.resolve([str(d)], tmp_path / "cache")
    assert [src.label for src in found.files] == [
        str(d / "a.txt"),
        str(d / "b.txt"),
        str(d / "linked" / "far.txt"),
        str(d / "sub" / "c.txt"),
    ]
    assert found.dangling == [str(d / "gone.txt")]
    assert load(tmp_path, str(d)).text == "ay\none\nfar\nsea\n"
    (tmp_path / "dead").mkdir()
    (tmp_path / "dead" / "x.txt").symlink_to(tmp_path / "nothing.txt")
    with pytest.raises(
        CorpusError, match=re.escape("holds no files to train on (1 link to nothing)")
    ):
        load(tmp_path, str(tmp_path / "dead"))


def test_a_folder_never_reads_the_runs_or_the_cache_kept_in_it(env, tmp_path):
    """`train .` where the runs and the cache are kept: their files (metrics.jsonl, the encoded
    corpora) are not text to train on, and read they would change the corpus under a resume;
    a run's folder is left out wherever the runs of this command are kept."""
    (tmp_path / "a.txt").write_text(make_text(4000))
    told = re.compile(r"Training '\w+': ([\d,]+) characters")
    first = env(["train", ".", *TINY_CLI, "--steps", "1", "--name", "r1"])
    second = env(["train", ".", *TINY_CLI, "--steps", "1", "--name", "r2"])
    assert first.exit_code == 0 and second.exit_code == 0, second.stderr
    assert told.search(first.stderr)[1] == told.search(second.stderr)[1] == "4,000"
    assert "skipped" not in second.stderr
    (tmp_path / "elsewhere").mkdir()
    third = env(["train", ".", *TINY_CLI, "--steps", "1", "--name", "r3", "--checkpoint-dir",
                 "elsewhere"])  # fmt: skip
    assert third.exit_code == 0 and told.search(third.stderr)[1] == "4,000", third.stderr
    again = env(["train", ".", "--resume", "r1", "--steps", "2"])
    assert again.exit_code == 0, again.stderr
    (tmp_path / "notes").mkdir()  # a link to a run's file is the run's file
    (tmp_path / "notes" / "a.txt").write_text(make_text(4000))
    (tmp_path / "notes" / "m.jsonl").symlink_to(tmp_path / "checkpoints" / "r1" / "metrics.jsonl")
    linked = env(["train", "notes", *TINY_CLI, "--steps", "1", "--name", "n"])
    assert linked.exit_code == 0 and told.search(linked.stderr)[1] == "4,000", linked.stderr
    for ours in ("checkpoints/r1", "cache"):  # named themselves: refused as they are left out
        assert_one_error(
            env(["train", ours, *TINY_CLI, "--steps", "1", "--name", "o"]), 1,
            f"{ours} is one of charrnn's own folders (a run's, or the cache), not text to train on"
        )  # fmt: skip
    only = env(["train", "checkpoints", *TINY_CLI, "--steps", "1", "--name", "o"])
    assert_one_error(
        only, 1, "the folder checkpoints holds no files to train on (charrnn's own run folders or "
        "cache left out: checkpoints/n, checkpoints/r1, checkpoints/r2)"
    )  # fmt: skip


@pytest.mark.parametrize("where", ["notes", "notes/sub"])
def test_a_folder_that_cannot_be_read_is_named_not_found_empty(tmp_path, monkeypatch, where):
    """A folder of mode 000 (for a user other than root: stood in for) is an error naming it, as
    a file that cannot be read is; not "holds no files", nor its files quietly left out."""
    (tmp_path / "notes" / "sub").mkdir(parents=True)
    (tmp_path / "notes" / "sub" / "c.txt").write_text("sea\n")
    real = os.scandir

    def scandir(path):
        if os.fspath(path) == str(tmp_path / where):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    message = f"cannot read the folder {tmp_path / where}: Permission denied; make it readable"
    with pytest.raises(CorpusError, match=re.escape(message)) as raised:
        load(tmp_path, str(tmp_path / "notes"))
    assert ("move it out" in str(raised.value)) == (where != "notes")  # not out of itself


def test_a_file_of_a_folder_that_cannot_be_read_is_named_not_skipped_as_not_text(
    tmp_path, monkeypatch
):
    """A file of mode 000 in a corpus folder (for a user other than root: stood in for) is an
    error that says so, as an unreadable subfolder is; not "skipped: not utf-8 text". One gone
    since the folder was listed is left out without a word, as a subfolder that went is."""
    (tmp_path / "notes").mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / "notes" / name).write_text("the sea, the sea\n" * 50)
    real = open

    def refusing(path, *args, **kwargs):
        if os.fspath(path).endswith("b.txt"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        if os.fspath(path).endswith("c.txt"):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing)
    message = f"cannot read {tmp_path / 'notes' / 'b.txt'}: Permission denied; make it readable, "
    with pytest.raises(
        CorpusError, match=re.escape(message + f"or move it out of {tmp_path / 'notes'}")
    ):
        load(tmp_path, str(tmp_path / "notes"))
    (tmp_path / "notes" / "b.txt").unlink()
    sources = resolve.resolve([str(tmp_path / "notes")], tmp_path / "cache")
    assert [s.label for s in sources.files] == [str(tmp_path / "notes" / "a.txt")]
    assert sources.skipped == []


def test_a_folder_gone_as_it_is_walked_is_skipped_and_the_root_is_refused(tmp_path):
    """A subfolder removed between its listing and its reading (a temporary one, a process's in
    /proc) is skipped, as a file that went is; the whole file system is no corpus to walk."""
    import shutil

    for sub in ("a", "b"):
        (tmp_path / "notes" / sub).mkdir(parents=True)
        (tmp_path / "notes" / sub / "t.txt").write_text(f"{sub}\n")

    def remove_b(folder: Path) -> bool:  # called as the walk reaches each folder, a before b
        shutil.rmtree(tmp_path / "notes" / "b", ignore_errors=True)
        return False

    files = sources._walk(tmp_path / "notes", remove_b)[0]
    assert files == [tmp_path / "notes" / "a" / "t.txt"]
    with pytest.raises(CorpusError, match="/ is the whole file system: give the folder"):
        load(tmp_path, "/")


def test_stdin_and_several_sources(tmp_path):
    (tmp_path / "x.txt").write_text("from a file")
    c = load(tmp_path, "-", str(tmp_path / "x.txt"), stdin=b"from stdin")
    assert c.text == "from stdin\nfrom a file" and c.name == "stdin"


# Decoding: any bytes in any text codec decode, or fail in one line naming the file and offset


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


@MANY
@given(
    encoding=st.sampled_from(TEXT_CODECS),
    data=st.binary(max_size=40) | st.text(max_size=20).map(lambda t: t.encode("utf-8")),
    size=tiny_chunks,
)
@example(encoding="ascii", data=b"\x80\x00", size=1)  # found in review
@example(encoding="ascii", data=b"\x00\x80", size=1)
@example(encoding="utf-16", data=b"\x00" * 7 + b"\xd8\x00\x00", size=1)  # no BOM: one refusal
@example(encoding="utf-8", data=b"7z\xbc\xaf\x27\x1c\x00", size=1)  # a 7z archive, byte by byte
@example(encoding="utf-8", data=b"\x1f\x8b", size=1)
def test_any_bytes_in_any_text_codec_decode_or_fail_in_one_line(encoding, data, size):
    whole = outcome([data], encoding)
    if whole[0] == "error":
        assert "\n" not in whole[1] and whole[1].startswith("f.txt ")
        packed = re.search(r"^f\.txt is an? [\w ]+, not text: ", whole[1])  # gzip, PDF...
        assert packed or offsets(whole[1])
        assert all(0 <= n <= len(data) for n in offsets(whole[1]))
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
    if encoding.startswith(("utf-16", "utf-32")):  # the whole unit that fails, not its first byte
        assert f"bytes {' '.join(f'{b:02x}' for b in bad)} at offset {len(head)}" in message
    else:
        assert f"byte 0x{bad[0]:02x} at offset {len(head)}" in message
    # no advice to read UTF-16/32 (the mark or --encoding said which) as another encoding
    assert ("--encoding" in message) != encoding.startswith(("utf-16", "utf-32")), message


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


@MANY
@given(
    text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    encoding=st.sampled_from(["utf-16", "utf-16-be", "utf-32", "utf-32-be"]),
    size=tiny_chunks,
)
def test_utf16_and_utf32_with_a_bom_read_as_such_where_utf8_is_expected(text, encoding, size):
    """Windows' "Unicode" text: the byte-order mark names the encoding, --encoding or not. (Not
    UTF-16 little-endian text that opens with a NUL: its mark and NUL, FF FE 00 00, are UTF-32's
    mark, read as UTF-32 as every reader of marks does.)"""
    assume(not (encoding == "utf-16" and text.startswith("\0") and sys.byteorder == "little"))
    mark = "\ufeff" if encoding.endswith("-be") else ""  # the plain codecs write their own
    data = (mark + text).encode(encoding)
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert outcome(chunked(data, size), "utf-8") == ("ok", expected)


@MANY
@given(
    before=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\ufeff")),
    last=st.characters(min_codepoint=0x80, blacklist_categories=("Cs",)),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]),
    size=tiny_chunks,
)
def test_a_file_cut_inside_its_last_character_says_so(before, last, encoding, size):
    """Not a byte that "cannot be decoded", whose advice (another --encoding) would garble it."""
    whole = (before + last).encode(encoding)
    unit = {"utf-16": "utf-16-le", "utf-32": "utf-32-le"}.get(encoding, encoding)
    start = len(whole) - len(last.encode(unit))  # where the last character's bytes begin
    for cut in range(1, len(last.encode(unit))):
        kind, message = outcome(chunked(whole[:-cut], size), encoding)
        assert kind == "error" and "ends in the middle of a character" in message, message
        assert f"from offset {start})" in message, message


def test_standard_input_cut_inside_a_character_is_not_advised_as_a_file():
    """A pipe has no file to cut at a line end: the advice speaks of the input."""
    from charrnn.text.decode import decode_chunks

    for label, advice in (("standard input", "the input was cut short"), ("f.txt", "the file")):
        with pytest.raises(CorpusError, match=f"middle of a character .*; {advice}"):
            "".join(decode_chunks([b"ab\xd0"], label))


@pytest.mark.parametrize("family", ["utf-16", "utf-32"])
def test_utf16_and_utf32_without_a_bom_say_which_byte_order_to_pass(tmp_path, family):
    f = tmp_path / "nobom.txt"
    f.write_bytes("hello\n".encode(f"{family}-le"))
    with pytest.raises(CorpusError, match=rf"nobom\.txt is not valid {family} text.*offset 0"):
        load(tmp_path, str(f), encoding=family)
    with pytest.raises(CorpusError) as e:
        load(tmp_path, str(f), encoding=family)
    assert f"--encoding {family}-le or --encoding {family}-be" in str(e.value)
    assert load(tmp_path, str(f), encoding=f"{family}-le").text == "hello\n"


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


# ----------------- folders: binary files and files in another encoding are skipped, with a note


names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\.\0"),
    min_size=1,
    max_size=8,
)


file_kinds = st.sampled_from(
    ["text", "text", "bom-crlf", "empty", "binary", "latin-1", "late-latin-1", "late-nul"]
)
LONG_TEXT = b"a line of plain text\n" * 1000  # 21 KB: past the first block grep and git judge


def make_file(path: Path, kind: str, body: str) -> bool:
    """Write a file of `kind`; True if it is text (kept), False if it must be skipped."""
    data = {
        "text": body.encode("utf-8"),
        "bom-crlf": b"\xef\xbb\xbf" + body.replace("\n", "\r\n").encode("utf-8"),
        "empty": b"",
        "binary": b"\x89PNG\r\n\x1a\n\x00\x00" + body.encode("utf-8"),  # NUL in the first block
        "latin-1": "caf\u00e9 ".encode("latin-1") + body.encode("utf-8"),  # not UTF-8 at byte 3
        # one bad byte deep in the file: the file is skipped, not the whole corpus refused
        "late-latin-1": LONG_TEXT + "caf\u00e9 ".encode("latin-1") + body.encode("utf-8"),
        "late-nul": LONG_TEXT + b"\x00" + body.encode("utf-8"),
    }[kind]
    path.write_bytes(data)
    return kind not in ("binary", "latin-1", "late-latin-1", "late-nul")


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
    as_folder = outcome_of(lambda: load(root, str(folder)))
    as_files = outcome_of(lambda: load(root, *[str(p) for p in kept]))
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
    (tmp_path / "src" / "moved.txt").symlink_to(tmp_path / "away.txt")
    r = env(["train", "src", *TINY_CLI, "--steps", "1"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == os.path.join("checkpoints", "src", "best.pt") + "\n"
    notes = [line for line in r.stderr.splitlines() if line.startswith("Note: skipped")]
    assert notes == [
        "Note: skipped 7 files that are not utf-8 text (binary, or another encoding): "
        + ", ".join(os.path.join("src", "__pycache__", f"m{i}.pyc") for i in range(5))
        + " and 2 more",
        "Note: skipped 1 link to nothing: " + os.path.join("src", "moved.txt"),
    ]


def test_a_file_named_as_a_catalog_corpus_is_read_and_says_so(env, tmp_path, monkeypatch):
    (tmp_path / "recall").write_text(make_text(4000))  # a file of the built-in corpus's name
    r = env(["train", "recall", *TINY_CLI, "--steps", "1"])
    assert r.exit_code == 0, r.stderr
    assert "Training 'recall': 4,000 characters" in r.stderr  # the file, not 2 MB of the corpus
    notes = [line for line in r.stderr.splitlines() if line.startswith("Note: read")]
    assert notes == [
        "Note: read recall, the file here, not the named corpus 'recall' "
        "(`charrnn corpus get recall` prints that one's path)"
    ]
    # files given never need the catalog: one that cannot be read stops nothing but its names
    (tmp_path / "broken.json").write_text("{not json")
    monkeypatch.setenv("CHARRNN_CATALOG", str(tmp_path / "broken.json"))
    plain = env(["train", "recall", *TINY_CLI, "--steps", "1", "--name", "p"])
    assert plain.exit_code == 0 and "Note: read" not in plain.stderr, plain.stderr


# ----------------------- pipes, devices and standard input, for every command that reads a file


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
        assert_one_error(r, 1, "use - to read standard input")


def test_closed_stdin_is_one_error_line(tmp_path):
    """`charrnn train - <&-`: Python starts with sys.stdin None."""
    env = {**os.environ, "CHARRNN_CACHE_DIR": str(tmp_path / "cache")}
    r = run(
        ["train", "-", *TINY_CLI, "--steps", "1"],
        tmp_path,
        stdin=subprocess.DEVNULL,
        env=env,
        preexec_fn=lambda: os.close(0),
    )
    assert r.returncode == 1 and r.stdout == "", r.stderr
    assert r.stderr == (
        "Error: cannot read standard input (it is closed); pipe the text into it, or name a file "
        "instead of -\n"
    )


FILE_READERS = {  # each reader of a FILE the user names, "{}" standing for the file
    "train CORPUS": ["train", "{}", *TINY_CLI, "--steps", "1", "--device", "cpu"],
    "score FILE": ["score", "{}", "-c", "tiny"],
    "inspect FILE": ["inspect", "{}", "-c", "tiny"],
    "sample --prime-file": ["sample", "-c", "tiny", "--prime-file", "{}", "-l", "5", "-s", "1"],
}


STDIN_READERS = {  # ... and each reader of standard input, '-'
    "train -": ["train", "-", *TINY_CLI, "--steps", "1", "--device", "cpu"],
    "score -": ["score", "-", "-c", "tiny"],
    "inspect -": ["inspect", "-", "-c", "tiny"],
    "sample --prime -": ["sample", "-c", "tiny", "--prime", "-", "-l", "5", "-s", "1"],
    "inspect --sample --prime -": [
        "inspect",
        "-c",
        "tiny",
        "--sample",
        "5",
        "--seed",
        "1",
        "--prime",
        "-",
    ],
}
# ... and what each does with the same text given otherwise: in a file, or as --prime's value
FROM_A_FILE = {
    "train -": FILE_READERS["train CORPUS"],
    "score -": FILE_READERS["score FILE"],
    "inspect -": FILE_READERS["inspect FILE"],
    "sample --prime -": FILE_READERS["sample --prime-file"],
    "inspect --sample --prime -": [
        "inspect",
        "-c",
        "tiny",
        "--sample",
        "5",
        "--seed",
        "1",
        "--prime",
        "ANNA:\n",
    ],
}


DEVICES = [d for d in ("/dev/zero", "/dev/urandom") if Path(d).is_char_device()]


MEMORY_CAP = 4 << 30  # the address space of the process below: torch takes about 1 GiB of it


# Runs the cases of argv[1] through CliRunner in one process (torch imported once), fd 0 of each
# "/dev/stdin" case a pipe holding its text, and prints what each did as one JSON object.
DRIVER = """
import json, os, sys
from click.testing import CliRunner
from charrnn.cli import cli

done = {}
for key, args, stdin, text in json.loads(sys.argv[1]):
    if text is not None:  # `... | charrnn ARGS`: fd 0 a pipe, the text in it, its writer gone
        r, w = os.pipe()
        os.write(w, text.encode())
        os.close(w)
        os.dup2(r, 0)
        os.close(r)
    with open(stdin or os.devnull, "rb") as f:
        result = CliRunner().invoke(cli, args, input=f)
    failed = not isinstance(result.exception, (SystemExit, type(None)))
    done[key] = [result.exit_code, result.stdout, result.stderr, failed and repr(result.exception)]
print(json.dumps(done))
"""


def assert_same_as_from_a_file(r, template: list[str], text: bytes, where: Path) -> None:
    """`r`, a reader given `text` through a pipe or stdin, did what `template` does with the same
    text in a file: the same output, or for train the same weights (its run is named after its
    source)."""
    assert r.exit_code == 0 and r.stdout and "Traceback" not in r.stderr, r.stderr
    (where / "same.txt").write_bytes(text)
    again = invoke(command(template, str(where / "same.txt"), where / "runs"))
    assert again.exit_code == 0, again.stderr
    if template[0] != "train":
        assert r.stdout == again.stdout
        return
    assert r.stdout != again.stdout  # runs of their own
    runs = [
        torch.load(Path(x.stdout.strip()).parent / "last.pt", weights_only=True) for x in (r, again)
    ]
    assert all(torch.equal(w, runs[1]["model"][k]) for k, w in runs[0]["model"].items())


def command(template: list[str], file: str, runs: Path) -> list[str]:
    """The reader's command line for `file`; train writes its run under `runs`."""
    args = [file if a == "{}" else a for a in template]
    return [*args, "--checkpoint-dir", str(runs)] if args[0] == "train" else args


@pytest.fixture(scope="module")
def in_process_of_its_own(workspace, tmp_path_factory) -> dict:
    """What each reader did with a device as FILE, a device as stdin (`- < /dev/zero`), and
    /dev/stdin fed by a pipe, run in a process of its own with its memory capped: a reader that
    read a device whole would end there in a MemoryError, not take this machine's memory. The
    timeout only guards against a hang: the process ends by itself, in seconds."""
    import resource

    runs = tmp_path_factory.mktemp("device-runs")
    cases = [
        (f"{reader} {device}", command(FILE_READERS[reader], device, runs), None, None)
        for reader in FILE_READERS
        for device in DEVICES
    ]
    cases += [
        (f"{reader} < {device}", command(STDIN_READERS[reader], "-", runs), device, None)
        for reader in STDIN_READERS
        for device in DEVICES
    ]
    cases += [
        (f"{reader} /dev/stdin", command(FILE_READERS[reader], "/dev/stdin", runs), None, text)
        for reader in FILE_READERS
        for text in [make_text(4000)]
    ]

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    env = {**os.environ, "CHARRNN_CACHE_DIR": str(workspace / "cache")}
    env.pop("CHARRNN_CHECKPOINT_DIR", None)
    p = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(cases)],
        cwd=workspace,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        preexec_fn=cap,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def assert_refused(outcome: list, message: str) -> None:
    """What a case of the driver did was one `Error:` line holding `message`."""
    code, stdout, stderr, failed = outcome
    assert not failed, failed  # e.g. a MemoryError: the device was read whole
    assert_one_error(subprocess.CompletedProcess([], code, stdout, stderr), 1, message)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reader", FILE_READERS)
def test_every_reader_refuses_a_device(in_process_of_its_own, reader, device):
    outcome = in_process_of_its_own[f"{reader} {device}"]
    assert_refused(outcome, f"{device} is not a file")
    assert "pipe it in and use" in outcome[2] and "to read standard input" in outcome[2]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reader", STDIN_READERS)
def test_every_reader_of_stdin_stops_a_device_at_its_first_binary_chunk(
    in_process_of_its_own, reader, device
):
    """`charrnn ... - < /dev/zero`: stdin is read in chunks, each checked: the first NUL ends it."""
    outcome = in_process_of_its_own[f"{reader} < {device}"]
    assert_refused(outcome, "looks like a binary file (NUL byte at offset")


@pytest.mark.parametrize("reader", FILE_READERS)
def test_every_reader_reads_dev_stdin_fed_by_a_pipe(in_process_of_its_own, reader):
    """`make_text | charrnn score /dev/stdin`: a pipe, under a name that looks like a device's."""
    code, stdout, stderr, failed = in_process_of_its_own[f"{reader} /dev/stdin"]
    assert not failed, failed
    assert code == 0 and stdout and "Traceback" not in stderr, stderr


@pytest.mark.parametrize("reader", FILE_READERS)
def test_every_reader_refuses_a_folder_and_binary_content(in_workspace, tmp_path, reader):
    folder = "holds no files" if reader == "train CORPUS" else "emptydir: Is a directory; give a"
    binary = (
        "binary.bin looks like a binary file (NUL byte at offset 8); give text, or pass --encoding"
    )
    for file, message in (("emptydir", folder), ("binary.bin", binary)):
        assert_one_error(invoke(command(FILE_READERS[reader], file, tmp_path)), 1, message)


@pytest.mark.parametrize("reader", FILE_READERS)
def test_every_reader_says_a_compressed_file_or_a_document_is_one(in_workspace, tmp_path, reader):
    """notes.txt.gz is not "a binary file" with a NUL at offset 3: it is gzip, to decompress."""
    import bz2
    import gzip
    import lzma
    import zipfile

    text = make_text(3000).encode()
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as z:
        z.writestr("notes.txt", text)
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"
    packed = {  # the command for a file named as such (a prime file is a description: FILE)
        "notes.txt.gz": (gzip.compress(text), "a gzip file", "gunzip -k "),
        "notes.txt.bz2": (bz2.compress(text), "a bzip2 file", "bunzip2 -k "),
        "notes.txt.xz": (lzma.compress(text), "an xz file", "unxz -k "),
        "notes.zip": (None, "a zip archive", "unzip "),
        "notes.pdf": (pdf, "a PDF document", "pdftotext "),
    }
    named = reader != "sample --prime-file"
    for name, (data, kind, advice) in packed.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        r = invoke(command(FILE_READERS[reader], str(tmp_path / name), tmp_path / "runs"))
        line = assert_one_error(r, 1, f"{tmp_path / name} is {kind}, not text: ")
        assert line.endswith((", then give the text", "(a folder is a corpus)")), line
        assert not named or f": {advice}{tmp_path / name}, then" in line, line
    (tmp_path / "gzip.txt").write_bytes(gzip.compress(text))  # gunzip would refuse its name
    r = invoke(command(FILE_READERS[reader], str(tmp_path / "gzip.txt"), tmp_path / "runs"))
    if named:
        assert f": zcat {tmp_path}/gzip.txt > {tmp_path}/gzip.txt.txt, then" in r.stderr
    else:
        assert ": zcat FILE > FILE.txt, then give the text" in r.stderr


@pytest.mark.parametrize("reader", STDIN_READERS)
def test_every_reader_of_stdin_stops_at_binary_content(in_workspace, tmp_path, reader):
    data = (in_workspace / "binary.bin").read_bytes()
    r = invoke(command(STDIN_READERS[reader], "-", tmp_path), input=data)
    assert_one_error(r, 1, "binary file (NUL byte at offset 8)")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
@pytest.mark.parametrize("reader", FILE_READERS)
def test_every_reader_reads_a_named_pipe(in_workspace, tmp_path, reader):
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    # Opening a FIFO to write blocks until a reader opens it: the writer is a thread of its own.
    text = make_text(4000).encode()
    writer = threading.Thread(target=fifo.write_bytes, args=(text,), daemon=True)
    writer.start()
    r = invoke(command(FILE_READERS[reader], str(fifo), tmp_path / "runs"))
    writer.join(DEADLINE)
    assert_same_as_from_a_file(r, FILE_READERS[reader], text, tmp_path)


@pytest.mark.parametrize("reader", STDIN_READERS)
def test_every_reader_of_stdin_reads_text(in_workspace, tmp_path, reader):
    text = make_text(4000) if reader == "train -" else "ANNA:\n"  # a corpus, or a prime
    r = invoke(command(STDIN_READERS[reader], "-", tmp_path), input=text)
    assert_same_as_from_a_file(r, FROM_A_FILE[reader], text.encode(), tmp_path)


def assert_contract(r, root: Path) -> None:
    """Exit 0, or 1 with one `Error:` line (after notes, if any) and nothing on stdout, or 2 for
    usage; no traceback, no temporary file left."""
    assert "Traceback" not in r.stderr and r.exit_code in (0, 1, 2), (r.exit_code, r.stderr)
    if r.exit_code in (1, 2):
        assert_one_error(r, r.exit_code, alone=False)
    if r.exit_code == 1:
        *notes, _ = r.stderr.splitlines()
        assert all(n.startswith("Note: ") for n in notes), r.stderr
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
    first = sources._text_files(folder)[0]
    spec = {"folder": str(folder), "first file": str(first), "stdin": "-"}[how]
    stdin = first.read_bytes() if how == "stdin" else None
    args = ["train", spec, "--encoding", encoding, *TINY_CLI, "--steps", "1"]
    old = os.getcwd()
    os.chdir(root)
    try:
        r = invoke(args, input=stdin, env={"CHARRNN_CACHE_DIR": str(root / "cache")})
    finally:
        os.chdir(old)
    event(f"exit {r.exit_code}")  # pytest --hypothesis-show-statistics shows the mix
    assert_contract(r, root)
    if r.exit_code == 0:
        assert r.stdout.endswith(("best.pt\n", "last.pt\n")) and r.stdout.count("\n") == 1
        assert (root / r.stdout.strip()).is_file()
    if encoding in ("hex", "klingon"):
        assert r.exit_code == 2 and "--encoding" in r.stderr


# ------------------------------------------------------------ the catalog and checked downloads


def test_unknown_names_point_to_the_catalog(tmp_path):
    with pytest.raises(CorpusError, match="corpus list"):
        load(tmp_path, "no-such-thing")


def test_catalog_lists_tinyshakespeare_first_with_its_hash():
    entries = catalog.load_catalog()
    first = next(iter(entries.values()))
    assert first.name == "tinyshakespeare"
    assert first.sha256 == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert first.size == 1_115_394 and first.url and first.licence
    assert any(e.builtin for e in entries.values())


def test_pystdlib_is_built_offline_and_cached(tmp_path):
    c = load(tmp_path, "pystdlib")
    assert len(c.text) >= 1_000_000 and "def " in c.text and "import " in c.text
    cached = list((tmp_path / "cache").glob("pystdlib-py*.txt"))
    assert len(cached) == 1
    assert load(tmp_path, "pystdlib").text == c.text  # same text from the cache


def test_a_built_in_corpus_that_cannot_be_written_leaves_no_digest_of_it(tmp_path, monkeypatch):
    """A full disk as `recall` is built: its digest was written first, and goes with the failure,
    so that the cache holds nothing of a corpus that is not there."""
    real = catalog.write_cached

    def full(path, write, *args, **kw):
        if path.suffix != ".sha256":
            raise CorpusError(f"cannot write {path}: No space left on device")
        return real(path, write, *args, **kw)

    monkeypatch.setattr(catalog, "write_cached", full)
    with pytest.raises(CorpusError, match="No space left on device"):
        catalog.fetch(catalog.load_catalog()["recall"], tmp_path / "cache")
    left = [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]
    assert left == []


def test_corpus_list_on_a_terminal_wraps_the_description_rather_than_drop_it(env, monkeypatch):
    from click.testing import _NamedTextIOWrapper

    monkeypatch.setattr(_NamedTextIOWrapper, "isatty", lambda self: True)
    described = catalog.load_catalog()["recall"].description
    both = ["description", "licence"]
    terms = ("xterm-256color", "dumb")  # dumb: a plain terminal (Emacs' shell), its width too
    monkeypatch.delenv("LINES", raising=False)  # (rich took a dumb one for 80 columns unless set)
    for term, (columns, shown) in itertools.product(
        terms, ((72, ["description"]), (100, both), (300, both))
    ):
        monkeypatch.setenv("TERM", term)
        monkeypatch.setenv("COLUMNS", str(columns))
        r = env(["corpus", "list"])
        lines = [line.rstrip() for line in re.sub(r"\x1b\[[0-9;]*m", "", r.stdout).splitlines()]
        assert r.exit_code == 0 and max(map(len, lines)) <= columns
        assert lines[0].split()[4:] == shown
        # every word of a description, in its order, on the lines that wrap it
        start, end = lines[0].index("description"), lines[0].find("licence")
        column = " ".join(line[start : end if end > 0 else None] for line in lines[1:]).split()
        at = column.index(described.split()[0])
        assert column[at : at + len(described.split())] == described.split()
    assert len(lines) == 1 + len(catalog.load_catalog())  # wide enough: a corpus a line


@pytest.mark.parametrize("columns", [20, 40])
def test_corpus_list_on_a_narrow_terminal_keeps_each_name_whole(env, monkeypatch, columns):
    """A name is what the user types (`charrnn train tinyshakespeare`): never in two pieces."""
    from click.testing import _NamedTextIOWrapper

    monkeypatch.setattr(_NamedTextIOWrapper, "isatty", lambda self: True)
    monkeypatch.setenv("COLUMNS", str(columns))
    r = env(["corpus", "list"])
    tokens = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout).split()
    assert r.exit_code == 0 and set(catalog.load_catalog()) <= set(tokens), r.stdout


def test_corpus_list_and_get(env, tmp_path):
    listing = env(["corpus", "list"]).stdout.splitlines()  # piped: a header, then a line each
    rows = {line.split("\t")[0]: line.split("\t") for line in listing[1:]}
    assert listing[0].split("\t")[:4] == ["name", "bytes", "kind", "here"]  # piped: plain figures
    assert rows["tinyshakespeare"][1] == "1115394"
    assert rows["pystdlib"][2:4] == ["built-in", "no"] and rows["tinyshakespeare"][2] == "download"
    r = env(["corpus", "get", "pystdlib"])
    assert r.exit_code == 0 and r.stdout.startswith(str(tmp_path / "cache"))
    assert os.path.getsize(r.stdout.strip()) > 1_000_000
    # a file by a downloaded corpus's name that is not it (saved by hand): `get` refuses it, so
    # `list` does not call it here
    target = catalog.load_catalog()["tinyshakespeare"].cache_file(tmp_path / "cache")
    target.write_text("hello\n")
    rows = {
        line.split("\t")[0]: line.split("\t")
        for line in env(["corpus", "list"]).stdout.splitlines()
    }
    assert rows["tinyshakespeare"][3] == "differs" and rows["pystdlib"][3] == "yes"
    records = {
        r["name"]: r for r in map(json.loads, env(["corpus", "list", "--json"]).stdout.splitlines())
    }
    assert records.keys() == rows.keys() - {"name"}  # the piped lines' header
    assert records["tinyshakespeare"]["bytes"] == 1_115_394  # the catalog's: this file differs
    built = catalog.load_catalog()["pystdlib"].cache_file(tmp_path / "cache")
    assert records["pystdlib"]["bytes"] == built.stat().st_size  # its own, not the target's
    assert [records[n]["here"] for n in ("tinyshakespeare", "pystdlib")] == ["differs", "yes"]
    assert "SHA-256 differs" in env(["corpus", "get", "tinyshakespeare"]).stderr
    # a built-in corpus cut short or replaced after it was built here: its digest, kept from the
    # build, says so as the catalog's does for a download
    built.write_bytes(built.read_bytes()[:-40])

    def here() -> str:
        lines = env(["corpus", "list", "--json"]).stdout.splitlines()
        return {r["name"]: r["here"] for r in map(json.loads, lines)}["pystdlib"]

    assert here() == "differs"
    assert_one_error(env(["corpus", "get", "pystdlib"]), 1, "SHA-256 differs")
    built.unlink()  # gone: built again, and good
    assert env(["corpus", "get", "pystdlib"]).exit_code == 0 and here() == "yes"
    # a cache from before digests were kept (or with its digest junk): built again to compare
    good = built.read_bytes()
    for digest in (None, "junk"):
        sidecar = built.with_name(built.name + ".sha256")
        sidecar.unlink() if digest is None else sidecar.write_text(digest)
        built.write_bytes(good[:-40])
        assert here() == "differs"
        built.write_bytes(good)
        assert here() == "yes"


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def entry_for(url: str, body: bytes, sha: str | None = None) -> catalog.CatalogEntry:
    sha = sha or hashlib.sha256(body).hexdigest()
    return catalog.CatalogEntry("demo", "a test corpus", len(body), "CC0", url=url, sha256=sha)


def test_download_verifies_the_hash_and_reports_progress(server, tmp_path):
    www, base = server
    body = b"To be, or not to be\n" * 5000
    (www / "demo.txt").write_bytes(body)
    seen = []
    path = catalog.fetch(
        entry_for(f"{base}/demo.txt", body), tmp_path / "c", lambda d, t: seen.append((d, t))
    )
    assert path.read_bytes() == body
    assert seen[-1] == (len(body), len(body))


def test_a_download_with_the_wrong_hash_leaves_nothing(server, tmp_path):
    www, base = server
    (www / "demo.txt").write_bytes(b"tampered text\n")
    cache = tmp_path / "c"
    with pytest.raises(CorpusError, match="does not match its SHA-256"):
        catalog.fetch(entry_for(f"{base}/demo.txt", b"x", sha="0" * 64), cache)
    assert list(cache.iterdir()) == []


def test_an_unreachable_source_is_a_clear_error_whose_advice_works(server, tmp_path):
    _, base = server
    entry = entry_for(f"{base}/missing.txt", b"x")
    with pytest.raises(CorpusError, match=r"cannot download demo.*404") as e:
        catalog.fetch(entry, tmp_path / "my cache")
    # the file fetched another way, saved where it says: the name finds it from then on
    saved = Path(shlex.split(e.value.args[0].split("save it as ")[1])[0])
    saved.write_text("the wrong file\n")  # checked as a download is
    with pytest.raises(CorpusError, match=r"is not the demo the catalog names: its SHA-256"):
        catalog.fetch(entry, tmp_path / "my cache")
    saved.write_bytes(b"x")  # the file the catalog names
    assert catalog.fetch(entry, tmp_path / "my cache").read_bytes() == b"x"


def test_a_catalog_name_downloads_through_train_sources(server, tmp_path, monkeypatch):
    www, base = server
    body = b"ROMEO:\nBut soft!\n" * 100
    (www / "demo.txt").write_bytes(body)
    catalog = tmp_path / "catalog.json"
    e = entry_for(f"{base}/demo.txt", body)
    catalog.write_text(json.dumps({"corpora": [e.__dict__]}))
    monkeypatch.setenv("CHARRNN_CATALOG", str(catalog))
    c = load(tmp_path, "demo")
    assert c.text == body.decode() and c.sources == ["demo"] and c.name == "demo"
    assert Path(tmp_path / "cache" / "demo.txt").is_file()


def test_a_resume_reads_its_catalog_corpus_whatever_file_here_has_its_name(
    server, env, tmp_path, monkeypatch
):
    www, base = server
    body = make_text(4000).encode()
    (www / "demo.txt").write_bytes(body)
    (tmp_path / "catalog.json").write_text(
        json.dumps({"corpora": [entry_for(f"{base}/demo.txt", body).__dict__]})
    )
    monkeypatch.setenv("CHARRNN_CATALOG", str(tmp_path / "catalog.json"))
    first = env(["train", "demo", *TINY_CLI, "--steps", "1", "--name", "d"])
    assert first.exit_code == 0, first.stderr
    (tmp_path / "demo").write_text("another text\n")  # made later, beside the run
    again = env(["train", "--resume", "d", "--steps", "2"])
    assert again.exit_code == 0 and "Note: read" not in again.stderr, again.stderr
    new = env(["train", "demo", *TINY_CLI, "--steps", "1", "--name", "n", "--val-frac", "0.5"])
    assert "Note: read demo, the file here" in new.stderr  # a new run: the file, said
    (tmp_path / "demo").unlink()
    (tmp_path / "demo").symlink_to(tmp_path / "gone.txt")  # meant, though it leads nowhere
    dangling = env(["train", "demo", *TINY_CLI, "--steps", "1", "--name", "g"])
    assert dangling.exit_code == 1 and dangling.stderr == (
        f"Error: demo is a link to nothing ({tmp_path / 'gone.txt'}): give its text\n"
    )


def test_a_download_sweeps_only_its_own_temporaries(tmp_path):
    """The cache folder may be one shared with other programs: only our files are ours."""
    entry = catalog.CatalogEntry("pystdlib", "d", 1000, "l", builtin=True)
    target = entry.cache_file(tmp_path)
    (tmp_path / f".{target.name}.k1ll3d.tmp").write_bytes(b"half a corpus")
    (tmp_path / ".someone-elses.tmp").write_bytes(b"not ours")
    assert catalog.fetch(entry, tmp_path) == target and target.is_file()
    assert [p.name for p in temporaries(tmp_path)] == [".someone-elses.tmp"]


VALID = {
    "name": "x",
    "description": "d",
    "size": 10,
    "licence": "l",
    "url": "http://127.0.0.1:9/x.txt",
    "sha256": "0" * 64,
}


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
@given(raw=catalogs())
def test_any_catalog_loads_checked_or_fails_in_one_line(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("catalog") / "catalog.json"
    path.write_text(json.dumps(raw))
    try:
        entries = catalog.load_catalog(path)
    except CorpusError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    for e in entries.values():
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", e.name)
        assert isinstance(e.size, int) and e.size > 0
        assert (e.builtin and e.name in catalog.BUILTINS) or (e.url and len(e.sha256) == 64)


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
    r = invoke(args, env=env)
    assert_contract(r, root)
    if r.exit_code == 1:
        assert str(path) in r.stderr or "no corpus named" in r.stderr or "download" in r.stderr


def test_an_entry_without_a_url_names_the_catalog_and_the_problem(tmp_path, monkeypatch):
    path = tmp_path / "catalog.json"
    entry = {k: v for k, v in VALID.items() if k != "url"}
    path.write_text(json.dumps({"corpora": [entry]}))
    monkeypatch.setenv("CHARRNN_CATALOG", str(path))
    r = invoke(["corpus", "get", "x"])
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
    r = invoke(["corpus", "list"])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == (
        f"Error: the corpus catalog {catalog} is not a file or a pipe; point CHARRNN_CATALOG at "
        "a JSON file\n"
    )


def test_sizes_read_in_decimal_units_never_a_thousand_of_the_smaller():
    from charrnn.fsutil import size_text

    sizes = (1, 8, 949, 999, 949_999, 999_999, 2_044_015, 12_300_000_000)
    assert [size_text(n) for n in sizes] == [
        *("1 byte", "8 bytes", "949 bytes", "1.0 KB"),
        *("950.0 KB", "1.0 MB", "2.0 MB", "12.3 GB"),
    ]


def test_a_file_cut_short_in_a_folder_is_text_cut_short_not_skipped(tmp_path):
    """A cut is no sign of another encoding: the file is named with what is wrong with it."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.txt").write_text("hello world\n" * 50)
    (d / "cut.txt").write_bytes(("日本語のテキスト。\n" * 30).encode()[:-3])
    with pytest.raises(CorpusError, match=r"cut\.txt is not valid utf-8 text: it ends in the mid"):
        load(tmp_path, str(d))
