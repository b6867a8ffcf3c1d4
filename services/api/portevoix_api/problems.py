"""RFC 9457 problem details for every error the API returns.

Routes raise `Problem(status, title, detail, kind=..., headers=..., **extra)`. Unknown routes
(404), wrong methods (405), validation (422), oversized bodies (413), rate limits (429) and
unexpected failures (500) all answer `application/problem+json` too. `error_responses(...)`
documents those answers in OpenAPI (`responses=error_responses(404, 409)` on a route); the app
also adds the ones every route shares (401/403 on authenticated routes, 413, 422, 429, 500).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM = "application/problem+json"
TYPE_BASE = "https://porte-voix.dev/problems/"

TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.headers = headers or {}
        self.extra = extra


class ProblemDetails(BaseModel):
    """An RFC 9457 problem; extension members (`errors`, `reason`, …) may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[TYPE_BASE + "not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["no ambassador 'a-42'"])
    instance: str = Field(examples=["/v1/ambassadors/a-42"])


_EXAMPLES: dict[int, tuple[str, str]] = {
    400: ("bad-request", "the request could not be understood"),
    401: ("unauthorized", "a bearer token is required"),
    403: ("forbidden", "role 'ambassador' may not do this; needs moderator or admin"),
    404: ("not-found", "no such resource"),
    405: ("method-not-allowed", "method not allowed on this resource"),
    409: ("conflict", "the resource changed; start again"),
    413: ("payload-too-large", "body over 10485760 bytes"),
    422: ("invalid-request", "invalid field(s): limit"),
    429: ("rate-limited", "rate limit of 120 requests per 60 s reached; retry in 3 s"),
    500: ("internal-error", "an unexpected error occurred"),
    503: ("service-unavailable", "the event bus did not answer; retry later"),
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer challenge", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    405: {"Allow": {"description": "Allowed methods", "schema": {"type": "string"}}},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem+json answers, with examples."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        kind, detail = _EXAMPLES.get(status, ("error", "an error occurred"))
        title = TITLES.get(status, "Error")
        entry: dict[str, Any] = {
            "description": title,
            "model": ProblemDetails,
            "content": {
                PROBLEM: {
                    "example": {
                        "type": TYPE_BASE + kind,
                        "title": title,
                        "status": status,
                        "detail": detail,
                        "instance": "/v1/…",
                    }
                }
            },
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


def problem_body(
    status: int, title: str, detail: str, kind: str, instance: str, **extra: Any
) -> dict[str, Any]:
    return {
        "type": TYPE_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str,
    kind: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(status, title, detail, kind, request.url.path, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.title, exc.detail, exc.kind, exc.headers, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the input (it may be personal data): location, rule and message only.
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path")),
                "rule": e["type"],
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        fields = ", ".join(e["field"] or "(body)" for e in errors)
        return problem_response(
            request, 422, "Invalid request", f"invalid field(s): {fields}", "invalid-request",
            errors=errors,
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = TITLES.get(exc.status_code, "HTTP error")
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.url.path}"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(
            request, exc.status_code, title, detail, title.lower().replace(" ", "-"),
            headers=dict(exc.headers or {}),
        )  # fmt: skip

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            request, 500, "Internal error", "an unexpected error occurred", "internal-error"
        )
