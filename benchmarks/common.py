"""What the benchmark scripts share: where things are, command-line parsing, starting a benchmark module.

Imports only the standard library, so the reference-side scripts (``benchmarks/reference/reference_*.py``),
which run in the environment of ``make bench-env`` without xcebra, can use it too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["REPO", "RESULTS", "SCRATCH", "REFERENCE_PYTHON", "parse_params", "parse_seeds", "run_module"]

#: the repository root; every command in benchmarks/README.md runs from here
REPO = Path(__file__).resolve().parent.parent
#: committed tables and figures (the docs' results pages include and plot them)
RESULTS = REPO / "benchmarks" / "results"
#: large or intermediate files: data, models, demo runs (ignored by git)
SCRATCH = REPO / "benchmarks" / "scratch"
#: the interpreter of the reference package's environment (``make bench-env``)
REFERENCE_PYTHON = REPO / ".venv-bench" / "bin" / "python"


def parse_params(items: list[str], parser: argparse.ArgumentParser) -> dict:
    """``--param NAME=JSON`` values -> {name: value}; a parser error naming the bad item otherwise."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param needs NAME=JSON; got {item!r}")
        try:
            overrides[name] = json.loads(value)
        except json.JSONDecodeError:
            parser.error(f"--param {name}: {value!r} is not JSON (strings need quotes: '\"...\"')")
    return overrides


def parse_seeds(text: str, parser: argparse.ArgumentParser) -> list[int]:
    """``--seeds 0,1,2`` -> [0, 1, 2]; a parser error for anything else or an empty list."""
    try:
        seeds = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers; got {text!r}")
    if not seeds:
        parser.error("--seeds is empty")
    return seeds


def run_module(module: str, *args, python: str | Path = sys.executable, env: dict | None = None,
               **kwargs) -> subprocess.CompletedProcess:
    """``python -m module args...`` in a child process that finds the ``benchmarks`` package from any
    working directory (the repository root is put first on its ``PYTHONPATH``).

    ``env``: the child's environment (default: this process's); other keyword arguments go to
    ``subprocess.run``.
    """
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(part for part in (str(REPO), env.get("PYTHONPATH")) if part)
    return subprocess.run([str(python), "-m", module, *map(str, args)], env=env, **kwargs)
