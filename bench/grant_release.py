"""What the grant-freshness changes cost per call, in one process (grant-freshness, 2026-11-29).

Usage: python bench/grant_release.py [--calls 20000] [--rounds 7] [--redis-url redis://...]

- `released_now` (oidc/grants.py): the release rule applied again to a grant's claims, as every
  code redemption, userinfo and refresh now does; with the policy unchanged and narrowed. From
  a registry held in memory, as the worker's cached view holds it (no store call).
- one Redis GET: what the OIDC school callback now spends first, opening the login record with
  the browser's cookie before taking it (wall and client CPU per call).

Prints the median over the rounds of the mean per call, in microseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.oidc.grants import released_now
from broker.store.redis_store import RedisStore
from tests.unit.test_oidc_grant_release import CLIENT, Registry, grantee


def per_call_us(call: Callable[[], object], calls: int, clock: Callable[[], int]) -> float:
    start = clock()
    for _ in range(calls):
        call()
    return (clock() - start) / calls / 1000


def median_us(
    call: Callable[[], object], calls: int, rounds: int, clock: Callable[[], int]
) -> float:
    return statistics.median(per_call_us(call, calls, clock) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    registry, who = Registry(), grantee()
    cpu = time.process_time_ns

    def release(attributes: frozenset[str]) -> float:
        registry.release(attributes)
        return median_us(lambda: released_now(registry, CLIENT, who), args.calls, args.rounds, cpu)

    print(
        f"released_now, policy unchanged: {release(frozenset({'given_name', 'affiliation', 'groups'})):.1f} us CPU"
    )
    print(f"released_now, policy narrowed:  {release(frozenset({'affiliation'})):.1f} us CPU")
    store = RedisStore(args.redis_url, key_prefix=f"kbbench:{uuid.uuid4().hex}:")
    try:
        calls = max(args.calls // 10, 1)
        get = lambda: store.get("login:absent")  # noqa: E731
        wall = median_us(get, calls, args.rounds, time.perf_counter_ns)
        print(
            f"Redis GET: {wall:.0f} us wall, {median_us(get, calls, args.rounds, cpu):.0f} us CPU"
        )
    finally:
        store.close()


if __name__ == "__main__":
    main()
