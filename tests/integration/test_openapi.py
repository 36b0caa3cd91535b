"""The OpenAPI document: generated from the code, valid, complete, committed, and the
Postman collection in step with it. ``make openapi`` regenerates both files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from planboard.api.openapi import postman_collection
from planboard.api.validation import openapi_document
from planboard.app import create_app
from planboard.config import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "openapi.json"
POSTMAN = ROOT / "docs" / "planboard.postman_collection.json"
REGENERATE = "run `make openapi` and commit docs/openapi.json and the Postman collection"
UNDOCUMENTED = {"/api/openapi.json", "/api/docs"}  # the document and its viewer


@pytest.fixture(scope="module")
def built() -> tuple[Any, dict[str, Any]]:
    app = create_app(Settings(env="test"))
    return app, openapi_document(app)


@pytest.fixture(scope="module")
def spec(built: tuple[Any, dict[str, Any]]) -> dict[str, Any]:
    return built[1]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in spec["paths"].items() for m, op in item.items()]


def test_the_committed_document_matches_the_code(spec: dict[str, Any]) -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == spec, f"docs/openapi.json drifted from the code: {REGENERATE}"


def test_the_document_is_valid_openapi_3(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.")


async def test_the_api_serves_the_same_document(client: Any, spec: dict[str, Any]) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    assert await response.json() == spec


def test_every_route_is_documented(built: tuple[Any, dict[str, Any]]) -> None:
    app, spec = built
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and route.resource.canonical not in UNDOCUMENTED
        and not route.resource.canonical.startswith("/api/docs/static")
    }
    documented = {(m, p) for m, p, _ in _operations(spec)}
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations the app does not serve"


def test_every_operation_documents_its_errors_as_problem_json(spec: dict[str, Any]) -> None:
    assert "Problem" in spec["components"]["schemas"]
    for method, path, op in _operations(spec):
        responses = op["responses"]
        assert any(code.startswith("2") for code in responses), (method, path)
        errors = {code for code in responses if code[0] in "45"}
        assert "500" in errors, (method, path)
        if path.startswith("/api/v1/"):
            assert {"400", "429"} <= errors, (method, path)
        if op.get("requestBody"):
            assert {"413", "415", "422"} <= errors, (method, path)
        if any(p["in"] == "path" for p in op.get("parameters", [])):
            assert "404" in errors, (method, path)
        for code in errors:
            content = responses[code]["content"]
            assert content == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, (method, path, code)
        assert op["operationId"] and op["summary"] and op["tags"], (method, path)


def test_security_on_protected_operations_and_none_on_public_ones(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["bearerFormat"] == "JWT"
    assert schemes["pat"]["scheme"] == "bearer"
    public = {
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/forgot-password"),
        ("post", "/api/v1/auth/reset-password"),
        ("post", "/api/v1/auth/verify-email"),
        ("get", "/api/v1/files/{attachment_id}/{variant}"),  # the signed URL authorizes
    }
    for method, path, op in _operations(spec):
        if (method, path) in public:
            assert op["security"] == [], (method, path)
            assert "401" not in op["responses"] or path.startswith("/api/v1/auth/"), path
        else:
            assert op["security"] == [{"bearer": []}, {"pat": []}], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)


def test_conditional_and_non_json_operations_are_described(spec: dict[str, Any]) -> None:
    task = spec["paths"]["/api/v1/tasks/{task}"]
    assert "304" in task["get"]["responses"]
    assert "If-None-Match" in [p["name"] for p in task["get"]["parameters"]]
    assert "412" in task["patch"]["responses"]
    assert "If-Match" in [p["name"] for p in task["patch"]["parameters"]]
    create = spec["paths"]["/api/v1/projects/{project_id}/tasks"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in create["parameters"]]
    imported = spec["paths"]["/api/v1/workspaces/{workspace_id}/projects/import"]["post"]
    assert list(imported["requestBody"]["content"]) == ["text/markdown"]
    export = spec["paths"]["/api/v1/projects/{project_id}/export"]["get"]
    assert set(export["responses"]["200"]["content"]) == {
        "text/markdown",
        "application/json",
        "text/csv",
        "text/vnd.mermaid",
    }
    assert "409" in export["responses"]  # a gantt chart with nothing to draw
    assert spec["paths"]["/api/v1/tokens/{token_id}"]["delete"]["responses"]["204"]
    assert spec["components"]["schemas"]["LoginBody"]["example"]["email"]
    upload = spec["paths"]["/api/v1/tasks/{task}/attachments"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
    assert {"413", "415", "422"} <= set(upload["responses"])
    assert "Idempotency-Key" not in [p["name"] for p in upload.get("parameters", [])]
    download = spec["paths"]["/api/v1/files/{attachment_id}/{variant}"]["get"]
    assert {"200", "206", "304", "403", "404", "416"} <= set(download["responses"])
    variant = next(p for p in download["parameters"] if p["name"] == "variant")
    assert variant["schema"]["enum"] == ["original", "thumbnail"]


def test_the_postman_collection_is_in_step_with_the_document(spec: dict[str, Any]) -> None:
    committed = json.loads(POSTMAN.read_text(encoding="utf-8"))
    assert committed == postman_collection(spec), f"the Postman collection drifted: {REGENERATE}"
    assert committed["info"]["schema"].endswith("/v2.1.0/collection.json")
    requests = [item["request"] for folder in committed["item"] for item in folder["item"]]
    in_collection = set()
    for request in requests:
        path = "/" + "/".join(
            "{" + part[1:] + "}" if part.startswith(":") else part
            for part in request["url"]["path"]
        )
        in_collection.add((request["method"].lower(), path))
        assert request["url"]["raw"].startswith("{{baseUrl}}/")
    operations = {(m, p) for m, p, _ in _operations(spec)}
    assert in_collection == operations
    assert len(requests) == len(operations)
