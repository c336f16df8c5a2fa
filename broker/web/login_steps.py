"""Transitional: the names logout_routes.py and portal/ still import from here, until they import
from the modules that now hold them (login_steps.py was split: login_upstream.py, login_finish.py,
service_answers.py; `broker()` is in wiring.py). Start-up only; nothing on the login path runs
through this module. Delete it once those importers point at the new homes."""

from __future__ import annotations

from broker.web.login_finish import session_and_services
from broker.web.service_answers import autopost, content_security_policy, origin_of
from broker.web.wiring import broker

__all__ = ["autopost", "broker", "content_security_policy", "origin_of", "session_and_services"]
