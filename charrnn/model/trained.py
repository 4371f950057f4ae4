"""A trained model whole: the network, its vocabulary, its lead-in and its character statistics.

Every reader of text (sampling, scoring, inspection, evaluation, the cold-start check, the memory
measures) starts through a `Model`, so a cold start is written once: a zero state that first reads
the lead-in, how the model's text starts a paragraph (why: docs/cold-starts.md).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch

from charrnn.devices import as_device
from charrnn.errors import ConfigError
from charrnn.model.network import CharRNN, State, expand_state, float32_default
from charrnn.text.vocab import CharVocab
from charrnn.threads import ThreadTuner, timed

CHUNK = 8192  # positions (streams x characters) read per pass: any length in bounded memory
# Characters per stream a pass reads at most where a ThreadTuner times the passes. A thread count
# that loses (two threads beside a busy process: every character of the recurrence waits at a
# barrier for a thread the other process holds) can cost 10x: passes this short give the tuner
# its units in the first second, where one of CHUNK characters gave none.
PASS_COLS = 256
# ... and while the tuner runs a trial: a count on trial that stalls costs a pass this short
# (beside a busy process, a stalled pass of PASS_COLS took 4.2 s where one thread read it in 0.35)
TRIAL_COLS = 32
LEAD_IN_SCAN = 10_000_000  # characters of a text read for its lead-in: its start says enough
# A text starts its paragraphs with a blank line where at least this share of its line breaks
# begin one (tinyshakespeare 18%, Python's source 12-17%, a licence 18%); below it, a list, whose
# stray blank line (after a title, at the end) the model meets once a pass, and after which a
# list of names began one sample in five mid-name.
PARAGRAPH_SHARE = 0.02


def lead_in(vocab: CharVocab, model=None) -> str:
    """What a model reads before any text (the prime, a text scored, a validation stream): its
    own (ModelConfig.lead_in), else a paragraph break, or a space, or a first character."""
    own = getattr(getattr(model, "config", None), "lead_in", None)
    if isinstance(own, str) and own and all(ch in vocab for ch in own):
        return own
    if "\n" in vocab:
        return "\n\n"
    return " " if " " in vocab else vocab.chars[0]


def lead_in_for(ids: torch.Tensor, vocab: CharVocab) -> str:
    """The lead-in of a model of the text `ids` (in `vocab`): a paragraph break where the text is
    made of paragraphs (PARAGRAPH_SHARE), else a line break where it has one, else a space, else
    its first character. Why not simply from the vocabulary: a model fine-tuned on lines without
    blank ones between them (a TSV, a list) keeps its base's line break, and after a paragraph
    break it never read in its own text it writes what followed one in the base's (a speaker's
    name)."""
    head = ids[:LEAD_IN_SCAN]  # (n,), in the corpus's own dtype: no 80 MB int64 copy
    nl, space = vocab.index.get("\n"), vocab.index.get(" ")
    if nl is not None and (breaks := int((is_nl := head == nl).sum())):
        paragraphs = int((is_nl[:-1] & is_nl[1:]).sum())
        return "\n\n" if paragraphs >= PARAGRAPH_SHARE * breaks else "\n"
    if space is not None and bool((head == space).any()):
        return " "
    return vocab.chars[int(head[0])]


class Start(NamedTuple):
    """Where n streams stand after a cold start: the odds for their next character (n, V), the
    top layer's h that gave them (n, 1, H), and the state (opaque)."""

    logits: torch.Tensor
    h: torch.Tensor
    state: State


def require_model(model) -> None:
    """A ConfigError unless `model` is a Model: a library caller may pass a path or a bare
    network, which would otherwise fail deep inside a reader with an AttributeError."""
    if not isinstance(model, Model):
        raise ConfigError(
            f"the model must be a charrnn Model (charrnn.checkpoint.load_model(PATH) gives one), "
            f"not {type(model).__name__}"
        )


@dataclass
class Model:
    """A trained model: what every reader of text takes, in place of a network and a vocabulary."""

    net: CharRNN
    vocab: CharVocab
    # Per vocabulary id, how often the training text has it: how a runaway sample is noticed
    # (runaway.looks_runaway). None for checkpoints written before it was recorded.
    char_counts: list[int] | None = None

    @property
    def config(self):
        return self.net.config

    @property
    def device(self) -> torch.device:
        """Where the network's weights are."""
        return next(self.net.parameters()).device

    @property
    def lead_in(self) -> str:
        """How a cold start begins (see `lead_in`)."""
        return lead_in(self.vocab, self.net)

    def to(self, device: torch.device | str) -> Model:
        """The model moved to `device` in place (as nn.Module.to), returned for chaining: a device
        charrnn runs on and this machine has (devices.as_device), never a dtype, whose weights
        every reader would refuse deep inside torch."""
        self.net.to(as_device(device))
        return self

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[Model]:
        """The network in eval mode (no dropout) for the block, then in the mode it was in: a
        reader in the middle of training leaves it training (and float32_default's)."""
        was_training = self.net.training
        self.net.eval()
        try:
            with float32_default():
                yield self
        finally:
            self.net.train(was_training)

    def with_lead_in(self, ids: torch.Tensor) -> torch.Tensor:
        """Each row of ids (B, T) after the lead-in (B, P + T): what a cold start reads, for rows
        that each begin cold with their own text."""
        lead = torch.tensor(self.vocab.encode(self.lead_in), dtype=ids.dtype, device=ids.device)
        return torch.cat([lead.expand(len(ids), -1), ids], 1)

    @torch.no_grad()
    def start(
        self, n: int = 1, prime: str = "", chunk: int = CHUNK, tuner: ThreadTuner | None = None
    ) -> Start:
        """A cold start for n streams: a zero state that has read the lead-in, then `prime` (every
        stream alike: read once, then copied), `chunk` characters per pass (see read: `tuner`)."""
        ids = self.with_lead_in(torch.tensor([self.vocab.encode(prime)], dtype=torch.long))
        passes = self.read(ids, chunk=chunk, tuner=tuner)
        _, out, state = deque(passes, maxlen=1)[0]  # the last pass (1, w, H)
        # (1, V): the head over the whole last pass, the product a forward pass makes (same floats)
        logits = self.net.logits(out)[:, -1]
        h = out[:, -1:].expand(n, -1, -1)  # (n, 1, H)
        return Start(logits.expand(n, -1).contiguous(), h, expand_state(state, n))

    def read(
        self,
        ids: torch.Tensor,
        state: State | None = None,
        chunk: int = CHUNK,
        tuner: ThreadTuner | None = None,
    ) -> Iterator[tuple[int, torch.Tensor, State]]:
        """Read ids (B, T) on from `state` (None: zero), chunk positions (B x characters) per
        pass with the state carried: yields, per pass, the column it began at, the top layer's
        h after each character it read (B, w, H) and the state after them. With a `tuner`, each
        pass is a unit it times, PASS_COLS characters at most (TRIAL_COLS in its trials), so that
        a thread count that loses to the load of the moment is soon left."""
        state = self.net.init_state(len(ids)) if state is None else state
        t, most = 0, max(1, chunk // len(ids))
        while t < ids.shape[1]:
            width = most
            if tuner is not None:  # the count this pass runs on is set by before()
                width = min(most, TRIAL_COLS if tuner.before() else PASS_COLS)
            cols = ids[:, t : t + width].to(self.device)  # (B, w)
            with timed(tuner, cols.numel()):
                out, state = self.net.read(cols, state)  # (B, w, H)
            yield t, out, state
            t += width
