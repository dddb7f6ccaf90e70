"""`/admin/...`: the management API, reached only with an admin key (any other key gets 403).

    GET    /admin/keys                  {"object": "list", "data": [key...]}
    POST   /admin/keys                  body: name, budget_usd, rpm, tpm, models, expires_at | expires_in
                                        -> 201 key + "secret" (shown this once)
    GET    /admin/keys/{id}             key ({id}: the key's id or, as in the CLI, its name)
    PATCH  /admin/keys/{id}             the same fields (null removes a rule) -> key
    POST   /admin/keys/{id}/revoke      key (also DELETE /admin/keys/{id})
    GET    /admin/usage                 ?group_by=day,key,model&key_id=&model=&since=&until=
                                        -> {"object": "list", "group_by": [...], "data": [row...]}
    GET    /admin/requests              ?limit=50&key_id=&model=&before_id= -> the newest ledger rows

Errors have OpenAI's shape. See README "Admin API" for the JSON of a key, a usage row and a
ledger row.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluicegate.api.json import json_response
from sluicegate.api.serving import bearer_secret
from sluicegate.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from sluicegate.gateway import Gateway
from sluicegate.governance.keys import KeyNameError
from sluicegate.governance.rules import RuleError, parse_day, rules_from
from sluicegate.http.body import read_body
from sluicegate.store.errors import unreachable
from sluicegate.store.records import USAGE_GROUPS, KeyRecord

log = logging.getLogger("sluicegate.admin")
Endpoint = Callable[[Request], Awaitable[Response]]

KEY_FIELDS = {"name", "budget_usd", "rpm", "tpm", "models", "expires_at", "expires_in"}


async def _admin(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    key = await gateway.keys.resolve(bearer_secret(request))
    if not key.admin:
        raise PermissionDeniedError("This endpoint needs the admin key.", code="admin_only")
    return gateway


async def _body(request: Request, gateway: Gateway) -> dict[str, Any]:
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The body is not valid JSON: {exc}.", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("The body must be a JSON object.", code="invalid_json")
    unknown = sorted(set(body) - KEY_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"Unknown field `{unknown[0]}`; a key has {', '.join(sorted(KEY_FIELDS))}.", param=unknown[0]
        )
    return body


def _rules(body: dict[str, Any]) -> dict[str, Any]:
    try:
        return rules_from(body)
    except RuleError as exc:
        raise InvalidRequestError(str(exc)) from exc


def _refused(exc: RuleError) -> InvalidRequestError:
    if isinstance(exc, KeyNameError):
        return InvalidRequestError(str(exc), param="name", code="key_name_taken")
    return InvalidRequestError(str(exc), param="expires_at")


async def _key_or_404(gateway: Gateway, ref: str) -> KeyRecord:
    """The key named in the path by its id or, as the CLI takes it, its name."""
    try:
        key = await gateway.keys.find(ref)
    except KeyNameError as exc:  # several keys share the name: the id says which
        raise InvalidRequestError(str(exc), param="key_id", code="key_name_ambiguous") from exc
    if key is None:
        raise NotFoundError(f"No API key with the id or name `{ref}`.", code="key_not_found")
    return key


async def list_keys(request: Request) -> Response:
    gateway = await _admin(request)
    return json_response({"object": "list", "data": [k.to_json() for k in await gateway.keys.list()]})


async def create_key(request: Request) -> Response:
    gateway = await _admin(request)
    rules = _rules(await _body(request, gateway))
    wanted = rules.pop("name", None)
    try:
        key, secret = await gateway.keys.create_named(wanted, **rules)
    except RuleError as exc:
        raise _refused(exc) from exc
    return json_response({**key.to_json(), "secret": secret}, status=201)


async def get_key(request: Request) -> Response:
    gateway = await _admin(request)
    return json_response((await _key_or_404(gateway, request.path_params["key_id"])).to_json())


async def update_key(request: Request) -> Response:
    gateway = await _admin(request)
    rules = _rules(await _body(request, gateway))
    key = await _key_or_404(gateway, request.path_params["key_id"])
    try:
        updated = await gateway.keys.update(key.id, rules)
    except RuleError as exc:
        raise _refused(exc) from exc
    assert updated is not None
    return json_response(updated.to_json())


async def revoke_key(request: Request) -> Response:
    gateway = await _admin(request)
    key = await _key_or_404(gateway, request.path_params["key_id"])
    revoked = await gateway.keys.revoke(key.id) or key
    return json_response(revoked.to_json())


def _query_day(request: Request, name: str) -> str | None:
    try:
        return parse_day(request.query_params.get(name))
    except RuleError as exc:
        raise InvalidRequestError(str(exc), param=name) from exc


async def usage(request: Request) -> Response:
    gateway = await _admin(request)
    params = request.query_params
    groups = [g.strip() for g in params.get("group_by", "day").split(",") if g.strip()]
    for group in groups:
        if group not in USAGE_GROUPS:
            raise InvalidRequestError(f"Cannot group by `{group}`; use day, key or model.", param="group_by")
    rows = await gateway.store.usage(
        groups,
        key_id=params.get("key_id") or None,
        model=params.get("model") or None,
        since=_query_day(request, "since"),
        until=_query_day(request, "until"),
    )
    return json_response({"object": "list", "group_by": groups, "data": rows})


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidRequestError(f"`{name}` must be an integer.", param=name) from exc


async def recent_requests(request: Request) -> Response:
    gateway = await _admin(request)
    limit = _int_param(request, "limit", 50) or 50
    rows = await gateway.store.recent(
        limit=limit,
        key_id=request.query_params.get("key_id") or None,
        model=request.query_params.get("model") or None,
        before_id=_int_param(request, "before_id", None),
    )
    next_before = rows[-1]["id"] if len(rows) == max(1, min(limit, 1000)) else None
    return json_response({"object": "list", "data": rows, "next_before_id": next_before})


def _store_guarded(endpoint: Endpoint) -> Endpoint:
    """A database that cannot be reached is a 503 naming it (OpenAI's error shape), not a 500."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            if isinstance(exc, GatewayError) or not unreachable(exc):
                raise
            gateway: Gateway = request.app.state.gateway
            database = gateway.dependencies.items["database"]
            log.error("admin %s %s: %s is unreachable: %r", request.method, request.url.path, database.label, exc)
            raise ServiceUnavailableError(
                f"The database ({database.service}) cannot be reached right now ({type(exc).__name__});"
                " keys and usage are unavailable until it answers.",
                retry_after=5,
            ) from exc

    return guarded


def admin_routes() -> list[Route]:
    return [
        Route(path, _store_guarded(endpoint), methods=methods)
        for path, endpoint, methods in (
            ("/admin/keys", list_keys, ["GET"]),
            ("/admin/keys", create_key, ["POST"]),
            ("/admin/keys/{key_id}", get_key, ["GET"]),
            ("/admin/keys/{key_id}", update_key, ["PATCH"]),
            ("/admin/keys/{key_id}", revoke_key, ["DELETE"]),
            ("/admin/keys/{key_id}/revoke", revoke_key, ["POST"]),
            ("/admin/usage", usage, ["GET"]),
            ("/admin/requests", recent_requests, ["GET"]),
        )
    ]
