"""The content-addressed store of finished runs: index, artifacts, errors, pruning and its command line."""
