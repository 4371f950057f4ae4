"""JSON as charrnn writes it: strict JSON, a float that is not finite written as null (Python's
bare `NaN` and `Infinity` are refused by other readers, and they already expect null where a
value is not known: a step-0 evaluation has no training loss).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every float that is not finite (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def number(value: Any) -> int | float | None:
    """A value read from JSON as a finite number; None for anything else (a bool, NaN, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def dumps(value: Any, **options) -> str:
    """json.dumps of `value` as strict JSON (see the module's docstring)."""
    return json.dumps(finite(value), allow_nan=False, **options)


def json_line(record: dict, ascii_only: bool = False) -> str:
    """One JSON object on one line, text kept readable (ensure_ascii=False) but with the characters
    that JSON leaves raw and line-based readers split at (U+0085, U+2028, U+2029) escaped, and
    lone surrogates (a file name's bytes that are not UTF-8, a text read as UTF-7) as \\udXXX:
    raw, they cannot be written as UTF-8 at all. `ascii_only`: every character past ASCII
    escaped (\\u65e5), the same JSON, for an output whose encoding has no room for them."""
    if ascii_only:
        return dumps(record, ensure_ascii=True)
    return _RAW.sub(lambda m: f"\\u{ord(m[0]):04x}", dumps(record, ensure_ascii=False))


_RAW = re.compile("[\x85\u2028\u2029\ud800-\udfff]")
