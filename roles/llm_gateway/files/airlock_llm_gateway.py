"""airlock's hooks into the LiteLLM proxy (loaded by its config, see config.yaml).

Two documented LiteLLM extension points, nothing else:

``user_api_key_auth`` (``general_settings.custom_auth``)
    Answers 403 for every route outside the configured inference routes, and 401 for any
    key that is not one of the gateway keys. Keys are compared as SHA-256 digests (the
    configuration holds no key in clear). A request whose body names its own credentials
    or upstream (api_key, base_url, AWS keys, extra headers, ...) answers 400: LiteLLM
    would otherwise call the approved endpoint with a key the client brought, i.e. with
    someone else's account. The returned object carries the key's alias and its optional
    rate limits, which LiteLLM enforces without a database.

``request_log`` (``litellm_settings.callbacks``)
    One JSON line per request, success or failure, in the request log: time, key alias,
    model, status, tokens, latency, client address. The provider key is never written.
    A request the auth hook refuses is logged there too, with ``"refused"`` (the reason),
    the route and the client address (never the key it brought): alerts watch for them,
    since the app and its sandboxes, using the gateway key on the inference routes, are
    never refused. A body naming ``api_base`` or ``base_url`` is refused by LiteLLM's own
    check before the auth hook runs (a bare 500 in 1.105.7); ``async_post_call_failure_hook``
    logs that refusal the same way and turns it into the hook's 400.

The configuration is the JSON file named by AIRLOCK_GATEWAY_CONFIG:
    {"routes": [...], "request_log": PATH,
     "keys": [{"alias": A, "sha256": HEX, "rpm_limit": N, "tpm_limit": N, "max_parallel_requests": N}]}
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import threading

from fastapi import HTTPException, Request
from litellm.integrations.custom_logger import CustomLogger
from litellm.proxy._types import ProxyException, UserAPIKeyAuth

with open(os.environ["AIRLOCK_GATEWAY_CONFIG"], encoding="utf-8") as _fh:
    CONFIG = json.load(_fh)
ROUTES = frozenset(CONFIG["routes"])
KEYS = [(k["alias"], k["sha256"], k) for k in CONFIG["keys"]]
LIMITS = ("rpm_limit", "tpm_limit", "max_parallel_requests")
# Request body fields that choose credentials, the upstream or headers sent to it.
CLIENT_SIDE = frozenset({
    "api_key", "api_base", "base_url", "api_version", "organization", "custom_llm_provider",
    "extra_headers", "headers", "user_config", "litellm_params", "azure_ad_token",
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region_name",
    "aws_role_name", "aws_session_name", "aws_profile_name", "aws_web_identity_token",
    "aws_sts_endpoint", "aws_bedrock_runtime_endpoint", "vertex_project", "vertex_location",
    "vertex_credentials", "vertex_ai_project", "vertex_ai_location", "watsonx_api_key",
})


LOG_LOCK = threading.Lock()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _append(record: dict) -> None:
    line = json.dumps(record, sort_keys=True) + "\n"
    with LOG_LOCK, open(CONFIG["request_log"], "a", encoding="utf-8") as fh:
        fh.write(line)


def _log_refusal(status: int, reason: str, path: str | None, method: str, alias: str | None, client: str | None) -> None:
    """One refusal in the request log (reason, route, client; never the key it brought)."""
    try:
        _append({"time": _now(), "status": status, "refused": reason, "path": (path or "")[:200] or None,
                 "method": method, "key_alias": alias, "client": client})
    except OSError:
        pass  # the refusal stands even when the log cannot be written


def _credentials_message(named: list[str]) -> str:
    return f"this gateway chooses the upstream and its credentials; remove {', '.join(named)}"


def _deny(request: Request, message: str, code: int, reason: str, alias: str | None = None) -> ProxyException:
    """The refusal, logged first."""
    _log_refusal(code, reason, request.url.path, request.method, alias, request.client.host if request.client else None)
    return ProxyException(message=message, type="auth_error", param=None, code=code)


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    path = request.url.path
    if path not in ROUTES:
        raise _deny(request, f"route not served by this gateway: {path}", 403, "route")
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()
    match = None
    for alias, want, entry in KEYS:  # compare with every key: no timing hint of which one
        if hmac.compare_digest(digest, want):
            match = (alias, entry)
    if match is None:
        raise _deny(request, "invalid gateway key", 401, "key")
    body = await _json_body(request)
    named = sorted(CLIENT_SIDE.intersection(body)) if isinstance(body, dict) else []
    if named:
        raise _deny(request, _credentials_message(named), 400, "client credentials: " + ", ".join(named), match[0])
    alias, entry = match
    limits = {name: entry[name] for name in LIMITS if entry.get(name)}
    return UserAPIKeyAuth(api_key=api_key, key_alias=alias, key_name=alias, **limits)


async def _json_body(request: Request):
    """The request's JSON body (starlette caches it, so the proxy reads it again), or None."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    try:
        raw = await request.body()
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


class RequestLog(CustomLogger):
    """Appends one JSON line per request to the request log (a plain file, logrotate'd)."""

    def _write(self, kwargs, start_time, end_time, status) -> None:
        slo = kwargs.get("standard_logging_object") or {}
        meta = slo.get("metadata") or {}
        try:
            latency = round((end_time - start_time).total_seconds() * 1000, 1)
        except (TypeError, AttributeError):
            latency = None
        _append({
            "time": _now(),
            "key_alias": meta.get("user_api_key_alias"),
            "model": slo.get("model_group") or kwargs.get("model"),
            "status": status,
            "prompt_tokens": slo.get("prompt_tokens"),
            "completion_tokens": slo.get("completion_tokens"),
            "latency_ms": latency,
            "client": slo.get("requester_ip_address") or None,
            "call_type": slo.get("call_type") or kwargs.get("call_type"),
        })

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._write(kwargs, start_time, end_time, 200)

    async def async_post_call_failure_hook(self, request_data, original_exception, user_api_key_dict, traceback_str=None):
        """LiteLLM's own check refuses a body naming api_base or base_url before the auth
        hook sees it ("Rejected Request: ..."), with a 500 in 1.105.7. Log it as the hook's
        refusals are, and answer 400 as the hook does."""
        message = str(original_exception)
        if not (isinstance(original_exception, ValueError) and message.startswith("Rejected Request:")):
            return None
        meta = (request_data or {}).get("metadata") or (request_data or {}).get("litellm_metadata") or {}
        named = sorted(CLIENT_SIDE.intersection(request_data or {})) or ["?"]
        _log_refusal(400, "client credentials: " + ", ".join(named), str(getattr(user_api_key_dict, "request_route", None) or ""),
                     "POST", None, meta.get("requester_ip_address") if isinstance(meta, dict) else None)
        return HTTPException(status_code=400, detail=_credentials_message(named))

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        exc = kwargs.get("exception")
        code = getattr(exc, "status_code", None) or getattr(exc, "code", None) or 500
        try:
            code = int(code)
        except (TypeError, ValueError):
            code = 500
        self._write(kwargs, start_time, end_time, code)


request_log = RequestLog()
