"""Training under torchrun (README's "Many processes"): who this process is, and the few
collective operations the trainer needs; with one process every method is a cheap no-op. Rank r
owns streams r*B .. r*B+B-1 of the B x world, and only rank 0 writes checkpoints and prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from charrnn.errors import ConfigError


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank 0 of 1 when not launched by torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_sum(self, values: list[float], device: torch.device | None = None) -> list[float]:
        """Elementwise sum over ranks (the same answer on every rank)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def all_max(self, value: float, device: torch.device | None = None) -> float:
        """The largest `value` over ranks (the same answer on every rank)."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t)

    def all_gather(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        """Every rank's `t`, concatenated along `dim` in rank order."""
        if not self.active:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts, dim=dim)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """`model` as training calls it: in DDP (gradients averaged over ranks) when distributed."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        ids = [device] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


SINGLE = Dist()  # a process on its own


def from_env(env: Mapping[str, str]) -> Dist:
    """The ranks torchrun's RANK / WORLD_SIZE / LOCAL_RANK in `env` (the command's environment)
    say (WORLD_SIZE absent or 1: a single process); a ConfigError for values torchrun never sets
    (a rank missing, not a whole number, or out of range)."""

    def whole(name: str, default: str | None = None) -> int:
        value = env.get(name, default)
        if value is None:
            raise ConfigError(f"{name} is not set, though WORLD_SIZE is: {LAUNCH}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a whole number: {LAUNCH}") from None

    world = whole("WORLD_SIZE", "1")
    if world <= 1:
        return SINGLE
    rank, local = whole("RANK"), whole("LOCAL_RANK", "0")
    if not 0 <= rank < world or local < 0:
        raise ConfigError(
            f"RANK={rank} and LOCAL_RANK={local} do not fit WORLD_SIZE={world}: {LAUNCH}"
        )
    return Dist(rank, world, local)


LAUNCH = "start the processes with torchrun, which sets RANK, WORLD_SIZE and LOCAL_RANK"


def start(d: Dist, device: torch.device) -> None:
    """Join the process group: NCCL between GPUs, gloo between CPUs."""
    if d.active and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


# What a collective operation raises where another rank has gone (it stopped on an error of its
# own, or was killed): gloo's RuntimeError names the closed connection; NCCL's is a DistError.
PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def lost_peer(e: BaseException) -> bool:
    """Whether `e`, raised while training under torchrun, says another rank of the job has gone."""
    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    return isinstance(e, RuntimeError) and any(s in str(e) for s in PEER_GONE)


def stop(d: Dist, finished: bool = True) -> None:
    """Leave the process group. After a finished run every rank first waits for the others: gloo
    torn down while another rank still talks to it aborts the process at exit ("terminate called
    without an active exception", 3 runs in 12 of the two-rank resume test). After an error no
    rank waits, as the others may never come."""
    if d.active and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
