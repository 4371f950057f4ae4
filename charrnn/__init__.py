"""charrnn: character-level text generation with a stacked LSTM.

Importing the package does no work and does not import torch, so `charrnn --help` stays instant.
"""

__version__ = "0.2.0"
