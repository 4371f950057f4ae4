"""Run the real `charrnn` CLI, reporting on stdout each finished step (`step N`) and each
evaluation as it begins (`evaluating N`), so the torture tests act on observable events, never on
a clock.

With CHARRNN_SLOW_DISK=SECONDS, every checkpoint write reports `half-written` and pauses there,
as on a slow disk, so that a kill aimed at a write really lands inside one. With CHARRNN_SLOW_EVAL
=STEP, an evaluation from that step on pauses between its chunks, so that a signal sent as it
begins lands inside it;
with CHARRNN_SLOW_COLDSTART set, the cold-start check reports `checking N` as it begins and
pauses between its pieces of work, likewise.
"""

import io
import os
import sys
import time

import torch

from charrnn.cli import main
from charrnn.train import coldstart, trainer

real_step, real_save = trainer.Trainer.train_step, torch.save
real_evaluate, real_evaluate_and_save = trainer.evaluate, trainer.Trainer._evaluate_and_save
real_check = coldstart.check


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
    print(f"half-written {getattr(f, 'name', '?')}", flush=True)
    time.sleep(float(os.environ["CHARRNN_SLOW_DISK"]))  # the pause of a slow disk
    f.write(data[len(data) // 2 :])


evaluating = [0]  # the step of the evaluation under way


def evaluate_and_save(self, train_loss, **kw):
    print(f"evaluating {self.pos.step}", flush=True)
    evaluating[0] = self.pos.step
    return real_evaluate_and_save(self, train_loss, **kw)


def slow_evaluate(model, batches, should_stop=None, dist=trainer.SINGLE, cold=True, **part):
    def slowly():
        time.sleep(0.01)
        return should_stop()

    slow = evaluating[0] >= int(os.environ["CHARRNN_SLOW_EVAL"])
    return real_evaluate(model, batches, slowly if slow else should_stop, dist, cold, **part)


def slow_check(*args, should_stop=None, **kwargs):
    print("checking", flush=True)

    def slowly():
        time.sleep(0.01)
        return should_stop()

    return real_check(*args, should_stop=slowly, **kwargs)


trainer.Trainer.train_step = train_step
trainer.Trainer._evaluate_and_save = evaluate_and_save
if os.environ.get("CHARRNN_SLOW_EVAL"):
    trainer.evaluate = slow_evaluate
if os.environ.get("CHARRNN_SLOW_COLDSTART"):
    coldstart.check = slow_check
if os.environ.get("CHARRNN_SLOW_DISK"):
    torch.save = slow_save
sys.argv[0] = "charrnn"
main()
