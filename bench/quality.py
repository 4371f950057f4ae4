"""Quality per minute of training: `python bench/quality.py [--budget 136.5] [-- TRAIN OPTIONS]`.

Runs `charrnn train` on tinyshakespeare (1,115,394 characters; validation = the last 10%, as
nanoGPT splits it) with charrnn's own defaults for the given wall-clock budget, then, in the same
invocation and under the same budget, a plain PyTorch LSTM: the model a user writes first (2x256,
B 32 random windows of T 128 from a zero state, Adam 2e-3, no schedule; `reference` below). It
prints both best validation losses (nats per character over the whole validation split, read
statefully by each) and the difference. Anything after `--` is passed to `charrnn train` (that
is how the search in docs/performance.md was run).

    python bench/quality.py                      # 136.5 s, the defaults, then the reference
    python bench/quality.py --budget 600         # 10 minutes each
    python bench/quality.py --no-reference -- --hidden 384 --lr 4e-3
    python bench/quality.py --device cuda        # both on the GPU
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import header

from charrnn import checkpoint
from charrnn.runs import is_evaluation

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "tinyshakespeare.txt"
REFERENCE = "plain PyTorch LSTM 2x256, B 32 T 128, Adam 2e-3"


def main() -> None:
    args, extra = parse()
    corpus = Path(args.corpus)
    if not corpus.is_file():
        sys.exit(f"no corpus at {corpus}: give --corpus PATH (tinyshakespeare.txt)")
    result = train_charrnn(corpus, args.budget, extra, args.device, args.keep)
    if not args.no_reference:
        text = corpus.read_text(encoding="utf-8")
        result["reference"] = reference(text, args.budget, device=args.device)
    report(args, result)
    if args.log:
        with open(args.log, "a") as f:
            f.write(json.dumps(result) + "\n")


def train_charrnn(
    corpus: Path,
    budget: float,
    extra: list[str],
    device: str = "cpu",
    keep: str | None = None,
    steps: int | None = None,
) -> dict:
    """`charrnn train corpus --time budget EXTRA...` (`--steps steps` instead where given: the
    same characters read whatever else the machine runs) in a subprocess, and what it did: its
    model, steps, epochs, speed and best.pt's loss over the whole validation split (`best_val`)."""
    limit = ["--steps", str(steps)] if steps else ["--time", f"{budget}s"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = keep or tmp
        cmd = [
            sys.executable, "-m", "charrnn", "train", str(corpus), "--name", "bench",
            *limit, "--checkpoint-dir", tmp, "--device", device,
            *extra,
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # its progress: on stderr
        wall = time.perf_counter() - start
        lines = (Path(tmp) / "bench" / "metrics.jsonl").read_text().splitlines()
        records = [r for r in map(json.loads, lines) if is_evaluation(r)]  # not training records
        saved = checkpoint.load(Path(tmp) / "bench" / "last.pt")
        # Under a time budget the run's evaluations may read a part of the split (evalplan.py);
        # the figure compared is best.pt read over all of it, as the reference is.
        whole = full_validation(Path(tmp) / "bench" / "best.pt", corpus, device)
    tc, mc = saved["train_config"], saved["model_config"]
    best = min(records, key=lambda r: r["val_loss"])
    last = records[-1]
    chars = last["step"] * tc["batch_size"] * tc["seq_len"]
    return {
        "budget_s": None if steps else budget,
        "budget_steps": steps,
        "corpus": corpus.name,
        "corpus_chars": saved["corpus"]["chars"],
        "dropout": mc["dropout"],
        "input_dropout": mc.get("input_dropout", 0.0),
        "options": " ".join(extra) or "(defaults)",
        "model": f"{mc.get('cell', 'lstm').upper()} {mc['num_layers']}x{mc['hidden_size']} "
        f"emb {mc['embedding_dim']} "
        f"dropout {mc['dropout']}"
        + (f" input dropout {mc['input_dropout']}" if mc.get("input_dropout") else ""),
        "train": f"B {tc['batch_size']} T {tc['seq_len']} lr {tc['lr']:g}",
        "best_val": whole,
        "best_val_bpc": round(whole / math.log(2), 4),
        "best_val_run": best["val_loss"],  # as the run's own (maybe partial) evaluation read it
        "best_at_step": best["step"],
        "steps": last["step"],
        "epochs": last["epoch"],
        "chars_per_s": round(chars / last["elapsed"]),
        "wall_s": round(wall, 1),
        # soundness from a cold start, at every evaluation (None: a split too short to check)
        "cold_runaways": [_runaways(r.get("cold_start")) for r in records],
        "cold_gap_last": _gap(last.get("cold_start")),
        "val_worst_last": last.get("val_worst"),
    }


def full_validation(path: Path, corpus: Path, device: str = "cpu") -> float:
    """Nats per character of the checkpoint at `path` over its run's whole validation split."""
    from charrnn.text.data import StreamBatcher, split
    from charrnn.text.encoded import encode_text
    from charrnn.train.evaluate import evaluate

    state = checkpoint.load_run(path)
    ids = encode_text(corpus.read_text(encoding="utf-8"), "bench").ids
    _, val = split(ids, state.config.val_frac)
    c = state.config
    batches = StreamBatcher(val[: c.max_val_chars], c.batch_size, c.seq_len)
    return evaluate(checkpoint.load_model(path, device=device), batches).loss


def reference(text: str, budget: float, seed: int = 0, device: str = "cpu") -> dict:
    """Best validation loss of a plain PyTorch character LSTM trained for `budget` seconds, written
    as a first attempt is: 2x256 on a 256-wide embedding, batches of 32 windows of 129 characters
    at random places of the training split, each read from a zero state, Adam at 2e-3 without a
    schedule or clipping. Evaluated every 100 steps (and at the end) over the same validation split
    as charrnn, statefully in 32 streams; evaluations count in the budget, as charrnn's do."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(seed)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], device=device)
    n_val = int(len(ids) * 0.1)
    train, val = ids[:-n_val], ids[-n_val:]
    v, b, t = len(chars), 32, 128

    class LSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(v, 256)
            self.lstm = nn.LSTM(256, 256, num_layers=2, batch_first=True)
            self.head = nn.Linear(256, v)

        def forward(self, x, state=None):
            out, state = self.lstm(self.embed(x), state)
            return self.head(out), state

    model = LSTM().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    @torch.no_grad()
    def evaluate() -> float:
        model.eval()
        length = (len(val) - 1) // b
        x, y = val[: b * length].view(b, length), val[1 : b * length + 1].view(b, length)
        total, state = 0.0, None
        for i in range(0, length, t):
            logits, state = model(x[:, i : i + t], state)
            target = y[:, i : i + t].flatten()
            total += F.cross_entropy(logits.flatten(0, 1), target, reduction="sum")
        model.train()
        return float(total) / (b * length)

    best, steps, start = math.inf, 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        at = torch.randint(0, len(train) - t - 1, (b,))  # drawn on the CPU, as on a CPU run
        window = torch.stack([train[i : i + t + 1] for i in at.tolist()])  # (B, T+1)
        logits, _ = model(window[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), window[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if steps % 100 == 0:
            best = min(best, evaluate())
    if device == "cuda":
        torch.cuda.synchronize()  # the steps still queued count in the time
    elapsed = time.perf_counter() - start
    best = min(best, evaluate())
    return {"best_val": best, "steps": steps, "chars_per_s": round(steps * b * t / elapsed)}


def _runaways(c: dict | None) -> str | None:
    """Starts that ran away (from a zero state or after the lead-in, whichever is more) of those
    checked."""
    return None if not c else f"{max(c['runaways'], c['runaways_lead_in'])}/{c['starts']}"


def _gap(c: dict | None) -> float | None:
    return None if not c else round(max(c["gap"], c["gap_lead_in"]), 4)


def parse() -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=136.5, help="seconds of training")
    p.add_argument("--corpus", default=str(CORPUS.resolve()))
    p.add_argument("--log", help="append the result as a JSON line to this file")
    p.add_argument("--keep", metavar="DIR", help="checkpoint folder to keep (default: temporary)")
    p.add_argument("--no-reference", action="store_true", help="skip the plain PyTorch LSTM")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where both train")
    return p.parse_args(argv), extra


def report(args, r: dict) -> None:
    """The result as docs/performance.md shows it: the header line, the run, the table, notes."""
    print(header(args.device))
    on = f" --device {args.device}" if args.device != "cpu" else ""
    run = f"charrnn train tinyshakespeare --time {args.budget}s{on} {r['options']}"
    print(f"`{run}`: {r['model']}; {r['train']}.\n")
    print("| system | best val (nats/char) | bits/char | chars/s |")
    print("| --- | --- | --- | --- |")
    print(
        f"| charrnn {r['options']} | **{r['best_val']:.4f}** | {r['best_val_bpc']:.3f} "
        f"| {r['chars_per_s']:,} |"
    )
    if ref := r.get("reference"):
        val = ref["best_val"]
        print(f"| {REFERENCE} | {val:.4f} | {val / math.log(2):.3f} | {ref['chars_per_s']:,} |")
        print(
            f"\nSame run, same budget: charrnn is {val - r['best_val']:+.4f} nats below the "
            f"reference ({ref['steps']:,} reference steps)."
        )
    print(
        f"\n{r['steps']:,} steps, {r['epochs']} epochs, best at step {r['best_at_step']:,}; "
        f"{r['wall_s']} s wall clock with start-up and the last evaluation."
    )
    print(
        f"Cold starts: runaways of those checked at each evaluation {r['cold_runaways']}; "
        f"last gap {r['cold_gap_last']} nats; worst validation stream {r['val_worst_last']}."
    )


if __name__ == "__main__":
    main()
