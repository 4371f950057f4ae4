"""Dropout against the passes a budget makes over its text: `python bench/dropout.py [--budget
136.5] [--chars 100000 300000 600000] [--dropouts 0.1 0.3 0.5]`.

The first CHARS characters of the corpus (tinyshakespeare.txt), each length a text of its own, so
that the same budget reads a shorter text more times. On each, `charrnn train --time BUDGET
--dropout D` for each D, then once with the dropout `--size auto` chooses from the passes; each
run's best.pt read over its whole validation split, as bench/quality.py reads it. Prints a row a
text and budget: the passes the runs made and each dropout's best validation loss. `--log FILE`
appends each run as a JSON line (quality.py's fields); `--table FILE...` prints the table of runs
logged before (by this script or by `quality.py --log`), without training.

    python bench/dropout.py                                   # 3 texts x 4 runs of 136.5 s
    python bench/dropout.py --chars 100000 --dropouts 0 0.5 --budget 60
    python bench/dropout.py --chars 100000 --dropouts 0.5 0.7 --steps 1880 --no-choice
    python bench/dropout.py --chars 100000 --dropouts 0.5 0.7 --steps 2640 -- --size small
    python bench/dropout.py --table runs.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from quality import CORPUS, train_charrnn
from report import header


def main() -> None:
    args = parse()
    if args.table:
        lines = [line for f in args.table for line in Path(f).read_text().splitlines()]
        runs = [json.loads(line) for line in lines if line.strip()]
        print(table(runs))
        return
    corpus = Path(args.corpus)
    if not corpus.is_file():
        sys.exit(f"no corpus at {corpus}: give --corpus PATH (tinyshakespeare.txt)")
    text = corpus.read_text(encoding="utf-8")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.chars:
            part = Path(tmp) / f"{corpus.stem}-{n // 1000}k.txt"
            part.write_text(text[:n], encoding="utf-8")
            choice = [] if args.no_choice else [[]]
            for extra in [["--dropout", f"{d:g}"] for d in args.dropouts] + choice:
                extra = args.train + extra
                run = train_charrnn(part, args.budget, extra, args.device, steps=args.steps)
                runs.append(run)
                print(f"{part.name} {run['options']}: {run['best_val']:.4f}", file=sys.stderr)
                if args.log:
                    with open(args.log, "a") as f:
                        f.write(json.dumps(run) + "\n")
    print(header(args.device))
    print(table(runs))


def table(runs: list[dict]) -> str:
    """A row for each text and budget: the passes its runs made (epochs, lowest to highest), the
    model, and best.pt's validation loss (nats/char) for each dropout, the best in bold; the
    run with charrnn's own choice (no --dropout given) names the dropout it chose."""
    dropouts = sorted({r["dropout"] for r in runs if _given(r)})
    rows = {}
    for r in runs:  # a row for each text, budget, model and seed (`-- --seed N`: runs to compare)
        budget = f"{r['budget_steps']:,} steps" if r.get("budget_steps") else f"{r['budget_s']:g} s"
        model = r["model"].rsplit(" emb", 1)[0]
        options = r["options"].split()
        if "--seed" in options[:-1]:
            model += f", seed {options[options.index('--seed') + 1]}"
        rows.setdefault((r["corpus"], r["corpus_chars"], budget, model), []).append(r)
    head = ["text", "budget", "passes", "model"] + [f"dropout {d:g}" for d in dropouts]
    lines = ["| " + " | ".join([*head, "charrnn's choice"]) + " |"]
    lines.append("|" + " --- |" * (len(head) + 1))
    for (name, chars, budget, model), group in rows.items():
        given = {r["dropout"]: r["best_val"] for r in group if _given(r)}
        best = min(r["best_val"] for r in group)
        cells = [_loss(given[d], best) if d in given else "" for d in dropouts]
        chosen = [f"{r['dropout']:g}: {_loss(r['best_val'], best)}" for r in group if not _given(r)]
        epochs = sorted(r["epochs"] for r in group)
        passes = f"{epochs[0]:.1f}-{epochs[-1]:.1f}" if len(epochs) > 1 else f"{epochs[0]:.1f}"
        row = [f"{name} ({chars:,} characters)", budget, passes, model, *cells]
        lines.append("| " + " | ".join([*row, ", ".join(chosen)]) + " |")
    return "\n".join(lines)


def _given(run: dict) -> bool:
    """Whether the run was given its dropout (else it is charrnn's choice)."""
    return "--dropout" in run["options"].split()


def _loss(x: float, best: float) -> str:
    return f"**{x:.4f}**" if x == best else f"{x:.4f}"


def parse() -> argparse.Namespace:
    """The options; anything after `--` goes to every `charrnn train` (args.train)."""
    argv = sys.argv[1:]
    train = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=136.5, help="seconds of training a run")
    p.add_argument("--steps", type=int, help="steps of training a run, instead of --budget")
    p.add_argument("--no-choice", action="store_true", help="skip the run of charrnn's choice")
    p.add_argument("--corpus", default=str(CORPUS.resolve()))
    p.add_argument("--chars", type=int, nargs="+", default=[100_000, 300_000, 600_000])
    p.add_argument("--dropouts", type=float, nargs="*", default=[0.1, 0.3, 0.5])
    p.add_argument("--log", help="append each run as a JSON line to this file")
    p.add_argument("--table", nargs="+", metavar="FILE", help="print the table of logged runs")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the runs train")
    args = p.parse_args(argv)
    args.train = train
    return args


if __name__ == "__main__":
    main()
