"""The one paging style of every list: `limit` plus an opaque `cursor` (the `next_cursor`
of the previous page), answered as {"items", "next_cursor", "total"}.

Cursors are opaque so that callers take them from `next_cursor` rather than computing
them; a cursor that is not one of ours is a 422, never a silent first page. All are
unpadded URL-safe base64:

- offset cursors ("offset:<number>") count the rows already seen, for small lists read in one go;
- keyset cursors ("before:<number>") name the key of the last row seen, for lists that grow at
  the top while they are read (the audit trail): a new row never shifts the next page;
- position cursors (a JSON list: the list's kind, then the last row's sort values and id) do
  the same for lists sorted by other keys (users, invitations).
"""
from __future__ import annotations

import base64
import json

from kernel.errors import ValidationFailed

OFFSET, KEYSET = "offset", "before"


def _to_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _from_cursor(cursor: str) -> str:
    """The text a cursor encodes; ValueError (or UnicodeDecodeError) when it is not base64 of text."""
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def _encode(kind: str, number: int) -> str:
    return _to_cursor(f"{kind}:{number}")


def _decode(kind: str, cursor: str) -> int | None:
    """The number a cursor of `kind` stands for; None when it is not one of ours."""
    try:
        text = _from_cursor(cursor)
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, number = text.partition(":")
    if prefix != kind or not (number.isascii() and number.isdigit()):
        return None
    return int(number)


def refuse_cursor() -> ValidationFailed:
    """The error of a cursor that is not one of this list's (raise it)."""
    return ValidationFailed("The cursor is not valid.", details={"cursor": "is not a cursor of this list"})


def encode_cursor(offset: int) -> str:
    return _encode(OFFSET, offset)


def decode_cursor(cursor: str | None) -> int | None:
    """The offset a cursor stands for (0 for none); None when it is not one of ours."""
    if not cursor:
        return 0
    return _decode(OFFSET, cursor)


def offset_of(cursor: str | None) -> int:
    """decode_cursor, refusing a foreign cursor with the error callers show."""
    offset = decode_cursor(cursor)
    if offset is None:
        raise refuse_cursor()
    return offset


def encode_keyset_cursor(key: int) -> str:
    """The cursor of the page after the row whose key is `key` (rows come in descending key order)."""
    return _encode(KEYSET, key)


def keyset_of(cursor: str | None) -> int | None:
    """The key a keyset cursor names (None for the first page); a foreign cursor is a 422."""
    if not cursor:
        return None
    key = _decode(KEYSET, cursor)
    if key is None:
        raise refuse_cursor()
    return key


def encode_position(kind: str, values: list) -> str:
    """The cursor of the page after the row these JSON values (its sort keys and id) describe."""
    return _to_cursor(json.dumps([kind, *values]))


def position_of(kind: str, cursor: str | None) -> list | None:
    """The values a position cursor of `kind` names (None for the first page); a foreign cursor is a
    422. The caller checks their shape and raises refuse_cursor() for one it cannot use."""
    if not cursor:
        return None
    try:
        decoded = json.loads(_from_cursor(cursor))
    except (ValueError, UnicodeDecodeError):
        raise refuse_cursor() from None
    if not isinstance(decoded, list) or not decoded or decoded[0] != kind:
        raise refuse_cursor()
    return decoded[1:]


def page_answer(items: list, offset: int, total: int, more: bool | None = None, total_exact: bool = True) -> dict:
    """The list answer for `items` found at `offset` among `total` matches. A list whose
    total is capped says so (`total_exact` false) and tells `more` itself."""
    following = offset + len(items)
    more = following < total if more is None else more
    return list_answer(items, encode_cursor(following) if more else None, total, total_exact)


def list_answer(items: list, next_cursor: str | None, total: int, total_exact: bool = True) -> dict:
    """The one answer shape of a list page; a list whose total is capped says so (`total_exact` false)."""
    answer = {"items": items, "next_cursor": next_cursor, "total": total}
    if not total_exact:
        answer["total_exact"] = False
    return answer


def page(items: list, limit: int, cursor: str | None) -> dict:
    """The list answer over a list already in memory."""
    offset = offset_of(cursor)
    return page_answer(items[offset:offset + limit], offset, len(items))
