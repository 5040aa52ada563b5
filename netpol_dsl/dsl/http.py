"""HTTP request rules for L7 flows: method, path regex, host regex, headers."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from typeguard import typechecked

from netpol_dsl import values
from netpol_dsl.diagnostics import Location, caller_location
from netpol_dsl.ir.program import HttpMatch


@attrs.frozen
class HttpRule:
    """One allowed request shape.  Paths and hosts are regexes matched against the whole value."""

    match: HttpMatch
    location: Location = attrs.field(eq=False, factory=caller_location)


@typechecked
def http(
    method: str | None = None,
    path: str | None = None,
    *,
    host: str | None = None,
    headers: Mapping[str, str | None] | None = None,
) -> HttpRule:
    """Allow requests matching every given field.

    Args:
        method: an HTTP method such as ``"GET"``.
        path: a regex the whole path must match, e.g. ``"/api/v1/.*"``.
        host: a regex the whole Host header must match.
        headers: header name to required value (``None``: the header must be present).

    Example: ``allow(web >> api, tcp(8080), http=[http("GET", "/api/.*")])``.
    """
    return HttpRule(
        HttpMatch(
            method=values.http_method(method) if method is not None else None,
            path=values.regex(path, "HTTP path") if path is not None else None,
            host=values.regex(host, "HTTP host") if host is not None else None,
            headers=tuple(sorted((values.header_name(k), v) for k, v in (headers or {}).items())),
        )
    )


@typechecked
def get(path: str | None = None) -> HttpRule:
    """Shorthand for ``http("GET", path)``."""
    return http("GET", path)


@typechecked
def post(path: str | None = None) -> HttpRule:
    """Shorthand for ``http("POST", path)``."""
    return http("POST", path)
