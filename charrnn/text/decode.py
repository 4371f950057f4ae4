"""Bytes to text: a text encoding's name checked, strict incremental decoding whose errors name
the file and the byte offset, a byte-order mark dropped, and \\r\\n or a lone \\r read as \\n.

Plain Python: every command's reading (sources.py) decodes through here.
"""

from __future__ import annotations

import codecs
import itertools
import os
import shlex
from collections.abc import Callable, Iterable, Iterator

from charrnn.defaults import ENCODING
from charrnn.errors import CorpusError
from charrnn.fsutil import ZIP

ENCODINGS = "any text encoding Python knows, e.g. utf-8, utf-16, latin-1 or cp1252"


def decode_chunks(
    chunks: Iterable[bytes],
    label: str,
    encoding: str = ENCODING,
    enough: Callable[[], bool] | None = None,
) -> Iterator[str]:
    """Text of a file arriving in chunks, a byte-order mark dropped and \\r\\n or a lone \\r read
    as \\n: errors name the offset in the file, a \\r\\n split across two chunks is one line end.
    `enough`: asked where the chunks end; true for a reader that stopped once it had the text it
    needs, so what the decoder still holds (a character cut where the reader stopped) is dropped,
    not an error of a file cut short."""
    decoder = Decoder(label, encoding)
    first, cr = True, False  # a \\r held back
    for chunk in itertools.chain(chunks, [None]):  # None: the end, to flush the decoder
        if chunk is None and enough is not None and enough():
            return
        final = chunk is None
        text = decoder.decode(b"" if final else chunk, final)
        if first and text:
            first = False
            # A byte-order mark, whatever the encoding; but UTF-16/32's codec has dropped the
            # file's own already, and a U+FEFF after it is text.
            if text.startswith("\ufeff") and not decoder.drops_bom:
                text = text[1:]
        if cr:
            text = "\r" + text
        cr = not final and text.endswith("\r")  # its \\n may open the next chunk
        if cr:
            text = text[:-1]
        if text:
            yield line_ends_as_read(text)


def decode_lines(
    chunks: Iterable[bytes], label: str, encoding: str = ENCODING
) -> Iterator[list[str]]:
    """The lines of a text arriving in chunks, as `wc -l` and `paste` count them (each ended by
    \\n, the last maybe not; a lone \\r does not end one), read as decode_chunks reads them (a
    byte-order mark dropped, \\r\\n and a lone \\r as \\n): each chunk's complete lines as
    it arrives, so that a reader of a live pipe (`tail -f log | ...`) gets each line at once."""
    decoder = Decoder(label, encoding)
    # A binary file shows in its first bytes, as git and grep judge one: a NUL past them is a
    # character of its line (one odd line must not stop a stream of a million), however the
    # bytes arrived
    decoder.binary_window = BINARY_WINDOW
    first, pending = True, []  # pending: the pieces of a line not yet ended
    for chunk in itertools.chain(chunks, [None]):  # None: the end, to flush the decoder
        final = chunk is None
        text = decoder.decode(b"" if final else chunk, final)
        if first and text:
            first = False
            if text.startswith("\ufeff") and not decoder.drops_bom:  # as decode_chunks
                text = text[1:]
        lines = []
        if "\n" in text:
            *ended, rest = text.split("\n")
            ended[0] = "".join(pending) + ended[0]
            lines, pending = [line + "\n" for line in ended], [rest] * bool(rest)
        elif text:
            pending.append(text)  # a long line comes in many chunks: joined once, when it ends
        if final and pending:
            lines.append("".join(pending))
        if lines:
            yield [line_ends_as_read(line) for line in lines]


BINARY_WINDOW = 8000  # the first bytes of a stream of lines in which a NUL makes it binary (git's)


def line_ends_as_read(text: str) -> str:
    """\\r\\n or a lone \\r as \\n: how every text is read, a file or a prime typed out."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


class Decoder:
    """Incremental strict decoding whose errors name the file and the byte offset in it."""

    def __init__(self, label: str, encoding: str = ENCODING):
        self.label, self.offset = label, 0  # offset: bytes decoded so far
        self._use(text_encoding(encoding))
        # The first 4 bytes, held until there are 4: a byte-order mark may name another encoding
        self.sniff: bytes | None = b"" if self.encoding in ("utf-8", "utf-8-sig") else None
        self.binary_window: int | None = None  # bytes in which a NUL is binary (None: all)
        self.packed: str | None = None  # what a compressed file or a document is, and advice
        # The first bytes, held while they may still begin a compressed file's or a document's
        # signature (_PACKED), so that it is told whatever sizes the bytes come in
        self.signature: bytes | None = b""

    def _use(self, codec: str) -> None:
        # utf-8-sig counts error offsets after the BOM it drops: decode_chunks drops it instead
        self.decoder = codecs.getincrementaldecoder("utf-8" if codec == "utf-8-sig" else codec)()
        self.encoding = codec
        try:  # UTF-16 and UTF-32 text holds NUL bytes: there a NUL is not binary
            self.nul_is_text = b"\x00" in "a".encode(codec)
        except UnicodeError:
            self.nul_is_text = False
        # UTF-16/32 must start with a byte-order mark. Python's incremental decoder refuses a
        # file without one when it comes in several chunks, but reads it as little-endian when it
        # comes in one: so the mark is checked here, on the first bytes, whatever the chunks.
        self.head = b"" if codec in _BOMS else None
        self.drops_bom = codec in _BOMS  # the codec reads the mark and drops it itself

    def decode(self, chunk: bytes, final: bool = False) -> str:
        if self.signature is not None:
            chunk, self.signature = self.signature + chunk, None
            if not final and any(m.startswith(chunk) and len(m) > len(chunk) for m, *_ in _PACKED):
                self.signature = chunk  # a line of `ab` typed into a pipe is read at once
                return ""
            self.packed = _packed(chunk, self.label)  # said where the bytes do not decode
        if self.sniff is not None:  # the first 4 bytes, for a UTF-16/32 byte-order mark
            chunk, self.sniff = self.sniff + chunk, None
            # Held until there are 4, or until they can begin no mark: a line of `ab\n` typed
            # into a pipe is read at once.
            if len(chunk) < 4 and not final and any(m.startswith(chunk) for m in _MARKS):
                self.sniff = chunk
                return ""
            if (marked := encoding_read(chunk, self.encoding)) != self.encoding:
                self._use(marked)
        window = chunk  # where a NUL is binary
        if self.binary_window is not None:
            window = chunk[: max(0, self.binary_window - self.offset)]
        if not self.nul_is_text and b"\x00" in window:  # binary, whatever else is wrong with it
            if self.offset == 0 and chunk.startswith(ZIP) and b"data.pkl" in chunk[:4096]:
                raise CorpusError(  # torch.save's archive: its first entry is NAME/data.pkl
                    f"{self.label} is a PyTorch checkpoint, not text: a model goes to -c "
                    "(sample, score, inspect, export), or to --resume or --init-from (train)"
                )
            if self.packed:
                raise CorpusError(f"{self.label} is {self.packed}")
            at = self.offset + chunk.index(0)
            stray = "; if it is text with stray NULs, tr -d '\\000' removes them" * (at > 0)
            raise CorpusError(
                f"{self.label} looks like a binary file (NUL byte at offset {at}); give text, "
                f"or pass --encoding if it is UTF-16 or UTF-32 text{stray}"
            )
        if self.head is not None:
            chunk, self.head = self.head + chunk, None
            width = len(_BOMS[self.encoding][0])
            if len(chunk) < width and not final:
                self.head = chunk
                return ""
            if len(chunk) >= width and not chunk.startswith(_BOMS[self.encoding]):
                raise CorpusError(self._no_byte_order_mark())
        start = self.offset - len(self.decoder.getstate()[0])  # of the bytes held back, if any
        try:
            text = self.decoder.decode(chunk, final)
        except UnicodeError as e:  # incl. UTF-16/32 without a byte-order mark, and codec bugs
            raise CorpusError(self._undecodable(e, start, final)) from None
        self.offset += len(chunk)
        return text

    def _no_byte_order_mark(self) -> str:
        return (
            f"{self.label} is not valid {self.encoding} text: it does not start with a byte-order "
            f"mark (offset 0); pass --encoding {self.encoding}-le or --encoding "
            f"{self.encoding}-be for its byte order"
        )

    def _undecodable(self, e: UnicodeError, start: int, final: bool) -> str:
        what = f"{self.label} is not valid {self.encoding} text"
        if self.packed:
            return f"{self.label} is {self.packed}"
        cut = isinstance(e, UnicodeDecodeError) and e.end == len(e.object)
        if final and cut and e.reason in ("unexpected end of data", "truncated data"):
            n = e.end - e.start  # the start of a character (UTF-8's reason; UTF-16/32's)
            last = f"its last {n} bytes" if n > 1 else "its last byte"
            if "standard input" in self.label or "stdin" in self.label:  # a pipe: no file to cut
                advice = "the input was cut short: send it whole, or end it at a line end"
            else:
                them = "them" if n > 1 else "it"
                advice = f"the file was cut short: remove {them}, or cut it at a line end"
            return (
                f"{what}: it ends in the middle of a character ({last}, from offset "
                f"{start + e.start}); {advice}"
            )
        if isinstance(e, UnicodeDecodeError) and e.start < len(e.object):
            at = f"byte 0x{e.object[e.start]:02x} at offset {start + e.start} cannot be decoded"
            if self.encoding.startswith(("utf-16", "utf-32")):  # its mark or --encoding said so
                # a unit of 2 or 4 bytes is what fails: its first byte alone (0x00 of an
                # illegal surrogate 00 d8) would send the reader looking for a NUL
                unit = " ".join(f"{b:02x}" for b in e.object[e.start : e.end])
                at = f"the bytes {unit} at offset {start + e.start} cannot be decoded"
                return f"{what}: {at} ({e.reason}); the file is damaged there"
            return (
                f"{what}: {at}; pass --encoding with the file's encoding (cp1252 or latin-1 for "
                "Western European text, cp1251 Cyrillic, gb18030 Chinese, shift_jis Japanese...)"
            )
        return f"{what}: {str(e).rstrip('.')} (at offset {start}); pass --encoding for its encoding"


# How compressed files, archives and documents begin, each with the commands that give its text:
# a user who trains on notes.txt.gz is told to decompress it, not that a NUL makes it binary. The
# first command is for a file with its usual suffix (it writes the text beside it, and refuses
# to replace a file), the second for any other name (and for a description: standard input).
_PACKED = (
    (b"\x1f\x8b", "a gzip file", ".gz", "gunzip -k {file}", "zcat {file} > {text}"),
    (b"BZh", "a bzip2 file", ".bz2", "bunzip2 -k {file}", "bzcat {file} > {text}"),
    (b"\xfd7zXZ\x00", "an xz file", ".xz", "unxz -k {file}", "xzcat {file} > {text}"),
    (b"(\xb5/\xfd", "a zstd file", ".zst", "unzstd {file}", "zstdcat {file} > {text}"),
    (b"%PDF-", "a PDF document", ".pdf", "pdftotext {file}", "pdftotext {file} {text}"),
    (b"PK\x03\x04", "a zip archive", "", "unzip {file}", "unzip {file}"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive", "", "7z x {file}", "7z x {file}"),
)


def _packed(head: bytes, label: str) -> str | None:
    """What a file (`label`, a path or a description) beginning with `head` is, if compressed,
    an archive or a document, with the command that gives its text."""
    found = next((p for p in _PACKED if head.startswith(p[0])), None)
    if found is None:
        return None
    _, kind, suffix, usual, other = found
    if not os.path.isfile(label):  # a description: "standard input", "the prime file x.pdf"
        command = other.format(file="FILE", text="FILE.txt")
    elif suffix and label.endswith(suffix):
        command = usual.format(file=shlex.quote(label))
    else:  # gzip in notes.txt: the text beside it, never over it
        command = other.format(file=shlex.quote(label), text=shlex.quote(f"{label}.txt"))
    then = "give the text" if suffix else "give its text files (a folder is a corpus)"
    return f"{kind}, not text: {command}, then {then}"


_BOMS = {  # the byte-order marks a file in these encodings must start with
    "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
    "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
}
_MARKS = [mark for marks in _BOMS.values() for mark in marks]


def encoding_read(head: bytes, encoding: str) -> str:
    """The encoding a text that begins with the bytes `head` is read in, asked for in `encoding`
    (a canonical name): a UTF-16 or UTF-32 byte-order mark where UTF-8 is asked for names its own
    encoding (Windows' "Unicode" text, which read as UTF-8 would be refused as binary)."""
    if encoding in ("utf-8", "utf-8-sig"):
        for codec, marks in _BOMS.items():  # UTF-32's first: FF FE 00 00 begins with FF FE
            if head.startswith(marks):
                return codec
    return encoding


def text_encoding(name: str) -> str:
    """The canonical name of text encoding `name`; CorpusError for an unknown name or a codec
    that does not turn bytes into text (hex, base64, rot13, zlib...)."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise CorpusError(f"unknown encoding {name!r}; use {ENCODINGS}") from None
    if not info._is_text_encoding:  # the flag Python's own str.encode checks
        raise CorpusError(f"{name!r} is not a text encoding; use {ENCODINGS}")
    return info.name
