"""`charrnn sample`: stream new text from a checkpoint to stdout."""

from __future__ import annotations

import os
import sys

import click

from charrnn.cli.common import checkpoint_dir_option, device_option, user_errors


@click.command(
    epilog="""\b
Examples:
  charrnn sample                                # 500 characters from the latest run
  charrnn sample --temp 0.5 --length 2000       # safer, more repetitive text
  charrnn sample --prime "ROMEO:" --seed 1      # the same text every time
  charrnn sample --checkpoint shakespeare --top-p 0.9 | tee out.txt
  charrnn sample -c checkpoints/notes/last.pt --temp 0   # greedy: always the likeliest
"""
)
@click.option(
    "-c",
    "--checkpoint",
    metavar="PATH|RUN",
    help="A checkpoint file, a run folder or a run name (then its best.pt); "
    "default: the most recently updated run.",
)
@click.option(
    "-t",
    "--temp",
    "temperature",
    type=click.FloatRange(0),
    default=0.8,
    show_default=True,
    help="Temperature: 0 greedy, <1 safer, >1 wilder.",
)
@click.option("--top-k", type=click.IntRange(1), help="Sample among the k likeliest characters.")
@click.option(
    "--top-p",
    type=click.FloatRange(0, 1, min_open=True),
    help="Sample among the likeliest characters holding probability p (nucleus).",
)
@click.option(
    "-l",
    "--length",
    type=click.IntRange(0, 10**9),
    default=500,
    show_default=True,
    help="Characters to generate.",
)
@click.option("-p", "--prime", default="", help="Text to start from (it is read, then echoed).")
@click.option("--no-echo-prime", is_flag=True, help="Print only the continuation.")
@click.option("-s", "--seed", type=int, help="Seed: the same seed gives the same text.")
@device_option("cpu", " One character at a time is fastest on the CPU.")
@checkpoint_dir_option
@user_errors
def sample(
    checkpoint,
    temperature,
    top_k,
    top_p,
    length,
    prime,
    no_echo_prime,
    seed,
    device,
    checkpoint_dir,
):
    """Write new text in the style of a trained run to stdout, as it is generated."""
    from charrnn import checkpoint as ckpt
    from charrnn import runs
    from charrnn.cli.common import resolve_device
    from charrnn.sampler import SampleConfig, Sampler

    config = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    path = runs.resolve_checkpoint(checkpoint, checkpoint_dir)
    model, vocab = ckpt.restore_model(ckpt.load(path), path)
    sampler = Sampler(model.to(resolve_device(device)), vocab, config)
    sampler.prime(prime)
    out = click.get_text_stream("stdout")
    text_end = ""
    try:
        if prime and not no_echo_prime:
            out.write(prime)
            text_end = prime[-1]
        for ch in sampler.generate(length):
            out.write(ch)
            out.flush()  # stream: `charrnn sample | tee f` shows text as it is made
            text_end = ch
        if out.isatty() and text_end != "\n":
            out.write("\n")
        out.flush()
    except BrokenPipeError:
        _quiet_exit_on_closed_pipe()
    except KeyboardInterrupt:
        out.flush()
        sys.exit(130)


def _quiet_exit_on_closed_pipe():
    """The reader went away (`| head`): stop quietly, like any Unix filter."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so Python's own final flush cannot fail again
    sys.exit(0)
