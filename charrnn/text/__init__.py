"""Where characters come from: sources, the catalog, the vocabulary, the cache, the batcher."""
