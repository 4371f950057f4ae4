"""Every default a user meets, stated once: the configs, the library's signatures and the command
line's options (and so `--help`) read them here. Plain constants, no torch: `--help` stays quick.

A value a checkpoint stores is not a default: an old checkpoint that lacks one is read as it was
written (ModelConfig's cell, a run's encoding), whatever these become.
"""

SEED = 1337  # of a training run: the same corpus, options and seed give the same weights
VAL_FRAC = 0.1  # share of the text, at its end, to validate on
GRAD_CLIP = 1.0  # the gradient's norm before a step is scaled down to this at most
CELL = "lstm"  # the recurrent cell of a new model
SIZE = "auto"  # the model preset: chosen from the time budget and the corpus (presets.choose)
CHECKPOINT_DIR = "checkpoints"  # where runs are kept, under the current folder

TEMPERATURE = 0.8  # of sampling: 0 the likeliest character, below 1 safer, above 1 wilder
SAMPLE_LENGTH = 200  # characters of each sample written while training (--sample-every)
# Sampling seeds go into JSON; up to 2^53-1 every JSON reader (an IEEE double) keeps them exactly,
# so the `seed` of `--json` output, given back to --seed, makes the same text.
MAX_SEED = 2**53 - 1

ENCODING = "utf-8"  # what text (a corpus, a prime, a file to score) is read as
UNKNOWN = "error"  # characters a model never saw are refused (vocab.UNKNOWN_POLICIES)
