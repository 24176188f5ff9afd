"""One error shape for every failure: {"error": {"code", "message", "details"}}.

Remote domain errors arrive as kernel.errors instances and keep their status, code
and details (with their JSON types: kernel.errors.GatehouseError.from_wire rebuilds them);
infrastructure failures become 503/504; anything else is a 500 that names
the request id and nothing internal.
"""
from __future__ import annotations

import logging

from apiflask import APIFlask, HTTPError
from flask import g, jsonify
from kombu.exceptions import OperationalError
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from werkzeug.exceptions import HTTPException

from kernel.errors import GatehouseError

log = logging.getLogger("gatehouse.gateway")

HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 410: "gone", 412: "precondition_failed", 413: "payload_too_large", 414: "uri_too_long",
    415: "unsupported_media_type", 431: "header_fields_too_large", 422: "validation_error",
    429: "too_many_requests", 500: "internal_error", 502: "bad_gateway", 503: "service_unavailable", 504: "service_timeout",
}


def error_response(status: int, code: str, message: str, details=None, headers=None):
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register(app: APIFlask) -> None:
    @app.error_processor
    def http_error(error: HTTPError):
        code = error.extra_data.get("code") or HTTP_CODES.get(error.status_code, "error")
        message = error.message
        if error.status_code == 422:
            message = "The request has invalid fields."
        return error_response(error.status_code, code, message, error.detail, error.headers)

    @app.errorhandler(GatehouseError)
    def domain_error(error: GatehouseError):
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        return error_response(error.status, error.code, error.message, error.details, headers)

    @app.errorhandler(RpcTimeout)
    def timeout(error):
        log.warning("rpc timeout", extra={"request_id": g.get("request_id")})
        return error_response(504, "service_timeout", "A service did not answer in time; the change may still be applied.")

    @app.errorhandler(UnknownService)
    def unavailable(error):
        return error_response(503, "service_unavailable", "A service is not available right now.")

    @app.errorhandler(ConnectionError)
    @app.errorhandler(OperationalError)  # kombu's: the broker refused or dropped the connection
    def broker_down(error):
        return error_response(503, "service_unavailable", "The message broker is not reachable.")

    @app.errorhandler(HTTPException)
    def http_exception(error: HTTPException):
        if error.code == 400 and (getattr(error, "data", None) or {}).get("messages"):
            # webargs could not decode the body; its messages name the location ("json").
            return error_response(400, "bad_request", "The request body is not valid JSON.", error.data["messages"])
        # e.g. 405's Allow and 401's WWW-Authenticate: the exception's own headers, not its HTML type
        kept = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
        return error_response(error.code, HTTP_CODES.get(error.code, "error"), error.description, headers=kept)

    @app.errorhandler(Exception)
    def unexpected(error):
        if isinstance(error, RemoteError):
            log.error("remote error %s", error.exc_type, extra={"request_id": g.get("request_id")})
        else:
            log.exception("unhandled error", extra={"request_id": g.get("request_id")})
        return error_response(500, "internal_error", f"Internal error (request {g.get('request_id')}).")
