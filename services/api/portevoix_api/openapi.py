"""The OpenAPI document, completed: every operation documents the problem+json answers it can
give without each route having to say so (401/403 where a bearer token is required, 404 where
the path has parameters, 413 where there is a body, 422, 429, 500), and FastAPI's default 422
schema is replaced by the problem schema the API really answers with."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from portevoix_api.problems import PROBLEM, ProblemDetails, error_responses

REF = "#/components/schemas/ProblemDetails"


def _entry(status: int) -> dict[str, Any]:
    entry = dict(error_responses(status)[status])
    entry.pop("model")
    content = entry["content"][PROBLEM]
    entry["content"] = {PROBLEM: {"schema": {"$ref": REF}, "example": content["example"]}}
    return entry


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemDetails"] = ProblemDetails.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for schema_name in ("HTTPValidationError", "ValidationError"):
        components.pop(schema_name, None)
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses: dict[str, Any] = op["responses"]
            wanted = [422, 500]
            if op.get("security"):
                wanted += [401, 403, 429]
            if "{" in path:
                wanted.append(404)
            if method in ("post", "put", "patch"):
                wanted.append(413)
            if "422" in responses:
                responses["422"] = _entry(422)
            for status in sorted(wanted):
                responses.setdefault(str(status), _entry(status))
    return schema


def complete_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
