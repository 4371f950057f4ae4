"""Training: opening a run, the loop, evaluation and the cold-start check, threads, torchrun."""
