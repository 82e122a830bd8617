"""xcebra's benchmarks, grouped by the question they answer (index: benchmarks/README.md).

Run each script as a module from the repository root, e.g. ``python -m benchmarks.speed.speed``.
Nothing here is installed with xcebra, and nothing here imports xcebra at package import time, so the
reference-side scripts also run in the environment of ``make bench-env``.
"""
