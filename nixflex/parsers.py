"""The API's JSON parser: DRF's, plus the checks that keep hostile bodies from reaching
the database as a 500.

PostgreSQL refuses NUL in text and lone surrogates are not UTF-8; a body nested
thousands deep makes the JSON decoder raise RecursionError; `1e999` decodes to infinity,
which jsonb refuses. Each is the caller's mistake: a 400 `invalid_request` here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from nixflex.errors import ApiError


class StrictJSONParser(JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise _too_deep() from None
        check_json_value(data)
        return data


def _too_deep() -> ApiError:
    depth = settings.API_MAX_JSON_DEPTH
    return ApiError(
        "invalid_request",
        f"The JSON body is nested too deeply (at most {depth} levels).",
        {"reason": "too_deeply_nested", "max_depth": depth},
    )


def _bad_text(where: str, problem: str) -> ApiError:
    if problem == "nul_character":
        message = "Text in the request must not contain NUL (\\u0000) characters."
    else:
        message = "Text in the request must be valid Unicode (no lone surrogates like \\ud800)."
    details: dict[str, Any] = {"reason": problem}
    if where:
        details["field"] = where[:200]
    return ApiError("invalid_request", message, details)


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "nul_character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid_unicode"
    return None


def check_json_value(value: Any) -> None:
    """Walk a decoded body (iteratively: depth is what is being checked) and raise
    invalid_request at the first string, key or number the database cannot store."""
    max_depth = settings.API_MAX_JSON_DEPTH
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                raise _bad_text(where, problem)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ApiError(
                    "invalid_request",
                    "Numbers must be finite.",
                    {"reason": "number_out_of_range", "field": where[:200]},
                )
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise _too_deep()
            if isinstance(item, dict):
                for key, child in item.items():
                    path = f"{where}.{key}" if where else str(key)
                    problem = _text_problem(key)
                    if problem:
                        raise _bad_text(where, problem)
                    stack.append((child, depth + 1, path))
            else:
                stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
