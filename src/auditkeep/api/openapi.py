"""What each route declares about itself, and the OpenAPI 3.1 document built from those
declarations.

A handler is wrapped by ``http.route`` with an ``Operation``: its summary, its query and path
parameters (``query.Param``, the declarations the handler parses its parameters with), its
request body (a msgspec Struct the handler decodes or checks the body with, or a JSON Schema
built from such definitions, as the event schema is by ``auditkeep_client.schema``) and its
answers. ``build_spec`` walks the app's route table and assembles the document from them, so
/openapi.json describes exactly the routes the app has and the parameters they accept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Route

from auditkeep import __version__
from auditkeep.query import Param
from auditkeep_client.schema import MAX_ERRORS, event_json_schema

REF = "#/components/schemas/{name}"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


_PROBLEM_TEXT = {
    400: "Malformed JSON, bad parameter or cursor",
    401: "Missing, malformed, unknown, expired or revoked key",
    403: "The key lacks the scope",
    404: "Not found (also for another tenant's resources)",
    409: "Conflict",
    413: "Body or batch too large",
    415: "Not JSON, or an unsupported Content-Encoding",
    422: "The request breaks the schema",
    429: "Rate limited; see Retry-After",
    503: "Overloaded or store unavailable; see Retry-After",
}


def problems(*codes: int) -> dict[int, dict[str, Any]]:
    """Problem+json answers for ``codes``."""
    return {
        c: {
            "description": _PROBLEM_TEXT[c],
            "content": {"application/problem+json": {"schema": ref("Problem")}},
        }
        for c in codes
    }


def json_answer(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def text_answer(description: str, *media_types: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {m: {"schema": {"type": "string"}} for m in media_types or ("text/plain",)},
    }


@dataclass(frozen=True)
class Operation:
    """One route's declaration: what ``http.route`` attaches to its handler."""

    summary: str
    responses: Mapping[int, Mapping[str, Any]]
    params: tuple[Param, ...] = ()
    body: type[msgspec.Struct] | Mapping[str, Any] | None = None
    body_required: bool = True
    description: str = ""
    public: bool = False
    """No API key needed (``security: []``)."""

    def openapi(self, components: dict[str, Any]) -> dict[str, Any]:
        """The Operation Object; schemas it names are added to ``components``."""
        op: dict[str, Any] = {"summary": self.summary}
        if self.description:
            op["description"] = self.description
        if self.public:
            op["security"] = []
        if self.params:
            op["parameters"] = [p.openapi() for p in self.params]
        if self.body is not None:
            if isinstance(self.body, type):
                (schema,), models = msgspec.json.schema_components([self.body], ref_template=REF)
                components.update(models)
            else:
                schema = dict(self.body)
            op["requestBody"] = {
                "required": self.body_required,
                "content": {"application/json": {"schema": schema}},
            }
        op["responses"] = {str(code): dict(doc) for code, doc in sorted(self.responses.items())}
        return op


class Undocumented(Exception):
    """A route was added without an ``Operation``."""


def _event_out() -> dict[str, Any]:
    schema = event_json_schema()
    schema["description"] = "The stored normal form, plus what the server adds."
    schema["properties"] |= {
        "tenant": {"type": "string"},
        "received_at": {"type": "string", "format": "date-time"},
        "seq": {
            "type": "integer",
            "minimum": 1,
            "description": "Gap-free position in the tenant's log, from 1",
        },
        "hash": {
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
            "description": "Hex SHA-256(0x00 || leaf data)",
        },
        "redacted": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Fields a viewer token hides, removed from this event: its content "
            "no longer hashes to 'hash', whose inclusion proof still holds",
        },
    }
    schema["required"] = [
        *schema["required"],
        "id",
        "targets",
        "outcome",
        "context",
        "metadata",
        "category",
        "tenant",
        "received_at",
        "seq",
        "hash",
    ]
    return schema


PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": f"Schema problems, at most {MAX_ERRORS} per event.",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "errors_omitted": {
            "type": "integer",
            "description": "Problems found beyond those listed in errors.",
        },
        "duplicate": {
            "type": "string",
            "description": "A member name the body's JSON gave twice in one object.",
        },
    },
}

DESCRIPTION = (
    "Tamper-evident audit and event log. Authenticate with 'Authorization: Bearer <key>'. "
    "Errors are RFC 9457 problem+json."
)


def _methods(route: Route) -> list[str]:
    return sorted(m.lower() for m in (route.methods or ()) if m != "HEAD")


def build_spec(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (an app's route table), from the ``Operation``
    each handler declares; raises Undocumented for a route that declares none."""
    components: dict[str, Any] = {
        "EventIn": event_json_schema(),
        "Event": _event_out(),
        "Problem": PROBLEM,
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        op = getattr(route.endpoint, "operation", None)
        if not isinstance(op, Operation):
            raise Undocumented(f"{route.path} ({route.endpoint.__name__}) declares no Operation")
        declared = {p.name for p in op.params if p.location == "path"}
        if declared != set(route.param_convertors):
            raise Undocumented(f"{route.path}: path parameters declared as {sorted(declared)}")
        for method in _methods(route):
            paths.setdefault(route.path, {})[method] = op.openapi(components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "auditkeep", "version": __version__, "description": DESCRIPTION},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(components.items())),
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


__all__ = [
    "Operation",
    "Undocumented",
    "build_spec",
    "json_answer",
    "problems",
    "ref",
    "text_answer",
]
