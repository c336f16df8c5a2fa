"""The client CPU of the OIDC login's store calls that were folded, old form against new, on Redis.

Usage: python bench/oidc_store_trips.py [--calls 2000] [--rounds 7] [--redis-url redis://...]

Request-level figures (request_cpu.py) cannot show a cut of about 0.1 ms: two federations of
one run differ by more than that, even `GET /healthz`. This measures the two calls alone, in
one process, in alternating rounds (so a drift of the machine's speed hits both forms alike),
with the broker's own `RedisStore` and `TokenVault`:

- userinfo: an access token that does not name its family (the old form, still accepted: its
  record, then the family's revocation mark, two round trips) against one that does (one batch);
- the login's last step (`POST /notice/<id>`): the code's writes and the SSO session's three
  records as two batches (as before) against one.

Prints the median of the rounds' mean CPU per call, in microseconds. Keys go under a prefix of
their own, with TTLs of a minute, and are deleted at the end.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.login.sealed import SealedStore
from broker.oidc.grants import Grantee, IssuedCode, TokenVault, access_token_for
from broker.store.redis_store import RedisStore


def cpu_us(call: Callable[[], object], calls: int) -> float:
    start = time.process_time_ns()
    for _ in range(calls):
        call()
    return (time.process_time_ns() - start) / calls / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    prefix = f"kb-bench-trips-{secrets.token_hex(4)}:"
    store = RedisStore(args.redis_url, key_prefix=prefix)
    vault = TokenVault(store, code_ttl=60, access_ttl=60, refresh_ttl=60)
    grantee = Grantee("a" * 64, {"given_name": "Sanne"}, 1, None, "_sid", "f" * 22, 2**31)
    new_token, old_token = access_token_for(grantee), secrets.token_urlsafe(32)
    for token in (new_token, old_token):
        vault.put_tokens({"access_token": token, "scope": "openid"}, "rp", grantee)
    issued = IssuedCode("rp", "https://rp.example/cb", "openid", "n", None, None, grantee)
    code = secrets.token_urlsafe(36)
    # The session's records as finish writes them: the sealed session, its filing, its services.
    session = [
        SealedStore.put_op(secrets.token_bytes(32), kind, secrets.token_hex(8), {"x": "y" * n}, 60)
        for kind, n in (("sso", 400), ("school-sid", 40), ("sso-services", 200))
    ]
    forms: dict[str, Callable[[], object]] = {
        "userinfo, old: get, get": lambda: vault.access(old_token),
        "userinfo, new: one batch": lambda: vault.access(new_token),
        "notice, old: two batches": lambda: (
            store.batch(vault.code_writes(code, issued)),
            store.batch(session),
        ),
        "notice, new: one batch": lambda: store.batch(vault.code_writes(code, issued) + session),
    }
    assert vault.access(new_token) is not None and vault.access(old_token) is not None
    results: dict[str, list[float]] = {name: [] for name in forms}
    try:
        for _ in range(args.rounds):
            for name, call in forms.items():
                results[name].append(cpu_us(call, args.calls))
    finally:
        client = store._client()  # its own keys, under its own prefix
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        store.close()
    print(f"client CPU per call, us (median of {args.rounds} rounds of {args.calls} calls)")
    for name, values in results.items():
        print(f"  {name:28} {statistics.median(values):7.1f}")


if __name__ == "__main__":
    main()
