"""The gateway's Prometheus metrics: requests by method, route template and status, their
latency, and requests in flight; served at GET /metrics.

Under gunicorn each worker process counts into files of PROMETHEUS_MULTIPROC_DIR (set by
`ops.serve` before the workers fork, see `prepare_multiprocess`), and a scrape adds up every
worker's files, whichever worker answers it (`ops.serve.serve_gateway` sets it up). Without that variable (tests with the Flask
test client) the process's own registry is served.

The route label is the URL rule's template (`/api/v1/users/<string:user_id>`), never the
path: ids and tokens in paths must not become labels; a path no rule matches is "unmatched".
"""
from __future__ import annotations

import hmac
import os
import time

from apiflask import APIBlueprint
from flask import Flask, Request, Response, current_app, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from kernel.config import Config
from kernel.errors import Unauthorized

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
# Labels never come from raw input: gunicorn accepts any upper-case token as a method, and
# each new label value would be a new series in every worker's files until a restart.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"

REQUESTS = Counter("gatehouse_http_requests", "HTTP requests the gateway answered.", ["method", "route", "status"])
DURATION = Histogram("gatehouse_http_request_duration_seconds", "Time the gateway took to answer a request.",
                     ["method", "route"])
IN_FLIGHT = Gauge("gatehouse_http_requests_in_flight", "Requests the gateway is answering now.",
                  multiprocess_mode="livesum")

bp = APIBlueprint("metrics", __name__)


def route_of(req: Request) -> str:
    """The label of a request's route: its URL rule's template, or UNMATCHED."""
    return req.url_rule.rule if req.url_rule is not None else UNMATCHED


def method_of(req: Request) -> str:
    """The label of a request's method: one of KNOWN_METHODS, or OTHER_METHOD."""
    return req.method if req.method in KNOWN_METHODS else OTHER_METHOD


def token_accepted(expected: str, authorization: str | None) -> bool:
    """Whether an Authorization header carries the metrics token (any header, when none is set)."""
    if not expected:
        return True
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected.encode())


@bp.get("/metrics")
@bp.doc(hide=True)  # text for Prometheus, not part of the JSON API
def metrics():
    if not token_accepted(current_app.config["METRICS_TOKEN"], request.headers.get("Authorization")):
        raise Unauthorized("A valid metrics token is required.", code="unauthorized")
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    encode, content_type = choose_encoder(request.headers.get("Accept"))  # what the scraper asks for
    return Response(encode(registry), headers={"Content-Type": content_type})


def install(app: Flask, config: Config) -> None:
    """Serves /metrics and counts every request (call before the app's other before_request
    functions: the in-flight gauge goes up first and always comes down at teardown)."""
    app.config["METRICS_TOKEN"] = config["GATEHOUSE_METRICS_TOKEN"]
    app.register_blueprint(bp)

    @app.before_request
    def _enter():
        g.metrics_started = time.perf_counter()
        IN_FLIGHT.inc()

    @app.after_request
    def _count(response):
        route, method = route_of(request), method_of(request)
        REQUESTS.labels(method=method, route=route, status=str(response.status_code)).inc()
        DURATION.labels(method=method, route=route).observe(time.perf_counter() - g.get("metrics_started", time.perf_counter()))
        return response

    @app.teardown_request
    def _leave(_error):
        if g.pop("metrics_started", None) is not None:
            IN_FLIGHT.dec()
