"""Versioned resources: the ETag a GET answers and the If-Match an edit may send back."""
from __future__ import annotations

from flask import request

from kernel.errors import PreconditionFailed


def etag(resource: dict) -> dict:
    """The header of an answer about a resource with a `version`."""
    return {"ETag": f'"{resource["version"]}"'}


def if_match(what: str = "resource") -> int | None:
    """The version the caller read (If-Match), None when it sent none or `*`."""
    if "If-Match" not in request.headers or request.if_match.star_tag:
        return None
    versions = {tag for tag in request.if_match.as_set(include_weak=True) if tag.isascii() and tag.isdigit()}
    if len(versions) != 1:
        raise PreconditionFailed(f"If-Match must be the ETag of the {what}, as GET returned it.")
    return int(versions.pop())
