"""What one metadata lookup costs as the federation grows, and the discovery page that makes one
per listed school.

Usage: PYTHONPATH=$PWD python bench/metadata_lookup.py [--rounds 2] [--compare DIR] [--no-pages]

For 10, 200 and 2,000 registered SAML schools (and as many services), each its own metadata
document as the broker's registry gives them, the broker's own pysaml2 views are built the way
a worker builds them (`entities.idp_config`/`sp_config` and `ParsedMetadata`), and the lookups a
login makes are timed for the first, middle and last registered entity: the school's Redirect
SSO endpoint (`POST /discovery`, and the discovery page's CSP per shown school), its signing
keys (the ACS), the service's ACS (the answer), `metadata[entity_id]` (the SSO request), and an
unknown entity's refusal. A figure is the median of batches, µs per call (`time.thread_time`).

Then the discovery page's part that grows with the federation: the sign-in origins of 200 shown
schools spread over 2,000 (`SamlBack.sso_origin`, one per shown school), and, unless
`--no-pages`, whole discovery pages (`discovery_page` in a request context of the demo broker):
200 SAML schools all listed, and a search among 2,000 that shows SHOWN_AT_MOST of them.

With `--compare DIR` (a tree with `broker/` in it, e.g. `git archive <rev> broker | tar -x -C
DIR`) every round runs both trees, each in a process of its own, in the order ABBA.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tree_rounds import alternating, child_output, run_child, trees

from bench.metadata_aggregate import certificate_body, idp_entity, sp_entity

SIZES = (10, 200, 2000)
MD_NS = (
    'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
)
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
PORT = 8410  # only in URLs: nothing listens


def school_id(n: int) -> str:
    return f"https://idp{n}.school.example/metadata"


def service_id(n: int) -> str:
    return f"https://sp{n}.publisher.example/metadata"


def documents(count: int, cert: str) -> tuple[list[str], list[str]]:
    """`count` school and `count` service documents, one entity each (as registered)."""

    def alone(xml: str) -> str:
        return xml.replace("<md:EntityDescriptor ", f"<md:EntityDescriptor {MD_NS} ", 1)

    schools = [
        alone(idp_entity(school_id(n), f"https://idp{n}.school.example/sso", cert))
        for n in range(count)
    ]
    services = [
        alone(sp_entity(service_id(n), f"https://sp{n}.publisher.example/acs", cert))
        for n in range(count)
    ]
    return schools, services


def per_call(call: Callable[[], Any], calls: int) -> float:
    """µs per call: the median of 5 batches."""
    batches = []
    for _ in range(5):
        start = time.thread_time_ns()
        for _ in range(calls):
            call()
        batches.append((time.thread_time_ns() - start) / calls / 1000)
    return statistics.median(batches)


def refused(call: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            call()
        except Exception:  # the refusal is what is timed
            return
        raise AssertionError("an unknown entity was answered")

    return run


def lookups(folder: Path) -> dict[str, float]:
    from saml2.client import Saml2Client
    from saml2.server import Server

    from broker.certificates import self_signed_pair
    from broker.cli.instance import init_instance
    from broker.config import load_settings
    from broker.saml.entities import ParsedMetadata, idp_config, sp_config
    from broker.saml.xmlsig import enable_inprocess_crypto

    enable_inprocess_crypto()
    settings = load_settings(init_instance(folder / "kb", "https://kb.example", "kb", "KB"))
    cert = certificate_body(self_signed_pair("member")[1])
    all_schools, all_services = documents(max(SIZES), cert)
    views = (ParsedMetadata(), ParsedMetadata())  # parsed once, at the largest size
    results: dict[str, float] = {}
    for size in sorted(SIZES, reverse=True):
        sp, idp = sp_config(settings, []), idp_config(settings, [])
        views[0].load(sp, all_schools[:size])
        views[1].load(idp, all_services[:size])
        client, server = Saml2Client(config=sp), Server(config=idp)
        results |= timed_lookups(client.metadata, server.metadata, size)
        if size == max(SIZES):
            results["csp 200 of 2000 (ms)"] = csp_origins(client, size) / 1000
    return results


def timed_lookups(schools: Any, services: Any, size: int) -> dict[str, float]:
    """The lookups of a login, for the first, middle and last of `size` registered entities."""
    calls = 2000 if size < 2000 else 200
    results: dict[str, float] = {}
    for where, n in (("first", 0), ("middle", size // 2), ("last", size - 1)):
        school, service = school_id(n), service_id(n)
        timed: dict[str, Callable[[], Any]] = {
            "sso": partial(schools.single_sign_on_service, school, REDIRECT),
            "certs": partial(schools.certs, school, "idpsso", "signing"),
            "acs": partial(services.assertion_consumer_service, service, POST),
            "getitem": partial(services.__getitem__, service),
        }
        for name, call in timed.items():
            assert call(), (name, n)
            results[f"{name} {size} {where}"] = per_call(call, calls)
    unknown = "https://nobody.example/metadata"
    results[f"unknown {size}"] = per_call(
        refused(lambda: schools.single_sign_on_service(unknown, REDIRECT)), calls
    )
    return results


def csp_origins(client: Any, size: int) -> float:
    """µs for the sign-in origins of 200 schools spread over `size` (SamlBack.sso_origin)."""
    from broker.core.model import School
    from broker.saml.back import SamlBack

    class Entities:  # what SamlBack.sso_origin reads of SamlEntities
        def __init__(self) -> None:
            self.client = client

    back = SamlBack(Entities(), None)  # type: ignore[arg-type]
    shown = [School(f"S{n}", f"School {n}", school_id(n)) for n in range(0, size, size // 200)]

    def page() -> None:
        origins = {back.sso_origin(school) for school in shown}
        assert len(origins) == len(shown)

    return per_call(page, 10)


def pages(folder: Path) -> dict[str, float]:
    """µs per discovery page: 200 SAML schools listed; a search among 2,000."""
    from broker.core.school_search import SHOWN_AT_MOST

    results: dict[str, float] = {}
    for size, query, shown in ((200, "", 200), (2000, "school", SHOWN_AT_MOST)):
        results[f"page {shown} shown among {size}"] = page_cost(folder, size, query, shown)
    return results


def page_cost(folder: Path, size: int, query: str, shown: int) -> float:
    """µs per discovery page of the demo broker with `size` schools, searched for `query`."""
    from broker.certificates import self_signed_pair
    from broker.cli.demo import prepare_demo
    from broker.core.model import School
    from broker.login.login_model import LoginRecord, LoginRequest
    from broker.registry import SqlRegistry
    from broker.web.discovery import discovery_page
    from broker.web.wiring import broker

    schools, _ = documents(size, certificate_body(self_signed_pair("member")[1]))
    settings, apps = prepare_demo(folder / f"demo{size}", PORT)
    app = apps[settings.base_url]
    registry = SqlRegistry(settings.registry_url, seal=settings.secret_seal())
    # Names in another order than registration: the shown schools are spread over the
    # federation, not its first entries.
    for n in range(size - 2):
        name = f"School {(n * 7919) % size:04d}"
        registry.add_school(School(f"B{n:05d}", name, school_id(n)), schools[n])
    registry.close()
    with app.app_context():
        service = next(s for s in broker().view.services() if s.oidc is None)
    record = LoginRecord("L" * 43, LoginRequest(service.id), 1.0)
    path = "/saml/idp/sso?SAMLRequest=x"

    def page() -> None:
        with app.test_request_context(path, headers={"Accept-Language": "nl"}):
            discovery_page(record, query)

    page()  # the worker's first request builds its pysaml2 views
    with app.test_request_context(path, headers={"Accept-Language": "nl"}):
        policy = discovery_page(record, query).headers["Content-Security-Policy"]
    assert policy.count("school.example") >= shown - 2, policy[:200]
    return per_call(page, 20)


def measure(with_pages: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kb-bench-mdlookup-") as tmp:
        results = lookups(Path(tmp))
        if with_pages:
            results |= pages(Path(tmp))
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--compare", type=Path, help="the other tree (its broker/ inside)")
    parser.add_argument("--no-pages", action="store_true", help="lookups only (quicker)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(child_output(measure(not args.no_pages)))
        return
    named = trees(parser, args.compare)
    extra = ["--no-pages"] if args.no_pages else []
    rounds = alternating(named, args.rounds, lambda tree: run_child(__file__, tree, extra))
    names = list(named)
    print(f"µs per call unless marked, median of {args.rounds} rounds (ABBA); [every round]")
    for figure in rounds[names[0]][0]:
        cells = []
        for name in names:
            values = [f[figure] for f in rounds[name]]
            each = " ".join(f"{v:.1f}" for v in values)
            cells.append(f"{name} {statistics.median(values):9.1f} [{each}]")
        print(f"{figure:<28} " + "   ".join(cells))


if __name__ == "__main__":
    main()
