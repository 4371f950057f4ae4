"""charrnn: character-level text generation with a stacked LSTM.

Importing the package does no work and does not import torch, so `charrnn --help` stays instant.
"""

import warnings

__version__ = "0.2.0"

# torch warns on import when numpy is absent; charrnn never uses numpy, so neither a command's user
# nor a library caller need see it (one message, filtered by its text: nothing else is hidden).
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
