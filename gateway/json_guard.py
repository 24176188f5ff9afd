"""Bounds on JSON bodies, checked before any route or schema reads them.

Python's own parser has limits that surface as exceptions deep in the stack: nesting
beyond the recursion limit raises RecursionError, an integer of more than 4,300 digits
raises ValueError, and a lone surrogate ("\\ud800") parses fine but breaks the first
encode in a service. Each of those was a 500 with a traceback. Here they are a 4xx
that names the problem, decided in one pass before the schemas run:

- nesting deeper than MAX_DEPTH: 400 (the body as a whole);
- a number with more than MAX_NUMBER_CHARS characters, or NaN/Infinity: 422 naming the field;
- a string or key that is not valid Unicode (a lone surrogate): 422 naming the field.
"""
from __future__ import annotations

import json
import math
import re

from flask import Flask, request

from kernel.errors import BadRequest, ValidationFailed

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40  # more than any id, port or count the API takes; far below Python's int limit
_SIGNIFICANT = re.compile(r'[\[\]{}"\\]|(?<=\\).')


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects, brackets inside strings left out.

    One pass over the characters that matter, so a hostile body costs linear time."""
    depth = deepest = 0
    in_string = escaped = False
    for match in _SIGNIFICANT.finditer(text):
        char = match.group()
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _field(path: list) -> str:
    return ".".join(str(part) for part in path) or "body"


class _Refused:
    """Stands in the parsed body for a value refused while parsing, so the walk can name its field."""

    def __init__(self, problem: str):
        self.problem = problem


def _bounded_number(convert):
    def parse(text: str):
        if len(text) > MAX_NUMBER_CHARS:
            return _Refused(f"a number of more than {MAX_NUMBER_CHARS} characters")
        number = convert(text)
        if number in (math.inf, -math.inf):  # 1e400 is short but no number Python can hold
            return _Refused("a number too large to hold")
        return number
    return parse


def _not_a_number(name: str):
    return _Refused(f"{name} is not a number")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_problem(value, path: list | None = None) -> tuple[str, str] | None:
    """(field, problem) for the first refused number or non-Unicode string or key, else None."""
    path = path or []
    if isinstance(value, _Refused):
        return _field(path), value.problem
    if isinstance(value, str):
        return None if _is_unicode(value) else (_field(path), "not valid Unicode (a lone surrogate)")
    if isinstance(value, dict):
        for key, item in value.items():
            if not _is_unicode(key):
                return _field(path + ["?"]), "a key that is not valid Unicode (a lone surrogate)"
            if (problem := first_problem(item, path + [key])) is not None:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (problem := first_problem(item, path + [index])) is not None:
                return problem
    return None


def check_body(raw: bytes) -> None:
    """Raises BadRequest/ValidationFailed when the JSON body is beyond the bounds above."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return  # not JSON: the schemas' parser answers with its own 400
    if nesting_depth(text) > MAX_DEPTH:
        raise BadRequest(f"The request body is nested more than {MAX_DEPTH} levels deep.",
                         details={"body": f"nested more than {MAX_DEPTH} levels"})
    try:
        value = json.loads(text, parse_int=_bounded_number(int), parse_float=_bounded_number(float),
                           parse_constant=_not_a_number)
    except ValueError:
        return  # not JSON at all: the schemas' parser answers with its own 400
    if (problem := first_problem(value)) is not None:
        field, words = problem
        raise ValidationFailed("The request has invalid fields.", details={field: words})


def install(app: Flask) -> None:
    @app.before_request
    def _check_json_body():
        if request.is_json and request.method not in ("GET", "HEAD", "OPTIONS"):
            body = request.get_data(cache=True)
            if body:
                check_body(body)
