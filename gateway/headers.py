"""Security headers on every answer, and CORS for the browser origins an operator allows.

CORS is off unless GATEHOUSE_CORS_ORIGINS names origins. Clients authenticate with a bearer
token, never a cookie, so credentials are not allowed across origins.
"""
from __future__ import annotations

from flask import Flask, Response, request

from kernel.config import Config

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# The console's pages: its own scripts and styles only (no inline ones), API calls to this origin,
# images from here or data: URLs (the 2FA QR code); nothing may frame it.
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
               "font-src 'self'; manifest-src 'self'; form-action 'self'; object-src 'none'; base-uri 'none'; "
               "frame-ancestors 'none'")
# Swagger UI (/api/docs) sets style attributes and <style> elements of its own: inline styles are
# allowed there, scripts still only from this origin.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
CORS_REQUEST_HEADERS = "Authorization, Content-Type, If-Match, X-Request-ID"
# Headers a browser script may read from an answer besides the simple ones.
CORS_EXPOSED = "ETag, Location, Retry-After, X-Request-ID"
CORS_MAX_AGE = "600"


def allowed_origins(setting: str) -> frozenset[str]:
    """The origins of GATEHOUSE_CORS_ORIGINS, without trailing slashes; "" allows none."""
    return frozenset(origin.strip().rstrip("/") for origin in setting.split(",") if origin.strip())


def security_headers(https: bool) -> dict[str, str]:
    return {**SECURITY_HEADERS, **({"Strict-Transport-Security": HSTS} if https else {})}


def install(app: Flask, config: Config) -> None:
    fixed = security_headers(config["GATEHOUSE_PUBLIC_URL"].lower().startswith("https://"))
    origins = allowed_origins(config["GATEHOUSE_CORS_ORIGINS"])

    @app.before_request
    def _preflight():
        # A preflight carries no token: answer it before any route guard.
        if (request.method == "OPTIONS" and request.headers.get("Origin") in origins
                and "Access-Control-Request-Method" in request.headers):
            response = Response(status=204)
            del response.headers["Content-Type"]
            response.headers.update({"Access-Control-Allow-Methods": CORS_METHODS,
                                     "Access-Control-Allow-Headers": CORS_REQUEST_HEADERS,
                                     "Access-Control-Max-Age": CORS_MAX_AGE})
            return response
        return None

    fixed_by_lower_name = {name.lower(): (name, value) for name, value in fixed.items()}

    @app.after_request
    def _headers(response: Response) -> Response:
        # What a route set wins. Looked up in one pass: werkzeug's setdefault and `in` raise and
        # catch a KeyError per missing header, five times slower for the five added to every answer.
        present = {name.lower() for name in response.headers.keys()}
        for lower_name, (name, value) in fixed_by_lower_name.items():
            if lower_name not in present:
                response.headers.add(name, value)
        if origins:
            response.vary.add("Origin")
            origin = request.headers.get("Origin")
            if origin in origins:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        return response
