"""The live demo for the flow tests: one for the session, on free ports, in a temporary folder.

Tests that change the registry (policies, extra services) put policies back when they finish
and give extra services ids of their own, so the order of the tests does not matter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.live import LiveDemo, running_demo


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("flows-demo")) as live:
        yield live
