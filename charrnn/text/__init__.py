"""Where characters come from, each module importing only those above it in this path:

decode     bytes -> text: encodings, byte-order marks, line ends
sources    files, folders, pipes, stdin as Sources read in chunks
cache      the cache folder, written by many processes at once
recall     the recall corpus (a built-in one)
catalog    corpora by name: downloaded once, or built offline
resolve    what the user named -> Sources
vocab      characters <-> ids
data       ids: compact dtypes, the split, the stream batcher
encoded    Sources -> ids, encoded once and memory-mapped from the cache
places     where in which file a stretch of the validation split is
"""
