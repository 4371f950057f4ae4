"""Run folders, `BASE/NAME/{best.pt, last.pt, metrics.jsonl}`, and finding them again (names,
folder, advice, info, find: README's layout). The base folder is whatever the caller passes (the
CLI's --checkpoint-dir); nothing here reads the environment or the working directory on its own.
"""

# ruff: noqa: F401 (what `from charrnn import runs` offers, from the modules above)
from charrnn.runs.find import (
    check_not_replacing,
    find_resume,
    find_run,
    list_runs,
    plan_run,
    resolve_checkpoint,
)
from charrnn.runs.folder import RunDir, best_candidates, is_evaluation
from charrnn.runs.info import inspect, run_mismatch
from charrnn.runs.names import _plain, is_path, name_limit, name_problem, safe_name
