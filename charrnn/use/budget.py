"""How many characters a recording may hold: the caller's bound, what memory holds, what a page
holds. A recording is refused before it is made, with the bound to pass instead."""

from __future__ import annotations

import os
from dataclasses import dataclass

from charrnn.errors import ConfigError
from charrnn.fsutil import size_text
from charrnn.model.config import ModelConfig
from charrnn.use import page
from charrnn.use.inspection import recorded_values

# A recording's values, and at the peak about as much again: --find-units' standardised copy of
# the states, or the page's quantised bytes and text (measured: 715 MB for a 368 MB recording).
# --find-units also records the text through an untrained network (its level), beside the first.
PEAK_PER_RECORDED = 2
VALUE_BYTES = 4  # a recording holds float32 values; a page, one byte each


@dataclass(frozen=True)
class Budget:
    """The most characters a recording of `config` may hold, and what sets it: "chars" (the
    caller's bound), "memory" (at its peak, half the memory free) or "page" (page.PAGE_BYTES of
    values, what a browser opens)."""

    fits: int
    bound: str
    config: ModelConfig
    free: int  # bytes of memory free when the budget was set
    recordings: int = 1  # held at once: 2 where the units are found (the untrained level's)

    def error(self, chars: int, option: str) -> ConfigError | None:
        """Why `chars` characters (asked for by `option`) are refused; None where the caller's own
        bound sets the budget (a note, not an error: the text is cut there)."""
        c, more = self.config, "+" if option == "--max-chars" else ""
        shape = f"{c.num_layers}x{c.hidden_size} {c.cell.upper()}"
        if self.bound == "memory":
            peak = _peak(c, chars, self.recordings)
            return ConfigError(
                f"recording {chars:,}{more} characters of this {shape} takes "
                f"{size_text(peak)} of memory or more at its peak, more than half of the "
                f"{size_text(self.free)} free; pass {option} {self.fits} or less"
            )
        if self.bound == "page":
            size = recorded_values(c, chars)
            return ConfigError(
                f"a page of {chars:,}{more} characters of this {shape} would hold "
                f"{size_text(size)} of values or more, more than a browser opens at ease; "
                f"pass {option} {self.fits} or less"
            )
        return None


def recording_budget(
    config: ModelConfig, max_chars: int, with_page: bool, units: bool = False
) -> Budget:
    """The budget of a recording of `config`: at most `max_chars`, what memory holds (with
    `units`, beside the untrained network's recording) and, for a page (`with_page`), what a page
    holds; the first of the smallest."""
    free, recordings = free_memory(), 2 if units else 1
    limits = [(max_chars, "chars")]
    limits.append((free // 2 // _peak(config, 1, recordings), "memory"))
    if with_page:
        limits.append((page.PAGE_BYTES // recorded_values(config, 1), "page"))
    fits, bound = min(limits, key=lambda limit: limit[0])
    return Budget(fits, bound, config, free, recordings)


def _peak(config: ModelConfig, chars: int, recordings: int) -> int:
    """Bytes at the peak of `recordings` recordings of `chars` characters, one at its peak."""
    return (PEAK_PER_RECORDED + recordings - 1) * VALUE_BYTES * recorded_values(config, chars)


def free_memory() -> int:
    """Bytes of memory free now (8 GB assumed where the platform does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on this platform: assume 8 GB
        return 8 * 2**30
