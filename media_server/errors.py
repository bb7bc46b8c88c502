"""One JSON error shape for every HTTP error: {"error": <short code>, "detail": <human text>}."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

log = logging.getLogger(__name__)

_REASONS = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 414: "uri_too_long",
    415: "unsupported_media_type", 422: "unprocessable", 429: "too_many_requests",
    431: "header_fields_too_large",
    500: "internal_error", 503: "unavailable",
}


class ApiError(Exception):
    """Raise from a handler to answer with the JSON error shape."""

    def __init__(self, status: int, detail: str, *, error: str | None = None,
                 headers: Mapping[str, str] | None = None, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.error = error or _REASONS.get(status, "error")
        self.headers = dict(headers or {})
        self.field = field


def error_body(status: int, detail: str, *, error: str | None = None,
               field: str | None = None) -> bytes:
    """The error shape as UTF-8 JSON (for servers other than aiohttp's, e.g. the HLS edge)."""
    body: dict[str, str] = {"error": error or _REASONS.get(status, "error"), "detail": detail}
    if field:
        body["field"] = field
    return json.dumps(body, ensure_ascii=False).encode()


def error_response(status: int, detail: str, *, error: str | None = None,
                   headers: Mapping[str, str] | None = None,
                   field: str | None = None) -> web.Response:
    return web.Response(status=status, body=error_body(status, detail, error=error, field=field),
                        content_type="application/json", charset="utf-8", headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.detail, error=exc.error, headers=exc.headers,
                              field=exc.field)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() in ("allow", "retry-after", "www-authenticate", "location")}
        detail = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return error_response(exc.status, detail or exc.reason, headers=headers)
    except ConnectionResetError:
        # The client went away mid-response (a player moving on, a closed tab): not an error.
        # aiohttp logs whatever a handler raises; a response it cannot send (the transport is
        # closing) ends quietly instead.
        log.debug("client went away during %s %s", request.method, request.rel_url.path)
        return web.Response(status=499, text="client closed request")
    except Exception:
        # Never a traceback to the client; the server log keeps it (without request headers,
        # which may hold tokens).
        log.exception("unhandled error in %s %s", request.method, request.rel_url.path)
        return error_response(500, "internal error; see server log")
