"""charrnn train --sample-every: samples on stderr while training, and the run ends exactly as one
trained without them."""

import torch
from conftest import TINY_CLI


def test_samples_go_to_stderr_and_leave_the_run_unchanged(env, corpus_file, tmp_path):
    watch = ["--sample-every", "10", "--sample-length", "40", "--sample-prime", "ANNA:"]
    r = env(["train", str(corpus_file), "--steps", "20", "--name", "watched", *TINY_CLI, *watch])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip().endswith("watched/best.pt")  # stdout: the path alone
    assert (
        r.stderr.count("sample at step") == 2 and "sample at step 20 (temperature 0.8):" in r.stderr
    )
    after = r.stderr.split("sample at step 10 (temperature 0.8):\n", 1)[1]
    assert after.startswith("ANNA:") and len(after.split("\n", 1)[0]) >= 5  # the prime, continued
    r = env(["train", str(corpus_file), "--steps", "20", "--name", "plain", *TINY_CLI])
    assert r.exit_code == 0 and "sample at" not in r.stderr
    a = torch.load(tmp_path / "checkpoints/watched/last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "checkpoints/plain/last.pt", weights_only=True)["model"]
    for name, weight in a.items():  # sampling drew nothing from the run's random state
        assert torch.equal(weight, b[name]), name


def test_a_prime_the_corpus_cannot_spell_is_one_error_line(env, corpus_file, tmp_path):
    args = ["train", str(corpus_file), "--steps", "5", *TINY_CLI, "--sample-every", "2"]
    r = env([*args, "--sample-prime", "zq€"])
    assert r.exit_code == 1 and not r.stdout
    assert r.stderr.startswith("Error: --sample-prime has characters the corpus lacks")
    assert r.stderr.count("\n") == 1 and not (tmp_path / "checkpoints").exists()
