"""The benchmarks' demo instance: one client address sending hundreds of logins a minute.

The production rate limits (docs/configuration.md, `[rate_limits]`) would refuse such a client
after a few hundred logins (`sso = "600/minute"` counts every login's first request), so the
benchmarks switch them off, or (`rate_limits=True`) keep the limiter on with limits it cannot
reach, to measure what it costs.
"""

from __future__ import annotations

import re
from pathlib import Path

from broker.cli.instance import CONFIG_NAME, init_instance
from broker.web.rate_limits import LIMITED_ENDPOINTS

# Every limit the broker applies per client address, as it names them.
LIMITED = sorted(set(LIMITED_ENDPOINTS.values()))


def bench_instance(
    directory: Path,
    port: int,
    *,
    store_url: str | None = None,
    registry_url: str | None = None,
    rate_limits: bool = False,
) -> Path:
    """Make (or set again) the instance `prepare_demo` then reuses; returns its configuration
    file."""
    config = directory / CONFIG_NAME
    if not config.exists():
        init_instance(
            directory, f"http://127.0.0.1:{port}", "demo.ketenbroker.example", "Ketenbroker bench"
        )
    text = config.read_text(encoding="utf-8")
    if store_url:
        text = text.replace('url = "memory://"', f'url = "{store_url}"')
    if registry_url:
        text = re.sub(r'url = "sqlite:///registry.sqlite3"', f'url = "{registry_url}"', text)
    limit = "1000000/minute" if rate_limits else ""
    names = "|".join(LIMITED)
    text = re.sub(rf'^({names}) = "[^"]*"$', rf'\1 = "{limit}"', text, flags=re.M)
    config.write_text(text, encoding="utf-8")
    return config
