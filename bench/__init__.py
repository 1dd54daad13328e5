"""enzpy's benchmark harness: primal vs enzpy vs finite differences vs native C (and later peers).

Run with ``python -m bench``; see bench/README.md.
"""
