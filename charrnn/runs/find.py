"""Finding runs again: the folder for a new run, the run `--resume` continues, the checkpoint `-c`
means, and every run under a checkpoint folder."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import unicodedata
from pathlib import Path

from charrnn.errors import CharRNNError, RunError, require_path
from charrnn.fsutil import ZIP, expand_home, link_to_nothing
from charrnn.runs.folder import RunDir, being_trained, is_evaluation, path_kind
from charrnn.runs.info import Mismatch, RunInfo, inspect, pid_text, run_mismatch, times
from charrnn.runs.names import (
    CHECKPOINT_SUFFIX,
    is_byte,
    is_path,
    name_problem,
    safe_name,
    spellings,
)

RESUMABLE_FILES = ("last.pt", "best.pt")


def plan_run(base: Path, name: str, force: bool = False, init_from: Path | None = None) -> RunDir:
    """The folder for a new run, checked but not yet made: refuses a `name` that is not one
    `safe_name` would make (see `name_problem`), a folder holding checkpoints unless `force` (so a
    failed start never leaves an empty folder behind), and one holding `init_from`, the checkpoint
    the run starts from, even with `force`."""
    if (problem := name_problem(name, base)) is not None:
        raise RunError(f"the run name {problem}")
    if (inside := _run_around(base)) is not None:  # `runs` would never list a run made there
        parent, where = shlex.quote(str(inside.parent)), "is" if _is(base, inside) else "is in"
        raise RunError(
            f"cannot start run {name!r} inside another run: {base} {where} the run folder "
            f"{inside}, not a folder of runs; give --checkpoint-dir {parent}"
        )
    # a run of that name whose folder spells its accents another way (a Mac's) is that run
    folder = next((n for n in spellings(name, base) if path_kind(Path(base) / n) == "dir"), None)
    folder = folder or unicodedata.normalize("NFC", name)  # a new run's name is made composed
    run = RunDir(Path(base) / folder, given=name)
    check_not_replacing(init_from, run)
    if path_kind(Path(base)) not in (None, "dir"):
        raise RunError(f"the checkpoint folder {base} is a file; pass another --checkpoint-dir")
    if path_kind(run.path) not in (None, "dir"):
        raise RunError(f"{run.path} exists and is not a folder; choose another --name")
    if (pid := run.trainer()) is not None:  # neither --resume nor --force would help
        raise RunError(being_trained(run, pid or "?"))
    # A run's folder, whatever state its files are in (a checkpoint damaged, a broken link, a
    # folder in its place, only the history of its evaluations left): never taken over without
    # --force. (A start killed before its first save leaves training records alone: no run.)
    there = any(os.path.lexists(p) for p in (run.best, run.last)) or _evaluated(run.metrics)
    if there and not force:
        info = inspect(run)
        if info.resumes_from is None or info.ended == "diverged":  # a resume would refuse
            why = (
                "it diverged at the rate a resume keeps"
                if info.resumes_from
                else ("no checkpoint of it loads")
            )
            raise RunError(
                f"run {name!r} already exists in {run.path} ({why}); start another with "
                "--name NEW, or replace it with --force"
            )
        again = name if info.resumes_from == "last.pt" else run.file_ref("best.pt")
        raise RunError(
            f"run {name!r} already exists in {run.path}; continue it with --resume "
            f"{shlex.quote(again)}, start another with --name NEW, or replace it with --force"
        )
    run.refuse_blocked("train")
    return run


def _evaluated(metrics: Path) -> bool:
    """Whether the metrics.jsonl at `metrics` records an evaluation (unreadable lines skipped)."""
    try:
        lines = metrics.read_bytes().splitlines()
    except OSError:
        return False
    for line in lines:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if is_evaluation(record) and "val_loss" in record:
                return True
    return False


def check_not_replacing(init_from: Path | None, run: RunDir) -> None:
    """A new run must not replace the run folder of the checkpoint it starts from."""
    if init_from is not None and Path(init_from).resolve().is_relative_to(run.path.resolve()):
        raise RunError(
            f"the model to start from ({init_from}) is in the run {run.path.name!r}, the one "
            "this --name would write; give the new run another --name"
        )


def find_run(spec: str | Path, base: Path) -> RunDir:
    """A run given by folder path or by name under `base` (see `is_path`); it must hold a
    checkpoint."""
    base = Path(require_path("base", base, FOLDER))
    run = _run_folder(require_path("spec", spec, "a run's name or folder"), base)
    if not run.has_checkpoint():
        _refuse_checkpoints_gone(run, str(spec))
        _refuse_not_a_run(run, str(spec))
        raise RunError(f"the run folder {spec} holds no checkpoint; `charrnn runs` lists the runs")
    return run


def _refuse_checkpoints_gone(run: RunDir, spec: str) -> None:
    """A RunError where `run`, which holds no checkpoint, was a run's folder once (its
    metrics.jsonl is there): its checkpoints were deleted, or folders put in their place; or a
    run's folder begun (its lock, and a first file half written at most), never saved in."""
    if _begun_only(run) or (os.path.isfile(run.metrics) and not _has_records(run)):
        raise RunError(
            f"the run folder {spec} holds no checkpoint: the run stopped before its first save "
            "(killed, or a full disk); train it again with its first command (no --force needed)"
        )
    if os.path.isfile(run.metrics):
        folders = [f.name for f in (run.best, run.last) if os.path.isdir(f)]
        what = f" ({' and '.join(folders)} {'are folders' if len(folders) > 1 else 'is a folder'})"
        why = what if folders else ", though its metrics.jsonl is there (deleted, or never saved)"
        raise RunError(
            f"the run folder {spec} holds no checkpoint (best.pt or last.pt){why}: train the run "
            "again, with --force to replace it"
        )


def _begun_only(run: RunDir) -> bool:
    """Whether `run`'s folder holds its lock and nothing else but a trainer's unfinished writes
    (.NAME.tmp): a train killed as it began, before its first file was whole."""
    try:
        names = os.listdir(run.path)
    except OSError:
        return False
    return ".lock" in names and all(n == ".lock" or n.endswith(".tmp") for n in names)


def find_resume(spec: str | Path, base: Path) -> tuple[RunDir, Path | None]:
    """The run `--resume` continues, and the checkpoint file to continue from (None: the run's
    own choice, see train.resume): a run name or folder as for `find_run`, or a path to a
    run's last.pt or best.pt (a value `is_path` reads as a path), which continues in its folder."""
    base = Path(require_path("base", base, FOLDER))
    spec = str(require_path("spec", spec, "a run's name, folder or checkpoint file"))
    if is_path(spec):
        path = _typed_path(spec)
        kind = path_kind(path)
        if kind is None:
            raise RunError(
                f"no run folder or checkpoint file at {spec}{_meant(spec, base) or LISTS}"
            )
        if kind != "dir":
            if path.name not in RESUMABLE_FILES:
                init = f"; to start a new run from its weights: --init-from {shlex.quote(spec)}"
                raise RunError(
                    f"{spec} is not a run's last.pt or best.pt: --resume continues a run, given "
                    "by its name or folder or one of those files"
                    + (init if path.name.endswith(CHECKPOINT_SUFFIX) else "")
                )
            folder = os.path.dirname(spec) or "."  # as given, and read as a path again
            given = folder if is_path(folder) else f".{os.sep}{folder}"
            return RunDir(path.parent, given=given), path
    return find_run(spec, base), None


def _typed_path(spec: str) -> Path:
    """The path `spec` names, where a file named as a folder (`best.pt/`, `best.pt/.`, which
    Path reads as best.pt) is refused as the system refuses it."""
    try:
        os.stat(expand_home(spec))
    except NotADirectoryError as e:
        raise RunError(f"cannot read {spec}: {e.strerror}") from None
    except (OSError, ValueError):  # nothing there, or no path at all: path_kind tells
        pass
    return Path(expand_home(spec))


LISTS = "; `charrnn runs` lists the runs"  # where no nearer hint is


def _run_folder(spec: str, base: Path) -> RunDir:
    """The folder `spec` names (a path, or a run name under `base`), which must be a folder."""
    if is_path(spec):
        run = RunDir(Path(expand_home(spec)), given=spec)
        if path_kind(run.path) == "file" and run.path.name.endswith(CHECKPOINT_SUFFIX):
            file = os.path.normpath(spec)  # ("best.pt/" is best.pt)
            if os.path.islink(file):  # its run is where the link points
                file = os.path.relpath(os.path.realpath(file))
            folder = os.path.dirname(file) or "."
            raise RunError(
                f"{spec} is a checkpoint file, not a run folder: give its folder, {folder}"
            )
        if path_kind(run.path) != "dir":  # (a run's folder wanted: never a file as the hint)
            raise RunError(f"no run folder at {spec}{_meant(spec, base, files=False) or LISTS}")
        return run
    found = (n for n in spellings(spec, base) if path_kind(Path(base) / n) == "dir")
    run = RunDir(Path(base) / next(found, spec), given=spec)
    if path_kind(run.path) != "dir":
        here = ""
        if path_kind(spec) == "dir" or _is_zip(spec):  # a run's folder or a checkpoint here
            here = f"; to use {spec} in the current folder, write ./{spec}"
        elif os.path.lexists(spec):
            here = (
                f"; the file {spec} in the current folder is no checkpoint (a run's best.pt or "
                "last.pt)"
            )
        hint = broken_link(base) or _meant(spec, base) or f"{run_folder_hint(base)}{LISTS}"
        raise RunError(f"no run {spec!r} in {base}{here}{hint}")
    return run


def _is_zip(path: str) -> bool:
    """Whether `path` is a file that starts as a zip archive does (torch.save's checkpoints)."""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        return f.read(4) == ZIP
    return False


def broken_link(base: Path) -> str:
    """Where the folder of runs is a link to nothing, a clause that says so and what to do; ''
    otherwise."""
    dangling = link_to_nothing(base)
    return f": {dangling}; mend the link, or give another --checkpoint-dir" if dangling else ""


def _is(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def _run_around(base: Path) -> Path | None:
    """The run folder that `base` is, or is inside (followed through links), or None. A folder
    above it counts with its metrics.jsonl too: a best.pt of another tool's in a project's
    folder does not make it a run."""
    with contextlib.suppress(OSError, RunError):
        real = Path(os.path.realpath(base))
        for folder in (real, *real.parents):
            run = RunDir(folder)
            if run.has_checkpoint() and (folder == real or run.metrics.is_file()):
                return folder
    return None


def run_folder_hint(base: Path) -> str:
    """Where a folder of runs was looked in, and `base` is one run's own folder (a slip: the run,
    not its checkpoint folder), a clause that says so and what to give; '' otherwise."""
    with contextlib.suppress(RunError):
        if RunDir(Path(base)).has_checkpoint():
            parent = os.path.normpath(os.path.join(base, os.pardir))  # `.`'s is `..`
            return (
                f"; {base} is a run's folder, not a folder of runs: give --checkpoint-dir "
                f"{shlex.quote(parent)}"
            )
    return ""


def as_path(folder: str | Path) -> str:
    """`folder` as a value that `-c`/`--checkpoint` reads as a path, not a run name (`./x`),
    quoted for a shell."""
    folder = str(folder)
    return shlex.quote(folder if is_path(folder) else os.path.join(".", folder))


def _meant(spec: str, base: Path, files: bool = True) -> str:
    """For a `spec` that names nothing, a hint at the run under `base` it may mean: the one a run
    called `spec` was named (`safe_name`: how names were made before a name that is not plain
    was refused), or, for a value read as a path, the run named just so ('x.pt'), or that path
    inside `base` (early/last.pt, a run's file named as `ls CHECKPOINT_DIR` shows it), or the
    closest run folder or (with `files`: the command takes one) checkpoint file; '' if none."""
    if (real := _unescaped(spec)) is not None:  # a name as `runs` writes it piped: `a\\x1bb`
        with contextlib.suppress(RunError):
            if path_kind(Path(real) if is_path(real) else Path(base) / real) is not None:
                return (
                    f"; did you mean {bash_word(real)}? (a piped `runs` writes the characters "
                    "of a name that are not text escaped, as typed here; `runs --json` gives "
                    "names exact)"
                )
    plain = {os.sep, os.altsep} - {None}
    names = [safe_name(spec, base)]
    if is_path(spec) and spec not in (".", "..") and not any(s in spec for s in plain):
        names.insert(0, spec)
    for name in names:
        if name == spec and not is_path(spec):
            continue  # what was looked for already
        with contextlib.suppress(RunError):
            if path_kind(Path(base) / name) == "dir":
                use = str(Path(base) / name) if is_path(name) else name
                return f"; did you mean the run {name!r} in {base}? give {shlex.quote(use)}"
    inside = Path(base) / spec  # a run's file named from inside the checkpoint folder
    with contextlib.suppress(RunError):
        kind = None if Path(spec).is_absolute() else path_kind(inside)
        if kind == "dir" or (kind == "file" and _is_zip(str(inside))):  # never a text file
            return f"; did you mean {shlex.quote(str(inside))}?"
    if not is_path(spec):  # a run's name mistyped: the closest name of a run there, if one is
        if near := _nearest_run(spec, base):
            return f"; did you mean the run {near!r}?"
    elif (name := os.path.basename(spec.rstrip(os.sep))) not in ("", ".", ".."):
        # a run's folder or checkpoint mistyped (`FR/` for `fr`, `fr/Best.pt`): the closest run
        # or checkpoint file in the folder above it
        above = os.path.dirname(spec.rstrip(os.sep))
        if near := _nearest_run(name, Path(above or "."), files=files):
            return f"; did you mean {as_path(os.path.join(above, near))}?"
        with contextlib.suppress(RunError):  # a file in a run's folder, where a folder is taken
            if not files and above and RunDir(Path(above)).has_checkpoint():
                return f"; did you mean {as_path(above)}?"
        # or the run's folder mistyped before a checkpoint's name (`FR/best.pt`): the closest run
        # in the folder above that, and (where the command takes a file) that checkpoint there,
        # the closest one there, or else the run's folder
        folder, grand = os.path.basename(above), os.path.dirname(above)
        with contextlib.suppress(RunError):
            missing = folder and path_kind(Path(above)) is None
            if missing and (run := _nearest_run(folder, Path(grand or "."))):
                there, file = os.path.join(grand, run), None
                if files and name.endswith(CHECKPOINT_SUFFIX):
                    file = name if path_kind(Path(there) / name) == "file" else None
                    file = file or _nearest_run(name, Path(there), files=True)
                return f"; did you mean {as_path(os.path.join(there, file) if file else there)}?"
    return ""


# An escape as a piped table writes a name's character that is not text (shown_field): \\, \t,
# \n, \r, \xNN (a control character, or a byte that is not UTF-8), \uNNNN
_ESCAPE = re.compile(r"\\(?:([\\tnr])|x([0-9a-f]{2})|u([0-9a-f]{4}))")
_NAMED = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _unescaped(spec: str) -> str | None:
    """`spec` read as a piped `runs` line writes a name (\\x1b a control character, \\xe9 past
    ASCII a byte that is not UTF-8, \\\\ a backslash); None where it holds no such escape."""

    def one(m: re.Match) -> str:
        if m[1]:
            return _NAMED[m[1]]
        if m[2]:
            n = int(m[2], 16)
            return chr(n) if n < 0x80 else chr(0xDC00 + n)  # a byte, as os.fsdecode reads it
        return chr(int(m[3], 16))

    real = _ESCAPE.sub(one, spec)
    return real if real != spec else None


def bash_word(text: str) -> str:
    """`text` quoted for a shell: shlex's quoting, or where it holds a character that is not
    text (a control character, a byte that is not UTF-8) bash's $'...' with \\xNN escapes."""
    if text.isprintable():  # (a byte that is not UTF-8, a surrogate, is not printable)
        return shlex.quote(text)
    out = []
    for c in text:
        if is_byte(c):
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif c.isprintable() and c not in "'\\":
            out.append(c)
        else:
            out.append("".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogatepass")))
    return "$'" + "".join(out) + "'"


def _nearest_run(name: str, base: Path, files: bool = False) -> str | None:
    """The name of the run under `base` (or with `files`, of a checkpoint file there) that `name`
    most likely meant: the same but for case, or the closest spelling; None where none is close."""
    import difflib  # (here: an error's hint, not every command's start-up)

    runs = []
    with contextlib.suppress(RunError, OSError):
        runs = [run.name for run in scan(base)]
        if files:
            runs += [f for f in os.listdir(base) if f.endswith(CHECKPOINT_SUFFIX)]
    by_case = {run.casefold(): run for run in runs}
    close = difflib.get_close_matches(name, runs, n=1, cutoff=0.75)
    return by_case.get(name.casefold()) or next(iter(close), None)


def scan(base: Path) -> list[RunDir]:
    """The run folders under `base`, most recently updated first: folders holding best.pt or
    last.pt (or records in metrics.jsonl alone: its checkpoints deleted), and entries that
    cannot be read (a folder without permission, a broken link), which `inspect` then reports as
    damaged. Plain files beside them are not runs."""
    try:
        names = sorted(os.listdir(base))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise RunError(f"cannot read the checkpoint folder {base}: {e.strerror or e}") from None
    found = []
    for name in names:
        run = RunDir(Path(base) / name)
        try:
            # (records alone: a run whose checkpoints were deleted, damaged, not gone)
            checkpoints = any(map(path_kind, (run.best, run.last)))
            if path_kind(run.path) == "dir" and (checkpoints or _has_records(run)):
                found.append(run)
        except RunError:
            found.append(run)
    return sorted(found, key=lambda r: r.updated(), reverse=True)


def _has_records(run: RunDir) -> bool:
    """Whether `run`'s metrics.jsonl holds records: an empty one is a run killed before its
    first checkpoint (not a run yet), one with records a run whose checkpoints were deleted."""
    try:
        return path_kind(run.metrics) == "file" and run.metrics.stat().st_size > 0
    except OSError:
        return False


def list_runs(base: Path, verify: bool = False) -> list[RunInfo]:
    """What is known of every run under `base` (see `scan`), most recently updated first;
    `verify`: every checkpoint read whole and checked against its digests (see info.inspect)."""
    return [inspect(run, verify) for run in scan(Path(require_path("base", base, FOLDER)))]


FOLDER = "a path to the folder of runs"  # what a library caller's `base` is


def resolve_checkpoint(spec: str | Path | None, base: Path, note=None, check=None) -> Path:
    """The checkpoint file meant by `spec`: a path (see `is_path`) to a file, or to a run folder
    (its best.pt); a run name (its best.pt); or None for the best.pt of the most recently updated
    run under `base` that has trained to its first evaluation. Newer runs that cannot be used are
    skipped, and `note` (if given) is called with one line that says so; `check` (if given) is
    called with such a best.pt before it is chosen, and a CharRNNError from it skips that run too
    (a file whose parts fail their digests reads as sound until it is read whole)."""
    base = Path(require_path("base", base, FOLDER))
    if spec is None:
        return _latest(base, note, check)
    spec = require_path("spec", spec, "a run's name or a checkpoint's path")
    if is_path(spec):
        path = _typed_path(spec)
        kind = path_kind(path)
        if kind == "dir":
            return _noted(_pick(RunDir(path), spec), note)
        if kind is None:
            meant = _meant(spec, base) or (
                "; give a run's name (`charrnn runs` lists them) or a checkpoint's path"
            )
            raise RunError(f"no checkpoint file or run folder at {spec}{meant}")
        return path  # a file: checkpoint.load says what is wrong with it, if anything
    return _noted(_pick(_run_folder(spec, base), spec), note)


def _noted(best: Path, note, pair: Mismatch | None = None) -> Path:
    """`best`, the best.pt of the run a reader was given; where it and the run's last.pt are not
    two moments of one run (`pair`, where already known: a file copied in, or put back), first a
    `note` that says so."""
    if note is not None and (pair := pair or run_mismatch(RunDir(best.parent))):
        note(f"Note: in {best.parent}, {pair.what}: {pair.cause}; reading its best.pt")
    return best


def _latest(base: Path, note, check) -> Path:
    skipped = []
    for run in scan(base):
        info = inspect(run)
        if info.has_best and check is not None:
            try:
                check(run.best)
            except CharRNNError as e:
                skipped.append(f"{run.name!r}: damaged: {getattr(e, 'what', e)}")
                continue
        if info.has_best:
            if skipped and note:
                note(
                    f"Note: using run {run.name!r}, skipping newer runs that cannot be sampled "
                    f"(`charrnn runs` lists them): {'; '.join(skipped)}"
                )
            return _noted(run.best, note, info.mismatch) if info.mismatch else run.best
        skipped.append(f"{run.name!r}: {info.note}")
    if not skipped and (hint := run_folder_hint(base)):
        raise RunError(f"no trained runs in {base}{hint}, or pass --checkpoint {as_path(base)}")
    if not skipped and (broken := broken_link(base)):
        raise RunError(f"no trained runs in {base}{broken}")
    if not skipped:
        raise RunError(
            f"no trained runs in {base}; train one with `charrnn train CORPUS`, "
            "or pass --checkpoint"
        )
    raise RunError(f"no trained runs in {base}: {'; '.join(skipped)}")


def _pick(run: RunDir, spec: str) -> Path:
    """A run's best.pt; a run without one has not trained to its first evaluation and is refused
    (its last.pt is at most a few steps in: sampling it would be noise), unless named as a file."""
    broken_link = os.path.islink(run.best) and not os.path.exists(run.best)  # as if missing
    if not broken_link and path_kind(run.best) is not None:
        return run.best
    if os.path.lexists(run.last):
        info = inspect(run)
        if "last.pt" in info.broken:  # and no best.pt: nothing of the run can be read
            raise RunError(
                f"run {spec} has no best.pt, and {info.problem}: no checkpoint of it loads; "
                "train it again, with --force to replace it"
            )
        if (evaluated := len(info.metrics)) > 0:
            gone = "is a broken link" if broken_link else "is missing"
            raise RunError(
                f"run {spec} has no best.pt: it {gone}, though the run was evaluated "
                f"{times(evaluated)}; give the file {run.last} instead of the run to use its "
                "latest weights"
            )
        if info.trainer is not None:
            raise RunError(
                f"run {spec} is being trained now ({pid_text(info.trainer)}) and has not reached "
                "its first evaluation, so it has no best.pt yet; wait for it (`charrnn runs` "
                f"says when), or give the file {run.last} to use {_weights_of(info)} as they are"
            )
        if info.ended == "diverged":  # a resume keeps its rate, and would refuse
            rate = f" at its learning rate of {info.lr:g}" if info.lr is not None else ""
            raise RunError(
                f"run {spec} diverged{rate} before its first evaluation, so it has no best.pt; "
                "start it over with a lower --lr and --force"
            )
        raise RunError(
            f"run {spec} has not trained to its first evaluation yet, so it has no best.pt; "
            f"continue it with `{info.resume_advice()}`, or give the file {run.last} "
            f"instead of the run to use {_weights_of(info)} as they are"
        )
    _refuse_checkpoints_gone(run, spec)
    _refuse_not_a_run(run, spec)
    raise RunError(f"no checkpoint in the run folder {spec}; `charrnn runs` lists the runs")


def _weights_of(info) -> str:
    """What a run's last.pt holds before its first evaluation: untrained weights at step 0, else
    those of a run stopped on its way there (during its first evaluation, say)."""
    return f"its weights at step {info.step:,}" if info.step else "its untrained weights"


def _refuse_not_a_run(run: RunDir, spec: str) -> None:
    """A RunError where `run`, a folder without checkpoints, is not a run's folder at all: a
    folder in a checkpoint file's place (`x/best.pt`), or the folder of runs itself."""
    if run.path.name in (run.best.name, run.last.name):
        raise RunError(f"{spec} is a folder, not a checkpoint file: give the file a run wrote")
    for path in (run.best, run.last):  # a link to nothing, or a loop: a run's, damaged
        if os.path.islink(path):
            path_kind(path)  # (a RunError saying which)
    inner = []
    with contextlib.suppress(RunError):  # (a folder that cannot be listed: the plain error)
        # runs' folders, not a broken link beside files (which `runs` lists as a damaged run)
        inner = [r for r in scan(run.path) if os.path.isdir(r.path)]
    if inner:  # the folder of runs itself, given as one run
        names = ", ".join(r.name for r in inner[:3]) + (", ..." if len(inner) > 3 else "")
        raise RunError(
            f"{spec} is a folder of runs ({names}), not one run: give a run in it, e.g. "
            f"{as_path(inner[0].path)}"
        )
