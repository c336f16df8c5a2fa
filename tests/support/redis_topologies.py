"""Redis servers a test starts and stops itself, on free loopback ports: a master with a replica
watched by a sentinel, and a small cluster. Never the shared Redis on 6379."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.support.live import bindable, free_ports

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
# A test module that starts its own servers skips, with the reason, where the programs are missing.
NEEDS_REDIS_PROGRAMS = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None, reason="redis-server and redis-cli not installed"
)


@dataclass
class RedisProcesses:
    directory: Path
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, port: int, *extra: str, sentinel: bool = False) -> None:
        folder = self.directory / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f'dir "{folder}"',
            'save ""',
            "appendonly no",
            # A replica syncs at once (the default waits 5 s for more replicas to join).
            "repl-diskless-sync-delay 0",
            *extra,
        ]
        config = folder / "redis.conf"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        command = [str(REDIS_SERVER), str(config)] + (["--sentinel"] if sentinel else [])
        self.processes[port] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_ping(port)

    def stop(self, port: int) -> None:
        process = self.processes.pop(port)
        process.kill()
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for port in list(self.processes):
            self.stop(port)

    @contextmanager
    def frozen(self, port: int) -> Iterator[None]:
        """The server stopped (SIGSTOP) while the block runs: its sockets stay open and its
        clients' commands wait unanswered, as on a hung machine; then it goes on (SIGCONT)."""
        pid = self.processes[port].pid
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)


def wait_for_ping(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
    finally:
        client.close()


@dataclass(frozen=True)
class SentinelSetup:
    master_port: int
    replica_port: int
    sentinel_port: int
    service: str
    servers: RedisProcesses

    def url(self, db: int = 0, service: str | None = None) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{service or self.service}/{db}"


@contextmanager
def sentinel_setup(directory: Path) -> Iterator[SentinelSetup]:
    """A master, a replica and one sentinel (quorum 1) that fails over within seconds."""
    base = free_ports(3)
    master, replica, sentinel = base, base + 1, base + 2
    servers = RedisProcesses(directory)
    try:
        servers.start(master)
        servers.start(replica, f"replicaof 127.0.0.1 {master}")
        servers.start(
            sentinel,
            f"sentinel monitor kbtest 127.0.0.1 {master} 1",
            "sentinel down-after-milliseconds kbtest 1000",
            "sentinel failover-timeout kbtest 5000",
            sentinel=True,
        )
        yield SentinelSetup(master, replica, sentinel, "kbtest", servers)
    finally:
        servers.stop_all()


CLUSTER_BUS_OFFSET = 10000  # Redis Cluster listens on port + 10000 for its bus too


def _cluster_ports(count: int) -> list[int]:
    """Free client ports whose bus ports are valid (at most 65535) and free as well: a base
    above 55535 would make redis-server refuse to start in cluster mode."""
    for _ in range(50):
        base = free_ports(count)
        ports = [base + i for i in range(count)]
        if ports[-1] + CLUSTER_BUS_OFFSET <= 65535 and all(
            bindable(port + CLUSTER_BUS_OFFSET) for port in ports
        ):
            return ports
    raise RuntimeError("no free ports for a cluster and its bus")


@dataclass(frozen=True)
class ClusterSetup:
    ports: list[int]
    servers: RedisProcesses

    def url(self, userinfo: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+cluster://{userinfo}{hosts}"

    def master_of(self, key: str) -> int:
        """The port of the master that holds `key` (a full key, with the store's prefix)."""
        client: RedisCluster[bytes] = RedisCluster(
            host="127.0.0.1", port=self.ports[0], socket_timeout=1
        )
        try:
            node = client.get_node_from_key(key)
            assert node is not None
            return int(node.port)
        finally:
            client.close()


@contextmanager
def cluster_setup(directory: Path, masters: int = 3) -> Iterator[ClusterSetup]:
    """`masters` cluster-enabled servers joined into one cluster without replicas."""
    ports = _cluster_ports(masters)
    servers = RedisProcesses(directory)
    try:
        for port in ports:
            servers.start(
                port,
                "cluster-enabled yes",
                f'cluster-config-file "nodes-{port}.conf"',
                "cluster-node-timeout 2000",
            )
        subprocess.run(
            [str(REDIS_CLI), "--cluster", "create"]
            + [f"127.0.0.1:{port}" for port in ports]
            + ["--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in ports:  # each node learns of the others in its own time
            _wait_for_cluster_ok(port)
        yield ClusterSetup(ports, servers)
    finally:
        servers.stop_all()


def _wait_for_cluster_ok(port: int, seconds: float = 30.0) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    deadline = time.monotonic() + seconds
    try:
        while client.cluster("INFO").get("cluster_state") != "ok":
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not reach cluster_state:ok")
            time.sleep(0.1)
    finally:
        client.close()
