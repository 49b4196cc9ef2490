#!/usr/bin/env python3
"""Fake OpenAI-compatible LLM endpoint for tests (stand-in; Python standard library only).

    POST /v1/chat/completions   a canned answer; "stream": true answers as server-sent events
    GET  /v1/models             one model list
    GET  /_requests             every request recorded so far (JSON list)
    DELETE /_requests           forget them

Each request is recorded with its time, method, path, model, Authorization header and
source address, in memory and (with --log) as JSON lines in a file, so a test can prove
which host called it with which key. With --api-key, a request with another bearer key
is answered 401 like a real provider would.

The scripted agent (the prompt-injected agent of the end-to-end test): when a user message
of a completion request that offers tools holds a line

    AIRLOCK-AGENT-SCRIPT: ["first shell command", "second shell command", ...]

(a JSON list), the answer is a call of the agent's terminal tool (found in the request's
`tools` by name, every required parameter filled from its JSON schema) with the next
command: the first while the messages hold no tool result, the second after one, and so on;
once every command has its result, a plain message ends the turn. Stateless: the step is
the number of tool results in the request. The record of such a request has "answer": what
was sent back (step, tool, command, or finish).

    fake_llm.py [--host ::] [--port 8000] [--log FILE] [--api-key KEY]
"""
from __future__ import annotations

import argparse
import json
import re
import socket
import socketserver
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

RECORDS: list[dict] = []
LOCK = threading.Lock()
ARGS = argparse.Namespace()
CANNED = "Hello from the fake LLM stand-in."
SCRIPT_MARK = re.compile(r"^\s*AIRLOCK-AGENT-SCRIPT:\s*(\[.*\])\s*$", re.MULTILINE)
# The terminal tool's names (OpenHands SDK 1.x: "terminal"; earlier: "execute_bash").
TERMINAL_TOOLS = ("terminal", "execute_bash", "bash")
# The terminal tool's own timeout for a scripted command (seconds), where its schema has one:
# without it the SDK's terminal asks for confirmation after 30 s without new output.
COMMAND_TIMEOUT = 120


def text_of(content) -> str:
    """A message's text, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def agent_script(body: dict) -> list | None:
    """The commands of the last user message that carries a script, if the request offers tools."""
    if not body.get("tools"):
        return None
    script = None
    for msg in body.get("messages") or []:
        if msg.get("role") == "user":
            for found in SCRIPT_MARK.findall(text_of(msg.get("content"))):
                try:
                    commands = json.loads(found)
                except ValueError:
                    continue
                if isinstance(commands, list) and all(isinstance(c, str) for c in commands):
                    script = commands
    return script


def terminal_tool(tools: list) -> dict | None:
    """The function definition of the agent's terminal tool among the offered tools."""
    functions = [t.get("function") or {} for t in tools if isinstance(t, dict)]
    for name in TERMINAL_TOOLS:
        for fn in functions:
            if fn.get("name") == name:
                return fn
    return None


def tool_arguments(fn: dict, command: str, step: int) -> dict:
    """Arguments for one call: the command, and a value for every other required parameter."""
    params = fn.get("parameters") or {}
    props = params.get("properties") or {}
    args: dict = {"command": command}
    if "timeout" in props:
        args["timeout"] = COMMAND_TIMEOUT
    for name in params.get("required") or []:
        if name in args:
            continue
        spec = props.get(name) or {}
        if spec.get("enum"):
            args[name] = "LOW" if "LOW" in spec["enum"] else spec["enum"][0]
        elif spec.get("type") == "boolean":
            args[name] = False
        elif spec.get("type") in ("integer", "number"):
            args[name] = 0
        else:
            args[name] = f"airlock scripted step {step + 1}"
    return args


def scripted_answer(body: dict, script: list) -> dict:
    """The next move of the scripted agent: {"tool_call": {...}} or {"content": "..."}."""
    messages = body.get("messages") or []
    step = sum(1 for m in messages if m.get("role") == "tool")
    fn = terminal_tool(body["tools"])
    if fn is None:
        names = [(t.get("function") or {}).get("name") for t in body["tools"]]
        return {"content": f"AIRLOCK-AGENT-SCRIPT: no terminal tool among {names}", "step": step}
    if step >= len(script):
        return {"content": f"AIRLOCK-AGENT-SCRIPT finished: {len(script)} commands run.", "step": step}
    call = {"id": f"call_airlock_{step}_{uuid.uuid4().hex[:8]}", "type": "function",
            "function": {"name": fn["name"], "arguments": json.dumps(tool_arguments(fn, script[step], step))}}
    return {"tool_call": call, "step": step}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-llm-stand-in/1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def record(self, model=None, stream=False, answer=None) -> None:
        source = self.client_address[0]
        if source.startswith("::ffff:"):
            source = source[7:]
        entry = {
            "time": time.time(),
            "method": self.command,
            "path": self.path,
            "model": model,
            "stream": stream,
            "authorization": self.headers.get("Authorization"),
            "source": source,
        }
        if answer is not None:
            entry["answer"] = answer
        with LOCK:
            RECORDS.append(entry)
            if ARGS.log:
                with open(ARGS.log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry) + "\n")

    def key_ok(self) -> bool:
        return not ARGS.api_key or self.headers.get("Authorization") == f"Bearer {ARGS.api_key}"

    def authorised(self) -> bool:
        if not self.key_ok():
            self.reply(401, {"error": {"message": "Incorrect API key provided (fake LLM stand-in)", "type": "invalid_request_error"}})
            return False
        return True

    def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0]
        if path == "/_requests":
            with LOCK:
                return self.reply(200, list(RECORDS))
        if path in ("/v1/models", "/models"):
            self.record()
            if self.authorised():
                self.reply(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "stand-in"}]})
            return None
        if path in ("/", "/health"):
            return self.reply(200, {"status": "ok", "stand_in": "fake-llm"})
        return self.reply(404, {"error": "not found"})

    def do_DELETE(self):  # noqa: N802
        if self.path.split("?")[0] == "/_requests":
            with LOCK:
                RECORDS.clear()
            return self.reply(200, [])
        return self.reply(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        path = self.path.split("?")[0]
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.reply(400, {"error": {"message": "body is not JSON"}})
        if path not in ("/v1/chat/completions", "/chat/completions"):
            return self.reply(404, {"error": "not found"})
        model, stream = body.get("model"), bool(body.get("stream"))
        script = agent_script(body)
        answer = scripted_answer(body, script) if script is not None else {"content": CANNED}
        summary = None
        if script is not None and self.key_ok():
            call = answer.get("tool_call")
            summary = {"step": answer["step"], "of": len(script)} | (
                {"tool": call["function"]["name"], "command": script[answer["step"]]} if call
                else {"finish": answer["content"]})
        self.record(model, stream, summary)
        if not self.authorised():
            return None
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
        call = answer.get("tool_call")
        finish = "tool_calls" if call else "stop"
        if not stream:
            message = {"role": "assistant", "content": None, "tool_calls": [call]} if call else \
                {"role": "assistant", "content": answer["content"]}
            return self.reply(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            })
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if call:  # the call's name and id first, then its arguments, as OpenAI streams them
            fn = call["function"]
            chunks = [{"role": "assistant", "content": None, "tool_calls": [
                          {"index": 0, "id": call["id"], "type": "function",
                           "function": {"name": fn["name"], "arguments": ""}}]},
                      {"tool_calls": [{"index": 0, "function": {"arguments": fn["arguments"]}}]}]
        else:
            chunks = [{"role": "assistant", "content": ""}] + [{"content": w + " "} for w in answer["content"].split()]
        for i, delta in enumerate(chunks + [{}]):
            event = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish if i == len(chunks) else None}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        return None


class DualStackServer(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="::")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log", default=None, help="append every request as a JSON line to this file")
    parser.add_argument("--api-key", default=None, help="answer 401 to any other bearer key")
    ARGS = parser.parse_args()
    DualStackServer((ARGS.host, ARGS.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
