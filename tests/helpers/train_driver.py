"""Run the real `charrnn` CLI, reporting each finished step on stdout (for the torture tests).

With CHARRNN_SLOW_DISK set, every checkpoint write pauses halfway, as on a slow disk, so that a
kill aimed at a write really lands inside one.
"""

import io
import os
import sys
import time

import torch

from charrnn import trainer
from charrnn.cli import main

real_step, real_save = trainer.Trainer.train_step, torch.save


def train_step(self):
    loss = real_step(self)
    print(f"step {self.pos.step}", flush=True)
    return loss


def slow_save(obj, f, *args, **kwargs):
    buf = io.BytesIO()
    real_save(obj, buf, *args, **kwargs)
    data = buf.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    time.sleep(0.05)
    f.write(data[len(data) // 2 :])


trainer.Trainer.train_step = train_step
if os.environ.get("CHARRNN_SLOW_DISK"):
    torch.save = slow_save
sys.argv[0] = "charrnn"
main()
