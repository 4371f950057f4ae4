"""Run folders, `BASE/NAME/{best.pt, last.pt, metrics.jsonl}`, and finding them again.

    names    what a run may be called, and how a value is read: a path or a name
    folder   RunDir: one run's folder, its lock, metrics and checkpoints
    info     what a run's checkpoints say of it (`charrnn runs`)
    find     the folder for a new run, the run --resume continues, the checkpoint -c means

The base folder is whatever the caller passes (the CLI's --checkpoint-dir); nothing here reads the
environment or the working directory on its own.
"""

from charrnn.runs.find import (
    RESUMABLE_FILES,
    check_not_replacing,
    find_resume,
    find_run,
    list_runs,
    plan_run,
    resolve_checkpoint,
    scan,
)
from charrnn.runs.folder import RunDir, is_evaluation, path_kind
from charrnn.runs.info import RunInfo, inspect
from charrnn.runs.names import (
    CHECKPOINT_SUFFIX,
    NAME_MAX,
    PLAIN,
    _plain,
    is_path,
    name_limit,
    name_problem,
    safe_name,
)

__all__ = [
    "CHECKPOINT_SUFFIX",
    "NAME_MAX",
    "PLAIN",
    "RESUMABLE_FILES",
    "RunDir",
    "RunInfo",
    "_plain",
    "check_not_replacing",
    "find_resume",
    "find_run",
    "inspect",
    "is_evaluation",
    "is_path",
    "list_runs",
    "name_limit",
    "name_problem",
    "path_kind",
    "plan_run",
    "resolve_checkpoint",
    "safe_name",
    "scan",
]
