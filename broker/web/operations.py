"""Operations endpoints beside `/healthz`: `/readyz` for load balancers and `/metrics` for
Prometheus (docs/operations.md), and the per-request timing of the login steps."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time

from flask import Blueprint, Response, g, request

from broker.web import metrics
from broker.web.health import failed_checks
from broker.web.key_metrics import KeyScheduleCollector
from broker.web.metadata_metrics import RULE_GAUGES, MetadataSourceCollector, RuleCollector
from broker.web.no_store import no_store
from broker.web.receipt_metrics import ReceiptRetentionCollector
from broker.web.wiring import broker

log = logging.getLogger("broker.web.operations")

operations = Blueprint("operations", __name__)

# A request that passed through a proxy carries one of these; its loopback address is the
# proxy's, not the asker's, so it is not trusted as "from this machine".
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


@operations.route("/readyz")
def readyz() -> Response:
    failed = failed_checks(broker())
    if failed:
        body = "not ready: " + ", ".join(failed) + "\n"
        return _plain(body, 503)
    return _plain("ready\n", 200)


@operations.route("/metrics")
def metrics_page() -> Response:
    refusal = _metrics_refusal()
    if refusal is not None:
        return refusal
    b = broker()
    body, content_type = metrics.render(
        KeyScheduleCollector(b),
        MetadataSourceCollector(b),
        RuleCollector(b, RULE_GAUGES),
        ReceiptRetentionCollector(b),
    )
    response = Response(body, content_type=content_type)
    return no_store(response)


@operations.before_app_request
def _start_clock() -> None:
    g.kb_started = time.perf_counter()


@operations.after_app_request
def _stop_clock(response: Response) -> Response:
    started = g.get("kb_started")
    if started is not None:
        metrics.step_took(request.endpoint, time.perf_counter() - started)
    return response


def _metrics_refusal() -> Response | None:
    settings = broker().settings.metrics
    if settings.token is not None:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), settings.token.encode()
        ):
            return None
    if settings.allow_loopback and _direct_from_loopback():
        return None
    log.warning("metrics refused token_presented=%s", "Authorization" in request.headers)
    if settings.token is not None:
        response = _plain("metrics need the bearer token\n", 401)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return _plain("metrics are readable from this machine only\n", 403)


def _direct_from_loopback() -> bool:
    if any(header in request.headers for header in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False  # a Unix socket or an unknown peer: not known to be this machine


def _plain(body: str, status: int) -> Response:
    response = Response(body, status=status, mimetype="text/plain")
    return no_store(response)
