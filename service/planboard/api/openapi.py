"""The finished OpenAPI document: what the marshmallow schemas cannot say, added in one place.

``aiohttp-apigami`` builds paths, parameters, bodies and success responses from the
schemas attached to the handlers (the same schemas that validate requests and shape
responses). :func:`finalize` then adds, from rules rather than a hand-kept copy:

- a shared ``Problem`` component (RFC 9457) and the 4xx/5xx responses of every
  operation (``application/problem+json``), chosen by what the operation takes;
- the two auth schemes (a JWT from ``/auth/login``, a personal access token) on every
  protected operation, none on public ones;
- the conditional and idempotency headers (``If-None-Match``/304, ``If-Match``/412,
  ``Idempotency-Key``), ``204`` on operations without a body, non-JSON bodies
  (Markdown import, exports), operation ids and a few examples.

:func:`postman_collection` turns the document into a Postman v2.1 collection.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

Spec = dict[str, Any]
Operation = dict[str, Any]

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
METHODS = ("get", "put", "post", "patch", "delete", "options", "trace")
API_PREFIX = "/api/v1/"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem: every error the API returns has this shape.",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {
            "type": "string",
            "description": "the request path (empty for a request that is not valid HTTP)",
        },
        "request_id": {"type": "string", "description": "quote it when reporting a problem"},
        "errors": {
            "type": "array",
            "description": "the offending fields (validation problems)",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "cycle": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the dependency cycle a change would create (409)",
        },
        "line": {"type": "integer", "description": "the plan line that failed to parse"},
    },
    "additionalProperties": True,
    "example": {
        "type": "https://planboard.dev/problems/unprocessable-content",
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "the request has invalid fields",
        "instance": "/api/v1/workspaces",
        "request_id": "4f9c2d7e0b1a4c3d8e6f5a2b1c0d9e8f",
        "errors": [{"field": "name", "message": "Missing data for required field."}],
    },
}

ERROR_DESCRIPTIONS = {
    "400": "Bad request (e.g. a body that is not JSON)",
    "401": "Missing, invalid or expired credentials",
    "403": "Authenticated, but the role or token scope does not allow this",
    "404": "No such resource (or not in one of your workspaces)",
    "409": "Conflict with the current state (duplicate, dependency cycle, idempotency key)",
    "412": "If-Match / version names a stale version: nothing was changed",
    "413": "The body is too large",
    "416": "The Range is outside the file",
    "415": "Unsupported Content-Type",
    "422": "Invalid fields (each named in `errors`)",
    "429": "Rate limit exceeded (see the RateLimit-* and Retry-After headers)",
    "500": "Unexpected error (quote the request id)",
    "503": "A dependency is down (e.g. MongoDB unreachable): retry after `Retry-After` seconds",
}

SUCCESS_DESCRIPTIONS = {"200": "OK", "201": "Created", "202": "Accepted (runs in the background)"}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A 15-minute access token from POST /api/v1/auth/login (or /refresh).",
    },
    "pat": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "pbpat_…",
        "description": (
            "A personal access token (POST /api/v1/tokens), limited to its scopes, "
            "e.g. tasks:read. Sent as `Authorization: Bearer pbpat_…`."
        ),
    },
}
PROTECTED: list[dict[str, list[str]]] = [{"bearer": []}, {"pat": []}]

# Requests whose bodies are not JSON and responses that are not a JSON object.
DOCUMENT_CONTENT = {
    "text/markdown": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object", "additionalProperties": True}},
    "text/csv": {"schema": {"type": "string"}},
    "text/vnd.mermaid": {"schema": {"type": "string"}},
}
# Attachment downloads: whatever type the upload was detected as.
FILE_CONTENT = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
FILE_HEADERS = {
    "Content-Disposition": {"schema": {"type": "string"}},
    "ETag": {"schema": {"type": "string"}},
}
OVERRIDES: dict[tuple[str, str], Operation] = {
    ("post", "/api/v1/workspaces/{workspace_id}/projects/import"): {
        "requestBody": {
            "required": True,
            "content": {
                "text/markdown": {
                    "schema": {"type": "string", "maxLength": 2 * 1024 * 1024},
                    "example": "# Project: Demo\n\n## Phase 1: Foundation\n\n"
                    "### Task 1.1: Set up the repository\n- **Status**: todo\n",
                }
            },
        }
    },
    ("post", "/api/v1/tasks/{task}/attachments"): {
        "requestBody": {
            "required": True,
            "description": "One part named `file`, with a filename; its type is detected from "
            "the content (PLANBOARD_ATTACHMENT_MAX_BYTES, default 25 MiB)",
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "additionalProperties": False,
                    },
                    "encoding": {"file": {"contentType": "application/octet-stream"}},
                }
            },
        }
    },
    ("get", "/api/v1/files/{attachment_id}/{variant}"): {
        "parameters": [
            {
                "name": "variant",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": ["original", "thumbnail"]},
            }
        ],
        "responses": {
            "200": {"description": "The file", "content": FILE_CONTENT, "headers": FILE_HEADERS},
            "206": {
                "description": "The requested byte range of the file",
                "content": FILE_CONTENT,
                "headers": {
                    **FILE_HEADERS,
                    "Content-Range": {"schema": {"type": "string"}},
                },
            },
            "304": {"description": "Not modified (the If-None-Match ETag is current)"},
        },
    },
    ("get", "/api/v1/projects/{project_id}/export"): {
        "responses": {"200": {"description": "The exported document", "content": DOCUMENT_CONTENT}}
    },
    ("get", "/api/v1/jobs/{job_id}/result"): {
        "responses": {"200": {"description": "The exported document", "content": DOCUMENT_CONTENT}}
    },
    ("post", "/api/v1/notifications/read-all"): {
        "responses": {
            "200": {
                "description": "How many notifications were marked read",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["marked"],
                            "properties": {"marked": {"type": "integer", "minimum": 0}},
                        }
                    }
                },
            }
        }
    },
    ("get", "/metrics"): {
        "responses": {
            "200": {
                "description": "Prometheus metrics (text exposition format)",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        }
    },
    ("get", "/readyz"): {
        "responses": {
            "503": {
                "description": "Not ready: the problem names what is down (`down`, `checks`)",
                "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
            }
        }
    },
}

# Errors the rules below do not derive from an operation's shape.
EXTRA_ERRORS: dict[tuple[str, str], tuple[str, ...]] = {
    ("get", "/api/v1/jobs/{job_id}/result"): ("409",),  # the job has no result (yet)
    ("get", "/api/v1/projects/{project_id}/export"): ("409",),  # a gantt chart with nothing to draw
    ("get", "/api/v1/files/{attachment_id}/{variant}"): ("403", "404", "416"),
    # a schedule that cannot be computed (working time past the supported dates)
    ("get", "/api/v1/projects/{project_id}/schedule"): ("409",),
    ("get", "/api/v1/tasks/{task}/schedule"): ("409",),
    ("get", "/api/v1/projects/{project_id}/forecast"): ("409",),
    ("get", "/api/v1/projects/{project_id}/baselines/{baseline_id}/compare"): ("409",),
}

# Reads that answer ``If-None-Match`` with 304; writes that honour ``If-Match`` (412).
CONDITIONAL_READS = {
    "/api/v1/projects/{project_id}",
    "/api/v1/projects/{project_id}/phases",
    "/api/v1/tasks/{task}",
    "/api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}",
}
CONDITIONAL_WRITES = {
    ("patch", "/api/v1/projects/{project_id}"),
    ("delete", "/api/v1/projects/{project_id}"),
    ("patch", "/api/v1/tasks/{task}"),
    ("delete", "/api/v1/tasks/{task}"),
    ("patch", "/api/v1/tasks/{task}/dependencies/{blocker}"),
    ("patch", "/api/v1/comments/{comment_id}"),
    ("patch", "/api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}"),
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "RegisterBody": {
        "email": "ada@example.com",
        "password": "correct horse battery staple",
        "name": "Ada Lovelace",
    },
    "LoginBody": {"email": "ada@example.com", "password": "correct horse battery staple"},
    "CreatePatBody": {"name": "CI bot", "scopes": ["tasks:read"], "expires_in_days": 30},
    "WorkspaceBody": {"name": "Acme"},
    "ProjectBody": {"name": "Planboard", "key": "PB", "description": "The planning service"},
    "TaskBody": {"title": "Write the OpenAPI docs", "complexity": "medium", "estimate_hours": 4},
    "DependencyBody": {"blocked_by": "PB-1"},
    "CommentBody": {"body": "Looks good to me."},
}

HEADER_PARAMS: dict[str, dict[str, Any]] = {
    "If-None-Match": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "An ETag from a previous response: 304 when unchanged",
        "schema": {"type": "string"},
    },
    "If-Match": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "The ETag you read (or *): 412 when the resource changed since",
        "schema": {"type": "string", "maxLength": 1000},
    },
    "Idempotency-Key": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Retrying with the same key returns the first result (kept 24 h)",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[ -~]+$"},
    },
}


def _operations(spec: Spec) -> Iterable[tuple[str, str, Operation]]:
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _problem(status: str) -> dict[str, Any]:
    return {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }


def _error_statuses(path: str, method: str, op: Operation) -> list[str]:
    params = op.get("parameters", [])
    has_body = "requestBody" in op
    protected = bool(op.get("security"))
    api = path.startswith(API_PREFIX)
    statuses = ["500"]
    if not api:
        return statuses
    statuses += ["400", "429", "503"]  # 503: MongoDB unreachable (api/middleware.py)
    if protected:
        statuses += ["401", "403", "404"]
    if any(p["in"] == "path" for p in params):
        statuses.append("404")
    if params or has_body:
        statuses.append("422")
    if has_body:
        statuses += ["413", "415"]
    if method != "get":
        statuses.append("409")
    if (method, path) in CONDITIONAL_WRITES:
        statuses.append("412")
    statuses += EXTRA_ERRORS.get((method, path), ())
    if path.startswith(API_PREFIX + "auth/"):  # bad credentials or a bad/used token
        statuses.append("401")
    return sorted(set(statuses))


def _operation_ids(app: web.Application | None) -> dict[tuple[str, str], str]:
    """``(method, path)`` → the handler's name (module-qualified where names repeat)."""
    if app is None:
        return {}
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else None
        if path is None or route.method == "HEAD":
            continue
        handler = route.handler
        module = getattr(handler, "__module__", "").rsplit(".", 1)[-1].removesuffix("_routes")
        found[(route.method.lower(), path)] = (module, getattr(handler, "__name__", "handler"))
    names = [name for _, name in found.values()]
    return {
        key: name if names.count(name) == 1 else f"{module}_{name}"
        for key, (module, name) in found.items()
    }


def _fallback_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path.removeprefix("/api/v1")).strip("_")
    return f"{method}_{words or 'root'}"


def finalize(spec: Spec, app: web.Application | None = None) -> Spec:
    """The complete document (a new dict; ``spec`` is left alone)."""
    spec = copy.deepcopy(spec)
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    for name, example in EXAMPLES.items():
        if name in components["schemas"]:
            components["schemas"][name]["example"] = example
    spec["tags"] = [
        {"name": "ops", "description": "Liveness, readiness and metrics (no auth)"},
    ]
    ids = _operation_ids(app)
    for path, item in spec.get("paths", {}).items():
        item.pop("head", None)  # aiohttp answers HEAD for every GET; not separate operations
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            _finish_operation(path, method, op, ids.get((method, path)))
    spec["paths"] = {path: item for path, item in spec.get("paths", {}).items() if item}
    return spec


def _finish_operation(path: str, method: str, op: Operation, op_id: str | None) -> None:
    override = OVERRIDES.get((method, path), {})
    if "requestBody" in override:
        op["requestBody"] = override["requestBody"]
    responses: dict[str, Any] = op.setdefault("responses", {})
    for status, response in override.get("responses", {}).items():
        responses[status] = response
    for status, response in responses.items():
        if not response.get("description"):
            response["description"] = SUCCESS_DESCRIPTIONS.get(status, "OK")
    for swagger2_only in ("produces", "consumes"):  # apigami adds these; not OpenAPI 3
        op.pop(swagger2_only, None)
    if not any(code.startswith("2") for code in responses):
        responses["204"] = {"description": "Done (no content)"}

    op["operationId"] = op_id or _fallback_id(method, path)
    if op.get("security"):
        op["security"] = PROTECTED
    else:
        op["security"] = []
    if not op.get("tags"):
        op["tags"] = ["ops"]

    params: list[dict[str, Any]] = op.setdefault("parameters", [])
    for param in override.get("parameters", []):  # replaces the generated one of that name
        params[:] = [p for p in params if (p["name"], p["in"]) != (param["name"], param["in"])]
        params.append(param)
    if method == "get" and path in CONDITIONAL_READS:
        params.append(HEADER_PARAMS["If-None-Match"])
        responses["304"] = {"description": "Not modified (the If-None-Match ETag is current)"}
    if (method, path) in CONDITIONAL_WRITES:
        params.append(HEADER_PARAMS["If-Match"])
    if (
        method == "post"
        and path.startswith(API_PREFIX)
        and not path.startswith(API_PREFIX + "auth/")  # anonymous or session-ending: not kept
        and op.get("security")
        and "multipart/form-data" not in op.get("requestBody", {}).get("content", {})
    ):  # streamed uploads are not hashed, so not covered
        params.append(HEADER_PARAMS["Idempotency-Key"])
    if not params:
        del op["parameters"]

    for status in _error_statuses(path, method, op):
        responses.setdefault(status, _problem(status))
    op["responses"] = dict(sorted(responses.items()))


# --------------------------------------------------------------------------- Postman

POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"


def _example_body(spec: Spec, op: Operation) -> tuple[str, str] | None:
    """(content type, raw body) for the request, from the schema's example."""
    body = op.get("requestBody")
    if not body:
        return None
    content_type, media = next(iter(body["content"].items()))
    if "example" in media:
        example = media["example"]
    else:
        schema = media.get("schema", {})
        ref = schema.get("$ref", "")
        target = spec["components"]["schemas"].get(ref.rsplit("/", 1)[-1], schema)
        example = target.get("example", {})
    if isinstance(example, str):
        return content_type, example
    import json

    return content_type, json.dumps(example, indent=2)


def postman_collection(spec: Spec) -> dict[str, Any]:
    """A Postman v2.1 collection with one request per operation, in folders by tag.

    ``{{baseUrl}}`` defaults to http://127.0.0.1:8080; ``{{token}}`` is sent as a bearer
    token on every protected request (public ones say ``noauth``).
    """
    folders: dict[str, list[dict[str, Any]]] = {}
    for path, method, op in _operations(spec):
        segments = [
            f":{part[1:-1]}" if part.startswith("{") and part.endswith("}") else part
            for part in path.strip("/").split("/")
        ]
        url: dict[str, Any] = {
            "raw": "{{baseUrl}}/" + "/".join(segments),
            "host": ["{{baseUrl}}"],
            "path": segments,
        }
        params = op.get("parameters", [])
        variables = [
            {"key": p["name"], "value": "", "description": p.get("description", "")}
            for p in params
            if p["in"] == "path"
        ]
        if variables:
            url["variable"] = variables
        query = [
            {
                "key": p["name"],
                "value": "",
                "disabled": True,
                "description": p.get("description", ""),
            }
            for p in params
            if p["in"] == "query"
        ]
        if query:
            url["query"] = query
        headers = [
            {
                "key": p["name"],
                "value": "",
                "disabled": True,
                "description": p.get("description", ""),
            }
            for p in params
            if p["in"] == "header"
        ]
        request: dict[str, Any] = {
            "method": method.upper(),
            "header": headers,
            "url": url,
            "description": op.get("description") or op.get("summary", ""),
        }
        form = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
        body = None if form else _example_body(spec, op)
        if form:  # Postman picks the file and writes the multipart body itself
            request["body"] = {
                "mode": "formdata",
                "formdata": [
                    {"key": name, "type": "file", "src": []}
                    for name in form["schema"].get("properties", {})
                ],
            }
        if body is not None:
            content_type, raw = body
            request["header"].append({"key": "Content-Type", "value": content_type})
            request["body"] = {"mode": "raw", "raw": raw}
        if not op.get("security"):
            request["auth"] = {"type": "noauth"}
        tag = (op.get("tags") or ["other"])[0]
        folders.setdefault(tag, []).append(
            {"name": op.get("summary") or op["operationId"], "request": request, "response": []}
        )
    info = spec.get("info", {})
    return {
        "info": {
            "name": info.get("title", "Planboard API"),
            "description": info.get("description", ""),
            "version": info.get("version", ""),
            "schema": POSTMAN_SCHEMA,
        },
        "auth": {
            "type": "bearer",
            "bearer": [{"key": "token", "value": "{{token}}", "type": "string"}],
        },
        "variable": [
            {"key": "baseUrl", "value": "http://127.0.0.1:8080"},
            {"key": "token", "value": ""},
        ],
        "item": [{"name": tag, "item": items} for tag, items in folders.items()],
    }
