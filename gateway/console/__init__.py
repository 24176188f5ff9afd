"""The web console: a single page served at `/` (and at every other path that is not the API's),
its static assets under `/assets/`, and the offline API docs page at `/api/docs`.

The console is only a client of the public REST API: no route here reads or changes data.
Its code lives in `gateway/console/static/` (gateway/console/README.md describes the layout).
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, send_from_directory
from werkzeug.routing import PathConverter

from gateway.headers import CONSOLE_CSP, DOCS_CSP

HERE = Path(__file__).parent
STATIC = HERE / "static"


class ConsolePath(PathConverter):
    """Any path but the API's (an unknown one stays a JSON 404), the assets' and the plumbing's:
    those never match the console page's rule, so they stay "unmatched" (metrics, logs)."""

    regex = r"(?!(?:api|assets)(?:/|$)|(?:healthz|readyz|metrics)$)[^/].*?"


# Vendored files carry their version in their folder name: cached for a year. The console's
# own files may change with any release: revalidated (ETag) on every use.
VENDOR_CACHE = "public, max-age=31536000, immutable"
OWN_CACHE = "no-cache"

bp = Blueprint("console", __name__)


@bp.record_once
def _converter(state) -> None:
    app: Flask = state.app
    app.url_map.converters["console_path"] = ConsolePath


def _page(name: str, policy: str) -> Response:
    response = send_from_directory(HERE / "html", name, max_age=0)
    response.headers["Content-Security-Policy"] = policy
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
@bp.get("/<console_path:path>")
def console(path: str = "") -> Response:
    """Every non-API path is the console page; its router shows the page of the path, or its
    "not found" page."""
    return _page("index.html", CONSOLE_CSP)


@bp.get("/assets/<path:path>")
def asset(path: str) -> Response:
    response = send_from_directory(STATIC, path, max_age=0)  # 404 for anything outside STATIC
    response.headers["Cache-Control"] = VENDOR_CACHE if path.startswith("vendor/") else OWN_CACHE
    return response


@bp.get("/api/docs")
def api_docs() -> Response:
    """Swagger UI on the OpenAPI document, from the vendored swagger-ui-dist."""
    return _page("docs.html", DOCS_CSP)
