"""`charrnn` for torchrun tests: with CHARRNN_STOP_AT=N, rank 0 alone asks to stop after step N,
as a Ctrl-C reaching one process would; every rank must then stop at the same step."""

import os
import sys

from charrnn.cli import main
from charrnn.train import trainer

STOP_AT = int(os.environ.get("CHARRNN_STOP_AT", "0"))
real_step = trainer.Trainer.train_step


def train_step(self):
    loss = real_step(self)
    if self.pos.step == STOP_AT and self.dist.is_main:
        self.request_stop()
    return loss


trainer.Trainer.train_step = train_step
sys.argv[0] = "charrnn"
main()
