"""The discovery search itself (`SchoolDirectory`): building it, and `find()`, on a federation
of N schools without aliases and on the same federation with every K-th school given a former
name, interleaved in one process.

Usage: python bench/school_directory.py [--schools 3000] [--aliases 10] [--repeat 200]

The schools are `page_render.py --schools`'s (eight common names in forty towns) and its former
names. Each measurement alternates the two directories call by call, so both meet the same
machine; the figure is the fastest call (wall clock), which another job on the machine can only
slow down. Prints ms to build and µs per search, and how many schools each search found.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from page_render import FORMER_NAMES, NAMESAKES, TOWNS

from broker.core.model import School
from broker.core.school_search import SchoolDirectory

SEARCHES = ("gymnasium", "gymnasium leiden", "het baken", "lokatie zuid", "lyceym")


def federation(count: int, alias_every: int) -> list[School]:
    schools = []
    for n in range(count):
        aliases = ()
        if alias_every and n % alias_every == 0:
            aliases = (FORMER_NAMES[(n // alias_every) % len(FORMER_NAMES)],)
        town = TOWNS[(n // len(NAMESAKES)) % len(TOWNS)]
        name = NAMESAKES[n % len(NAMESAKES)]
        schools.append(
            School(
                f"B{n:05d}", name, f"https://login.school{n}.example", town=town, aliases=aliases
            )
        )
    return schools


def fastest(calls: tuple[Callable[[], object], Callable[[], object]], repeat: int) -> list[float]:
    """The fastest of `repeat` runs of each call, in ns, the two alternating."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, call in enumerate(calls):
            start = time.perf_counter_ns()
            call()
            best[i] = min(best[i], time.perf_counter_ns() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=3000)
    parser.add_argument("--aliases", type=int, default=10, help="every K-th school has one")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    plain, aliased = federation(args.schools, 0), federation(args.schools, args.aliases)
    print(f"{args.schools} schools: without aliases | every {args.aliases}th with a former name")
    build = fastest((lambda: SchoolDirectory(plain), lambda: SchoolDirectory(aliased)), 20)
    print(f"{'build':<18} {build[0] / 1e6:8.1f} ms | {build[1] / 1e6:8.1f} ms")
    first, second = SchoolDirectory(plain), SchoolDirectory(aliased)
    for query in SEARCHES:
        found = [first.find(query).total, second.find(query).total]
        spent = fastest((partial(first.find, query), partial(second.find, query)), args.repeat)
        print(
            f"{query!r:<18} {spent[0] / 1e3:8.0f} µs | {spent[1] / 1e3:8.0f} µs"
            f"   (found {found[0]} | {found[1]})"
        )


if __name__ == "__main__":
    main()
