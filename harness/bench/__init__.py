"""``python -m harness bench``: the harness's speed against a bare loop, and the GPU acceptance script."""
