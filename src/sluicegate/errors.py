"""The gateway's error tree, each error carrying its OpenAI wire shape.

    GatewayError                      500 server_error
    ├── InvalidRequestError           400 invalid_request_error
    │   └── PayloadTooLargeError      413
    ├── AuthenticationError           401 invalid_api_key (expired_api_key)
    ├── InsufficientBalanceError      402 insufficient_balance (a key's budget)
    ├── PermissionDeniedError         403 (model_not_allowed, admin_only)
    ├── NotFoundError                 404
    │   └── ModelNotFoundError        404 model_not_found
    ├── RateLimitError                429 (Retry-After)
    ├── ServiceUnavailableError       503 (Retry-After)
    └── UpstreamError                 502 (status and message mapped from the provider)
        ├── UpstreamConfigError       502 the upstream refused the model entry (key, URL, model)
        └── UpstreamTimeoutError      504

Raising one of these anywhere before the first byte gives the client a JSON error with the
right status; after the first byte the same error becomes a `data: {"error": ...}` event.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any, ClassVar, Final, Literal

import orjson


class _Default(Enum):
    CODE = "default"


DEFAULT_CODE: Final = _Default.CODE


class GatewayError(Exception):
    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    # set by routing on the error that ends a request: the deployment tried last, and how many
    # upstream attempts were made (sent as the x-sluicegate-* headers, as on answers)
    deployment: str | None = None
    attempts: int = 0

    def __init__(
        self,
        message: str,
        *,
        code: str | Literal[_Default.CODE] | None = DEFAULT_CODE,
        param: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is DEFAULT_CODE else code  # None means JSON null
        self.param = param
        self.http_status = status if status is not None else self.status
        self.retry_after = retry_after
        self.extra = extra or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        body.update(self.extra)
        return {"error": body}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after - 0.05)))
        if self.deployment:
            headers["x-sluicegate-deployment"] = self.deployment
            headers["x-sluicegate-attempts"] = str(self.attempts)
        return headers


class InvalidRequestError(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class PayloadTooLargeError(InvalidRequestError):
    status = 413
    default_code = "request_too_large"


class AuthenticationError(GatewayError):
    status = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class InsufficientBalanceError(GatewayError):
    status = 402
    error_type = "insufficient_quota"
    default_code = "insufficient_balance"


class PermissionDeniedError(GatewayError):
    status = 403
    error_type = "invalid_request_error"
    default_code = "permission_denied"


class NotFoundError(GatewayError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class RateLimitError(GatewayError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class ServiceUnavailableError(GatewayError):
    status = 503
    error_type = "server_error"
    default_code = "service_unavailable"


class ConnectionsBusyError(ServiceUnavailableError):
    """Every pooled connection to an upstream stayed busy for its `pool_timeout_s`: the gateway's
    own limit, not the upstream's failure. Routing moves on to the next deployment or fallback
    (whose pools are their own) and blames no deployment for it."""

    default_code = "upstream_connections_busy"


class UpstreamError(GatewayError):
    status = 502
    error_type = "upstream_error"
    default_code = "upstream_error"


class UpstreamConfigError(UpstreamError):
    """The upstream turned down what the model entry says (credentials, base_url, upstream_model):
    the operator's mistake, not the client's, and the same on every retry of that deployment."""


class UpstreamTimeoutError(UpstreamError):
    status = 504
    default_code = "upstream_timeout"
