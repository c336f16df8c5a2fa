"""Gauges of the key schedules, computed when Prometheus scrapes, never on the login path.

The signing key set (broker/keys/live.py): seconds until a waiting key signs, until the first
published key with a retirement date leaves, until the signing key's SAML certificate expires.
The pseudonym migration windows: chains' key rotations (pseudonym_rotation.py) and services'
chain moves (chain_move.py), counted alike: how many are open, and seconds until the nearest
ends. No label at all: a chain or service id would name a customer, and the questions are
global ("is a roll due?", "does a window end soon?"); `keys status` and `pseudonym-key status`
say which. A gauge without a moment ahead (no key waiting, no window open) is left out, so an
alert can ask for its absence (docker/alerts.yml).

A scrape costs the key choice (in memory), one `stat` of the signing certificate and the worker's
cached registry view (in memory; at most one generation query a second, as on any request).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric

from broker.core import key_schedule
from broker.core.errors import StoreUnavailable
from broker.core.pseudonym_rotation import window_outlook
from broker.keys.certificate_expiry import CertificateExpiry
from broker.web.wiring import Broker

log = logging.getLogger("broker.web.key_metrics")

NEXT_SIGNS = "ketenbroker_signing_key_next_signs_seconds"
OLDEST_RETIRES = "ketenbroker_signing_key_retires_seconds"
CERTIFICATE_EXPIRES = "ketenbroker_signing_certificate_expires_seconds"
WINDOWS_OPEN = "ketenbroker_pseudonym_key_windows_open"
WINDOW_ENDS = "ketenbroker_pseudonym_key_window_ends_seconds"

# Certificates are parsed once per file version, for every app of the process.
_EXPIRY = CertificateExpiry()


class KeyScheduleCollector:
    """A prometheus_client collector over one worker's broker (registered per scrape)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def collect(self) -> Iterator[Metric]:
        yield from self._signing_keys()
        yield from self._pseudonym_windows()

    def _signing_keys(self) -> Iterator[Metric]:
        keys = self._broker.keys
        now = keys.now()
        choice = keys.current()
        ahead = key_schedule.outlook(choice, now)
        if ahead.next_signs_in is not None:
            yield _gauge(
                NEXT_SIGNS, "Seconds until the waiting signing key takes over.", ahead.next_signs_in
            )
        if ahead.retires_in is not None:
            yield _gauge(
                OLDEST_RETIRES,
                "Seconds until the oldest published signing key leaves the metadata and JWKS.",
                ahead.retires_in,
            )
        try:
            expires = _EXPIRY.not_after(choice.signing.files.saml_cert)
        except (OSError, ValueError):
            # /readyz fails the keys check for an unreadable certificate; here it is left out.
            log.warning("signing certificate unreadable", extra={"reason": "key_set_unreadable"})
            return
        yield _gauge(
            CERTIFICATE_EXPIRES,
            "Seconds until the signing key's SAML certificate expires (negative: expired).",
            expires - now,
        )

    def _pseudonym_windows(self) -> Iterator[Metric]:
        view = self._broker.view
        try:
            rotations, moves = view.pseudonym_key_versions(), view.chain_moves()
        except StoreUnavailable:
            return  # the registry is down: /readyz and the login metrics say so
        windows = window_outlook([*rotations, *moves], datetime.now(UTC))
        yield _gauge(
            WINDOWS_OPEN,
            "Pseudonym migration windows open now (key rotations and chain moves).",
            windows.open,
        )
        if windows.nearest_end_in is not None:
            yield _gauge(
                WINDOW_ENDS,
                "Seconds until the nearest open pseudonym migration window ends.",
                windows.nearest_end_in,
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
