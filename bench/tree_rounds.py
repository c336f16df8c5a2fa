"""Before and after, each in a child process of its own: the same bench script run against two
broker trees in alternating rounds (A B B A ...), so the drift of a shared machine falls on both
alike, and a check that each child really imported the tree it was meant to measure."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent  # this checkout
Figures = dict[str, float]


def trees(parser: argparse.ArgumentParser, compare: Path | None) -> dict[str, Path | None]:
    """The trees to measure by name: this checkout, and `--compare`'s before it."""
    if compare is None:
        return {"this": None}
    if not (compare / "broker").is_dir():
        parser.error(f"--compare: no broker/ in {compare}")
    return {"before": compare, "this": None}


def run_child(script: str, tree: Path | None, arguments: list[str]) -> Figures:
    """`script --child ARGUMENTS` with the broker of `tree` (None: this checkout). The child's
    last line of output is a JSON object of figures with `"broker": broker.__file__` in it."""
    measured = (tree or HERE).resolve()
    env = dict(os.environ)
    # The broker from the tree measured; `bench` (the scripts' helpers) from this checkout.
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (measured, HERE))
    # The script by its path, not `-m`: `-m` would put the working folder (this checkout) before
    # PYTHONPATH, and the other tree's broker would never be imported.
    command = [sys.executable, str(Path(script).resolve()), "--child", *arguments]
    out = subprocess.run(
        command, env=env, check=True, capture_output=True, text=True, cwd=HERE
    ).stdout
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    imported = Path(figures.pop("broker")).parent
    if imported != measured / "broker":
        raise SystemExit(f"the child imported the broker from {imported}, not from {measured}")
    return figures


def alternating(
    named: dict[str, Path | None], rounds: int, measure: Callable[[Path | None], Figures]
) -> dict[str, list[Figures]]:
    """Every tree's figures, round by round, the order reversed every other round."""
    names = list(named)
    results: dict[str, list[Figures]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(measure(named[name]))
    return results


def child_output(figures: Figures) -> str:
    """What a child prints last: its figures and where its broker came from."""
    import broker

    return json.dumps(figures | {"broker": broker.__file__})
