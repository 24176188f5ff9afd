"""Versioned resources: the ETag a GET answers and the If-Match an edit may send back."""
from __future__ import annotations

from apiflask.fields import String
from flask import request

from kernel.errors import PreconditionFailed

# The response headers of an answer about a versioned resource, for @bp.output(..., headers=ETAG_HEADER).
ETAG_HEADER = {"ETag": String(required=True, metadata={
    "description": 'The resource\'s version, quoted ("3"): send it back as `If-Match` to refuse an edit based on a '
                   'stale read (412)'})}
# The request header of an edit that honours it: gateway.openapi adds it to every operation that documents a 412.
IF_MATCH_PARAMETER = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
                      "description": 'The `ETag` you read ("3"): the edit is refused with 412 `precondition_failed` '
                                     'if the resource changed since. Left out, or `*`: no check'}


def etag(resource: dict) -> dict:
    """The header of an answer about a resource with a `version`."""
    return {"ETag": f'"{resource["version"]}"'}


def if_match(what: str = "resource") -> int | None:
    """The version the caller read (If-Match), None when it sent none or `*`."""
    if "If-Match" not in request.headers or request.if_match.star_tag:
        return None
    tags = request.if_match.as_set(include_weak=True)  # an empty tag ("") comes back as None
    versions = {tag for tag in tags if tag and tag.isascii() and tag.isdigit()}
    if len(versions) != 1:
        raise PreconditionFailed(f"If-Match must be the ETag of the {what}, as GET returned it.")
    return int(versions.pop())
