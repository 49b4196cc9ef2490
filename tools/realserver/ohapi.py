"""A small client of the OpenHands app server's V1 API (Python standard library only),
shared by the tests of the image built from PyPI (tools/realserver/test_realserver.py)
and the lab's end-to-end test (tests/e2e/test_real_openhands.py).

It speaks only the calls a user's browser makes, as the pinned release (openhands-ai
1.11.0) defines them:

    POST /api/v1/settings                      {"agent_settings_diff": {"llm": {...}}}
    GET  /api/v1/settings
    POST /api/v1/app-conversations             start task (initial message, run)
    GET  /api/v1/app-conversations/start-tasks?ids=...
    GET  /api/v1/app-conversations?ids=...     execution status, sandbox id
    GET  /api/v1/conversation/<id>/events/search
"""
from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

FINAL_STATUSES = {"finished", "error", "stuck"}


class ApiError(AssertionError):
    pass


class Api:
    """base: e.g. http://127.0.0.1:3000 or https://127.0.0.1:8443; login: (user, password)
    for the proxy's basic authentication, or None; insecure: skip TLS verification (the
    lab's self-signed certificate)."""

    def __init__(self, base: str, login: tuple[str, str] | None = None, insecure: bool = False,
                 timeout: float = 30.0):
        self.base = base.rstrip("/")
        self.headers = {"Accept": "application/json"}
        if login:
            token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.context = None
        if base.startswith("https:"):
            self.context = ssl.create_default_context()
            if insecure:
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE
        self.timeout = timeout

    def request(self, method: str, path: str, body=None, query: dict | None = None):
        """(status, decoded JSON or text); never raises for an HTTP status."""
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = None
        headers = dict(self.headers)
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.context) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def ok(self, method: str, path: str, body=None, query: dict | None = None):
        status, payload = self.request(method, path, body, query)
        if not 200 <= status < 300:
            raise ApiError(f"{method} {path}: HTTP {status}: {str(payload)[:500]}")
        return payload

    # --- the calls ---------------------------------------------------------------------
    def wait_healthy(self, timeout: float = 120.0, path: str = "/health") -> float:
        """Seconds until `path` answers 200."""
        start = time.monotonic()
        last = None
        while time.monotonic() - start < timeout:
            try:
                status, last = self.request("GET", path)
                if status == 200:
                    return time.monotonic() - start
            except OSError as exc:  # connection refused/reset while starting
                last = exc
            time.sleep(0.5)
        raise ApiError(f"{path} did not answer 200 within {timeout:.0f} s (last: {last!r})")

    def configure_llm(self, model: str, base_url: str, api_key: str) -> dict:
        self.ok("POST", "/api/v1/settings",
                {"agent_settings_diff": {"llm": {"model": model, "base_url": base_url, "api_key": api_key}}})
        return self.ok("GET", "/api/v1/settings")

    def start_conversation(self, message: str) -> dict:
        return self.ok("POST", "/api/v1/app-conversations", {
            "initial_message": {"role": "user", "content": [{"type": "text", "text": message}], "run": True},
        })

    def wait_started(self, task_id: str, timeout: float = 240.0) -> dict:
        """The start task once READY (raises on ERROR or timeout)."""
        deadline = time.monotonic() + timeout
        task: dict = {}
        while time.monotonic() < deadline:
            tasks = self.ok("GET", "/api/v1/app-conversations/start-tasks", query={"ids": [task_id]})
            task = tasks[0] or {}
            if task.get("status") == "READY":
                return task
            if task.get("status") == "ERROR":
                raise ApiError(f"conversation start failed: {task.get('detail')}")
            time.sleep(1)
        raise ApiError(f"conversation start not READY within {timeout:.0f} s: {task}")

    def start_and_wait(self, message: str, timeout: float = 240.0, port_retries: int = 2) -> dict:
        """Start a conversation and wait until READY. OpenHands 1.11.0 picks each sandbox's
        host ports by binding port 0 inside its own container
        (docker_sandbox_service.py, _find_unused_port), which cannot see the host's
        ports: now and then a new sandbox asks Docker for a port another sandbox already
        publishes, and its start fails with "port is already allocated". That error alone
        is retried (a user would press start again); every other failure is raised."""
        for attempt in range(port_retries + 1):
            try:
                return self.wait_started(self.start_conversation(message)["id"], timeout=timeout)
            except ApiError as err:
                if "port is already allocated" not in str(err) or attempt == port_retries:
                    raise
        raise AssertionError("unreachable")

    def conversation(self, conversation_id: str) -> dict | None:
        return self.ok("GET", "/api/v1/app-conversations", query={"ids": [conversation_id]})[0]

    def wait_final(self, conversation_id: str, timeout: float = 240.0) -> dict:
        """The conversation once its execution status is final (finished, error, stuck)."""
        deadline = time.monotonic() + timeout
        conv: dict | None = None
        while time.monotonic() < deadline:
            conv = self.conversation(conversation_id)
            if conv and conv.get("execution_status") in FINAL_STATUSES:
                return conv
            time.sleep(1)
        raise ApiError(f"conversation {conversation_id} not finished within {timeout:.0f} s: {conv}")

    def events(self, conversation_id: str) -> list[dict]:
        items: list[dict] = []
        page = None
        while True:
            query = {"limit": 100, **({"page_id": page} if page else {})}
            res = self.ok("GET", f"/api/v1/conversation/{conversation_id}/events/search", query=query)
            items += res.get("items", [])
            page = res.get("next_page_id")
            if not page:
                return items


def agent_texts(events: list[dict]) -> list[str]:
    """The text the agent said, one string per agent message event."""
    out = []
    for ev in events:
        if ev.get("source") != "agent" or ev.get("kind") != "MessageEvent":
            continue
        msg = ev.get("llm_message") or {}
        parts = msg.get("content") or []
        out.append("".join(p.get("text", "") for p in parts if isinstance(p, dict)))
    return out
