"""Command-line helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import json


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
