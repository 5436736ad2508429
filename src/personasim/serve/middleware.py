"""The HTTP plumbing around the routes: JSON error answers, the body-size limit and the
constant-time API-key check.

Errors are JSON: ``{"error": {"code", "message"}}``. Keys are sent as
``Authorization: Bearer KEY``, compared in constant time, and never logged.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials

__all__ = ["ApiError", "BodyLimit", "add_error_handlers", "error_response", "key_matches"]

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A refusal the client is told about: HTTP status, stable code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> Any:
    """The JSON answer of an error (an ASGI app, as every Starlette response)."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def add_error_handlers(app: FastAPI) -> None:
    """Answer :class:`ApiError`, invalid requests and crashes of `app` with JSON errors."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> Any:
        return error_response(e.status, e.code, e.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> Any:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(
            422, "invalid_request", f"{where or 'body'}: {first.get('msg', 'invalid')}"
        )

    @app.exception_handler(Exception)
    async def crashed(_: Request, e: Exception) -> Any:
        logger.exception("request failed")
        return error_response(
            500, "internal", f"{type(e).__name__}: the request could not be served"
        )


class BodyLimit:
    """ASGI middleware: refuse bodies over `limit` bytes (declared or streamed)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on, refusing it with 413 once its body is over the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = error_response(413, "body_too_large", f"request body over {self.limit} bytes")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_big(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ApiError(413, "body_too_large", f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


def key_matches(credentials: HTTPAuthorizationCredentials | None, keys: list[bytes]) -> bool:
    """Whether the bearer token is one of `keys`, compared with every key (no early exit:
    the time does not tell which matched)."""
    given = credentials.credentials.strip().encode() if credentials else b""
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key)
    return ok
