"""The network and its configuration: cells, presets, the state."""
