"""One shape for every error of the JSON API, and the edge rules of its request bodies.

Every error answers ``{"success": false, "error": <stable code>, "field": <name or null>,
"rule": <rule or null>, "detail": <human sentence>}``; validation errors (422) name the field
and the rule it broke and list every fault in ``errors``. Bodies must be JSON
(``application/json`` or ``application/<x>+json``; anything else is 415, so a browser "simple
request" such as a ``text/plain`` form post from another site never reaches a view), and their
strings must be storable: PostgreSQL text refuses NUL, and UTF-8 cannot encode a lone surrogate
(both made 500s).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest
from ninja import Schema, Status
from ninja.parser import Parser

JSON_CONTENT_TYPES = ("application/json",)


class ApiErrorOut(Schema):
    success: bool = False
    error: str
    field: str | None = None
    rule: str | None = None
    detail: str


class FieldErrorOut(Schema):
    field: str | None = None
    rule: str
    detail: str


class ValidationErrorOut(ApiErrorOut):
    errors: list[FieldErrorOut]


def api_error(
    status: int, error: str, detail: str, *, field: str | None = None, rule: str | None = None
) -> Status:
    """A ninja ``Status`` carrying the one error shape."""
    return Status(status, error_body(error, detail, field=field, rule=rule))


def error_body(
    error: str, detail: str, *, field: str | None = None, rule: str | None = None
) -> dict[str, Any]:
    return {"success": False, "error": error, "field": field, "rule": rule, "detail": detail}


class UnsupportedMediaType(Exception):
    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"the body must be JSON (Content-Type: application/json), not {content_type!r}"
        )
        self.content_type = content_type


class UnstorableString(Exception):
    """A string a database text column cannot hold: NUL, or a lone UTF-16 surrogate."""

    def __init__(self, field: str, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.field, self.rule, self.detail = field, rule, detail


def is_json_content_type(content_type: str) -> bool:
    main = (content_type or "").split(";", 1)[0].strip().lower()
    return main in JSON_CONTENT_TYPES or (
        main.startswith("application/") and main.endswith("+json")
    )


def unstorable_reason(value: str) -> tuple[str, str] | None:
    """``(rule, detail)`` when ``value`` cannot be stored as PostgreSQL text, else None."""
    if "\x00" in value:
        return "no_nul", "must not contain the NUL character (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "valid_unicode", "must be valid Unicode (a lone surrogate \\uD800–\\uDFFF was sent)"
    return None


def _strings(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield path, str(key)
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*path, str(i)))


class StrictJsonParser(Parser):
    """JSON bodies only, with storable strings; the API's exception handlers shape the errors."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        content_type = request.META.get("CONTENT_TYPE", "")
        if not is_json_content_type(content_type):
            raise UnsupportedMediaType(content_type)
        data = json.loads(request.body)
        for path, text in _strings(data):
            reason = unstorable_reason(text)
            if reason:
                field = ".".join(path) or None
                raise UnstorableString(
                    field or "body", reason[0], f"{field or 'body'}: {reason[1]}"
                )
        return data


def validation_error_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """ninja/pydantic errors (``loc``, ``type``, ``msg``) in the API's one shape."""
    faults = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        # loc is ("body", <param>, field...) / ("query", name) / ("path", name): keep the field.
        if loc and loc[0] in ("body", "query", "path", "form", "header", "cookie"):
            loc = loc[2:] if loc[0] == "body" and len(loc) > 2 else loc[1:]
        field = ".".join(loc) or None
        rule = str(err.get("type", "invalid"))
        msg = str(err.get("msg", "is not valid"))
        faults.append({"field": field, "rule": rule, "detail": f"{field}: {msg}" if field else msg})
    first = faults[0] if faults else {"field": None, "rule": "invalid", "detail": "invalid input"}
    body = error_body("validation_error", first["detail"], field=first["field"], rule=first["rule"])
    body["errors"] = faults
    return body
