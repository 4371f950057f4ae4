"""Run names: what a plain run folder name is, the name charrnn makes of any other, and how `-c`
and `--resume` tell a path from a name."""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from pathlib import Path

CHECKPOINT_SUFFIX = ".pt"
NAME_MAX = 255  # bytes in a folder name where the file system does not say (most allow 255)
PLAIN = "letters, digits and _ . -, with no . or - at either end, not ending in .pt"
# Names Windows keeps for its devices, with any extension (`con.txt` too): no folder can have one
# there, so a run of that name could not move to a Windows machine, nor be made on one.
PORTS = "0123456789¹²³"  # COM1, LPT² ...
DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL"} | {f"{d}{i}" for d in ("COM", "LPT") for i in PORTS}


def is_path(spec: str) -> bool:
    """How `-c` and `--resume` read a value: a path (to a file or run folder, from the current
    folder) if it holds a folder separator, is `.` or `..`, or ends in `.pt`; otherwise the name of
    a run under the checkpoint folder, whatever is in the current folder."""
    separators = {os.sep, os.altsep} - {None}
    return (
        any(s in spec for s in separators)
        or spec in (".", "..")
        or spec.endswith(CHECKPOINT_SUFFIX)
    )


def name_limit(base: str | os.PathLike) -> int:
    """The most bytes (in the file system's encoding) a folder name under `base` may have, as the
    file system of `base` (or of its nearest existing parent folder) says."""
    for folder in (Path(base).absolute(), *Path(base).absolute().parents):
        try:
            if os.path.isdir(folder):
                limit = os.pathconf(folder, "PC_NAME_MAX")
                return limit if limit and limit > 0 else NAME_MAX
        except (OSError, ValueError, AttributeError):  # no pathconf (Windows), an odd path
            break
    return NAME_MAX


def _size(name: str) -> int:
    """`name`'s length in bytes of the file system's encoding (UTF-8 where it cannot encode it)."""
    try:
        return len(os.fsencode(name))
    except UnicodeError:
        return len(name.encode("utf-8", errors="surrogatepass"))


def _plain_char(ch: str) -> bool:
    """A character a plain run name may hold: a letter or digit (or an accent on one), _ . -."""
    if not (ch.isalnum() or ch in "_.-" or unicodedata.category(ch).startswith("M")):
        return False
    try:
        os.fsencode(ch)
    except UnicodeError:
        return False
    return True


def is_byte(ch: str) -> bool:
    """Whether `ch` is a byte that was not UTF-8, as os.fsdecode reads it (U+DC80 to U+DCFF)."""
    return "\udc80" <= ch <= "\udcff"


def _plain(name: str) -> str:
    """`name` with runs of other characters as '-', no . or - at either end, a final .pt as -pt
    (`-c NAME.pt` would read as a file), and never empty. A byte of a file name that is not
    UTF-8 (read as the surrogate U+DCxx) is kept as its hex, so that `caf\\xe9.txt` and
    `caf\\xe8.txt` make two runs (caf-e9, caf-e8), not one `caf`."""
    marked = "".join(
        c if _plain_char(c) else f"\0{ord(c) - 0xDC00:02x}\0" if is_byte(c) else "\0" for c in name
    )
    cleaned = re.sub("\0+", "-", marked).strip(".-")
    if cleaned.endswith(CHECKPOINT_SUFFIX):
        cleaned = cleaned[: -len(CHECKPOINT_SUFFIX)] + "-" + CHECKPOINT_SUFFIX[1:]
    if _a_device_name(cleaned):  # CON -> CON_, con.txt -> con_.txt
        stem, dot, rest = cleaned.partition(".")
        cleaned = f"{stem}_{dot}{rest}"
    return cleaned or "run"


def _a_device_name(name: str) -> bool:
    return name.partition(".")[0].upper() in DEVICE_NAMES


def safe_name(name: str, base: str | os.PathLike | None = None) -> str:
    """The run name charrnn makes of `name`: one plain folder name (see PLAIN) that `-c`,
    `--resume` and `runs` all read back as this run, cut to what the file system of `base` allows
    in a folder name (NAME_MAX bytes without a `base`), in composed Unicode (NFC: `chät` typed
    on a Mac, decomposed, names the same run). A plain name that fits is kept as it is."""
    cleaned = _plain(unicodedata.normalize("NFC", name))
    limit = name_limit(base) if base is not None else NAME_MAX
    if _size(cleaned) > limit:  # cut at a character's end: a partial one is dropped
        cut = os.fsencode(cleaned)[:limit].decode(sys.getfilesystemencoding(), errors="ignore")
        cleaned = _plain(cut)  # never longer: a final .pt becomes -pt, the same length
    return cleaned


def spellings(name: str, base: str | os.PathLike) -> list[str]:
    """`name` as typed, then composed and decomposed (NFC, NFD): the folders under `base` a run
    name may be found under, however the keyboard or the file system wrote its accents. A form
    longer than the file system allows cannot be there, and is left out, the typed one too (a
    decomposed `é` takes 3 bytes: the system would refuse to look for it)."""
    forms = [name, *(unicodedata.normalize(form, name) for form in ("NFC", "NFD"))]
    limit = name_limit(base)
    fit = [f for f in forms if _size(f) <= limit]  # typed decomposed, it may fit only composed
    return list(dict.fromkeys(fit or [name]))  # none fits: the name, for its error


def name_problem(name: str, base: str | os.PathLike) -> str | None:
    """Why `name`, given for a new run under `base`, cannot be that run's folder name as it is,
    and the name to use instead (one line); None where it can."""
    usable = safe_name(name, base)
    if usable == unicodedata.normalize("NFC", name):  # accents typed either way: the same name
        return None
    shown = repr(name) if len(name) <= 40 else f"{name[:30]!r}... ({len(name):,} characters)"
    why = []
    if _a_device_name(name):
        why.append("is the name of a device on Windows, where no folder may have it")
    elif _plain(name) != name:
        why.append(f"is not a plain folder name ({PLAIN})")
    if _size(_plain(name)) > (limit := name_limit(base)):
        why.append(
            f"is {_size(name):,} bytes long, and the file system allows {limit:,} in a folder name"
        )
    return f"{shown} {' and '.join(why)}; use {usable!r}"


def too_long(path: Path) -> str:
    """Why the system calls `path` too long: a name in it over the file system's limit, or the
    whole path over the system's."""
    limit = name_limit(path.parent)
    longest = max((_size(part) for part in path.parts), default=0)
    if longest > limit:
        return f"a name in it is {longest:,} bytes long, and the file system allows {limit:,}"
    return "the path is longer than the system allows"
