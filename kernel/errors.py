"""Errors that cross the RPC boundary and become HTTP answers at the gateway.

Each class is registered with nameko once, so the gateway receives an instance of
the same class (not a bare RemoteError) and maps it with `status` and `code`.
Messages and details are shown to API callers: never put a secret in them.
"""
from __future__ import annotations

from nameko.exceptions import deserialize_to_instance


class GatehouseError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, code: str | None = None, details: dict | None = None,
                 retry_after: int | None = None):
        # Every field is in args: nameko rebuilds the instance from them at the caller.
        super().__init__(message, code or self.code, details or {}, retry_after)
        self.message = message
        self.code = code or type(self).code
        self.details = details or {}
        # seconds; the gateway sends it as Retry-After (nameko carries args as text)
        self.retry_after = int(retry_after) if retry_after not in (None, "None") else None

    def __str__(self) -> str:
        return self.message


@deserialize_to_instance
class BadRequest(GatehouseError):
    status, code = 400, "bad_request"


@deserialize_to_instance
class ValidationFailed(GatehouseError):
    """details maps each field to what is wrong with it."""

    status, code = 422, "validation_error"


@deserialize_to_instance
class Unauthorized(GatehouseError):
    status, code = 401, "unauthorized"


@deserialize_to_instance
class Forbidden(GatehouseError):
    status, code = 403, "forbidden"


@deserialize_to_instance
class NotFound(GatehouseError):
    status, code = 404, "not_found"


@deserialize_to_instance
class Conflict(GatehouseError):
    status, code = 409, "conflict"


@deserialize_to_instance
class Gone(GatehouseError):
    """It existed but is no longer usable (a used or expired single-use link)."""

    status, code = 410, "gone"


@deserialize_to_instance
class PreconditionFailed(GatehouseError):
    """The caller's If-Match names a version that is no longer current."""

    status, code = 412, "precondition_failed"


def refuse_stale_edit(what: str, current_version: int, expected_version: int | None) -> None:
    """Raises PreconditionFailed when the caller read another version than the stored one
    (their If-Match); expected_version None: the caller did not ask, so the edit goes ahead."""
    if expected_version is not None and expected_version != current_version:
        raise PreconditionFailed(f"The {what} changed since you read it; reload and retry.",
                                 details={"version": str(current_version)})  # details cross RPC as text


@deserialize_to_instance
class TooManyRequests(GatehouseError):
    status, code = 429, "too_many_requests"


@deserialize_to_instance
class BadGateway(GatehouseError):
    """A system we call for the caller (a Proxmox VE) failed; `code` says how (unreachable, timeout, ...)."""

    status, code = 502, "bad_gateway"


@deserialize_to_instance
class ServiceUnavailable(GatehouseError):
    """The request was not carried out; trying again later may work."""

    status, code = 503, "service_unavailable"


class TransientError(Exception):
    """A failure worth retrying later (a dependency is briefly unavailable)."""
