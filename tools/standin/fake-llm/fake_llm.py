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

    fake_llm.py [--host ::] [--port 8000] [--log FILE] [--api-key KEY]
"""
from __future__ import annotations

import argparse
import json
import socket
import socketserver
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

RECORDS: list[dict] = []
LOCK = threading.Lock()
ARGS = argparse.Namespace()


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

    def record(self, model=None, stream=False) -> None:
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
        with LOCK:
            RECORDS.append(entry)
            if ARGS.log:
                with open(ARGS.log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry) + "\n")

    def authorised(self) -> bool:
        if ARGS.api_key and self.headers.get("Authorization") != f"Bearer {ARGS.api_key}":
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
        self.record(model, stream)
        if not self.authorised():
            return None
        text = "Hello from the fake LLM stand-in."
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
        if not stream:
            return self.reply(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            })
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunks = [{"role": "assistant", "content": ""}] + [{"content": w + " "} for w in text.split()]
        for i, delta in enumerate(chunks + [{}]):
            event = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if i == len(chunks) else None}]}
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
