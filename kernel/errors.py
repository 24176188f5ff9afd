"""Errors that cross the RPC boundary and become HTTP answers at the gateway.

Each class is registered with nameko once (`crosses_rpc`), so the caller (the gateway,
or a service calling another) receives an instance of the same class, not a bare
RemoteError, and the gateway maps it with `status` and `code`.

On the wire (nameko's `serialize`: the exception's args, every non-text leaf turned into
text) an error's args are (message, code, payload), the payload being `details` and
`retry_after` as one JSON text: text stays text through nameko, and `from_wire`, the one
place remote errors are rebuilt (nameko's `deserialize` calls it), reads them back with
their JSON types (ints, bools, lists, nested objects, null). A value JSON has no type for
(a datetime, say) crosses as its text. Details are fixed when the error is made.

Messages and details are shown to API callers: never put a secret in them.
"""
from __future__ import annotations

import json

from nameko.exceptions import get_module_path, registry


class GatehouseError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, code: str | None = None, details: dict | None = None,
                 retry_after: int | None = None):
        self.message = message
        self.code = code or type(self).code
        self.details = details or {}
        # whole seconds; the gateway sends it as Retry-After
        self.retry_after = int(retry_after) if retry_after is not None else None
        # Every field is in args: nameko serializes them, from_wire rebuilds the instance at the caller.
        super().__init__(message, self.code, json.dumps({"details": self.details, "retry_after": self.retry_after},
                                                        default=str, separators=(",", ":")))

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_wire(cls, message: str = "", code: str | None = None, payload=None, *older) -> "GatehouseError":
        """The error a caller rebuilds from the args nameko carried (see the module docstring).

        Never raises: a payload it cannot read (a peer's bug) gives the error without details,
        so the caller still answers with the error's status instead of a 500."""
        try:
            if isinstance(payload, str) and not older:
                fields = json.loads(payload)
                fields = fields if isinstance(fields, dict) else {}
                details, retry_after = fields.get("details"), fields.get("retry_after")
            else:  # a peer of the previous release: (message, code, details as nameko's text, retry_after as text)
                details, retry_after = payload, (older[0] if older else None)
        except ValueError:
            details, retry_after = None, None
        if not isinstance(details, dict):
            details = {"detail": details} if isinstance(details, str) and details not in ("", "{}") else {}
        return cls(str(message), code if isinstance(code, str) else None, details, _seconds(retry_after))


def _seconds(value) -> int | None:
    """A Retry-After from the wire: whole seconds as a number or its text, else none."""
    if isinstance(value, bool):
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if 0 < seconds < 10 ** 9 else None


def crosses_rpc(cls: type[GatehouseError]) -> type[GatehouseError]:
    """Registers `cls` with nameko: its `deserialize` rebuilds it with `cls.from_wire`."""
    registry[get_module_path(cls)] = cls.from_wire
    return cls


@crosses_rpc
class BadRequest(GatehouseError):
    status, code = 400, "bad_request"


@crosses_rpc
class ValidationFailed(GatehouseError):
    """details maps each field to what is wrong with it."""

    status, code = 422, "validation_error"


@crosses_rpc
class Unauthorized(GatehouseError):
    status, code = 401, "unauthorized"


@crosses_rpc
class Forbidden(GatehouseError):
    status, code = 403, "forbidden"


@crosses_rpc
class NotFound(GatehouseError):
    status, code = 404, "not_found"


@crosses_rpc
class Conflict(GatehouseError):
    status, code = 409, "conflict"


@crosses_rpc
class Gone(GatehouseError):
    """It existed but is no longer usable (a used or expired single-use link)."""

    status, code = 410, "gone"


@crosses_rpc
class PreconditionFailed(GatehouseError):
    """The caller's If-Match names a version that is no longer current."""

    status, code = 412, "precondition_failed"


def refuse_stale_edit(what: str, current_version: int, expected_version: int | None) -> None:
    """Raises PreconditionFailed when the caller read another version than the stored one
    (their If-Match); expected_version None: the caller did not ask, so the edit goes ahead."""
    if expected_version is not None and expected_version != current_version:
        raise PreconditionFailed(f"The {what} changed since you read it; reload and retry.",
                                 details={"version": current_version})


@crosses_rpc
class TooManyRequests(GatehouseError):
    status, code = 429, "too_many_requests"


@crosses_rpc
class BadGateway(GatehouseError):
    """A system we call for the caller (a Proxmox VE) failed; `code` says how (unreachable, timeout, ...)."""

    status, code = 502, "bad_gateway"


@crosses_rpc
class ServiceUnavailable(GatehouseError):
    """The request was not carried out; trying again later may work."""

    status, code = 503, "service_unavailable"


class TransientError(Exception):
    """A failure worth retrying later (a dependency is briefly unavailable)."""
