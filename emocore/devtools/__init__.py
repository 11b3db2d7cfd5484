"""Tooling for the project's tests and benchmarks, shipped with the package so both import it the same way.

`emocore.devtools.media` builds synthetic and derived video files (`from emocore.devtools import media`).
Nothing in the rest of `emocore` imports this package.
"""
