"""Typed errors: each knows its HTTP status, whether a retry may help, and its wire types.

    SluiceError
    ├── InvalidRequestError        400  bad JSON, schema violations (names the field)
    ├── AuthenticationError        401
    ├── PermissionDeniedError      403
    ├── NotFoundError              404  unknown model, unknown path
    ├── RequestTimeoutError        408  the request body did not arrive in time
    ├── RequestTooLargeError       413  body over the configured limit
    ├── UnsupportedMediaTypeError  415  a Content-Encoding other than gzip/deflate
    ├── UnprocessableError         422
    ├── RateLimitError             429  carries retry-after
    ├── ServiceUnavailableError    503  every deployment of a plan is unavailable (breakers)
    ├── InternalError              500  an unexpected exception (logged with the request id)
    └── UpstreamError              the provider failed; status mirrors what the caller sees
        ├── UpstreamStatusError    the provider answered with an error status
        ├── UpstreamConnectError   502  connection refused / reset
        ├── UpstreamTimeoutError   504
        └── UpstreamMalformedError 502  a body we could not parse

Rendering into each wire format happens in one place: `openai_body` / `anthropic_body`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sluice.secrets import scrub

# Anthropic's error type for a given status (https://docs.anthropic.com errors page).
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    402: "billing_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# OpenAI's error type for a given status.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

_RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class SluiceError(Exception):
    status: ClassVar[int] = 500
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers: dict[str, str] = headers or {}

    @property
    def http_status(self) -> int:
        return self.status

    @property
    def retryable(self) -> bool:
        return self.http_status in _RETRYABLE_STATUSES

    def openai_body(self) -> dict[str, Any]:
        status = self.http_status
        err_type = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "api_error")
        return {
            "error": {
                "message": self.message,
                "type": err_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def anthropic_body(self) -> dict[str, Any]:
        status = self.http_status
        err_type = _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": err_type, "message": self.message}}


class InvalidRequestError(SluiceError):
    status = 400
    default_code = "invalid_request"


class AuthenticationError(SluiceError):
    status = 401
    default_code = "invalid_api_key"


class PermissionDeniedError(SluiceError):
    status = 403
    default_code = "permission_denied"


class NotFoundError(SluiceError):
    status = 404
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class RequestTimeoutError(SluiceError):
    status = 408
    default_code = "request_timeout"


class RequestTooLargeError(SluiceError):
    status = 413
    default_code = "request_too_large"


class UnsupportedMediaTypeError(SluiceError):
    status = 415
    default_code = "unsupported_content_encoding"


class UnprocessableError(SluiceError):
    status = 422
    default_code = "unprocessable"


class RateLimitError(SluiceError):
    status = 429
    default_code = "rate_limit_exceeded"


class ServiceUnavailableError(SluiceError):
    status = 503
    default_code = "service_unavailable"


class InternalError(SluiceError):
    status = 500
    default_code = "internal_error"


class UpstreamError(SluiceError):
    """The provider could not give an answer."""

    status = 502
    default_code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        deployment: str | None = None,
        retry_after_s: float | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        # Upstream text may echo our provider key: scrubbed before a caller or log sees it.
        super().__init__(scrub(message), headers=headers, code=code)
        self.deployment = deployment
        self.retry_after_s = retry_after_s


class UpstreamStatusError(UpstreamError):
    """The provider answered with an error status; the caller sees the same status."""

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        deployment: str | None = None,
        retry_after_s: float | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(
            message,
            deployment=deployment,
            retry_after_s=retry_after_s,
            headers=headers,
            code=code or f"upstream_{upstream_status}",
        )
        self.upstream_status = upstream_status
        if retry_after_s == 0 and "retry-after" not in self.headers:
            # "Retry now" is an answer too: keep it rather than drop the header.
            self.headers = {**self.headers, "retry-after": "0"}

    @property
    def http_status(self) -> int:
        # 529 (Anthropic "overloaded") is not a standard status; clients understand 503.
        if self.upstream_status == 529:
            return 503
        # An upstream 401/403 is our credential problem, not the caller's.
        if self.upstream_status in (401, 403):
            return 502
        return self.upstream_status

    @property
    def retryable(self) -> bool:
        return self.upstream_status in _RETRYABLE_STATUSES


class UpstreamConnectError(UpstreamError):
    status = 502
    default_code = "upstream_unreachable"

    @property
    def retryable(self) -> bool:
        return True


class UpstreamTimeoutError(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


class UpstreamMalformedError(UpstreamError):
    status = 502
    default_code = "upstream_malformed"

    @property
    def retryable(self) -> bool:
        return True
