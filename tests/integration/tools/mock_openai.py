#!/usr/bin/env python3
"""A loopback mock of an OpenAI-compatible server (another vendor's, not
hestia) for tests/integration/assess.sh.

    mock_openai.py --port-file FILE --log FILE [--fail-first N] [--models a,b]
                   [--fail-rate P] [--delay-ms MS] [--seed S]

Listens on 127.0.0.1 on a free port and writes the port to --port-file.
Every request is appended to --log as one JSON line: method, path,
authorization header and the parsed body.

  GET  /v1/models            the --models names (default mock-model)
  POST /v1/chat/completions  the answer's content is a JSON object that
                             tells what this request carried:
                             {"system": <the system message>, "user_head":
                             <the first 80 characters of the user message>,
                             "model": <the model>, "risk_level": "high"};
                             streamed (SSE, one delta per 16 characters, a
                             usage chunk when stream_options.include_usage,
                             then [DONE]) when "stream" is true. The model
                             "broken" gets a 400 with an OpenAI error object.
                             The first N chat requests (--fail-first) get a
                             503 with Retry-After: 0. Each chat request fails
                             with a 500 with probability --fail-rate (seeded
                             by --seed), and every answer waits --delay-ms.
  POST /mock/config          {"fail_rate": P, "delay_ms": MS}: changes both
                             while the mock runs (either may be left out).
"""
import argparse
import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BROKEN_MESSAGE = "model 'broken' is not loaded"


class State:
    lock = threading.Lock()
    fail_left = 0
    fail_rate = 0.0
    delay_ms = 0
    rng = random.Random(1)
    log = None
    models = []


class Handler(BaseHTTPRequestHandler):
    server_version = "mock-openai/1"

    def log_message(self, fmt, *args):  # quiet: the test reads --log instead
        pass

    def record(self, body):
        entry = {"method": self.command, "path": self.path,
                 "authorization": self.headers.get("Authorization"), "body": body}
        with State.lock:
            with open(State.log, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def send_json(self, code, obj, extra_headers=()):
        data = json.dumps(obj).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.record(None)
        if self.path == "/v1/models":
            self.send_json(200, {"object": "list",
                                 "data": [{"id": m, "object": "model", "owned_by": "mock"} for m in State.models]})
        else:
            self.send_json(404, {"error": {"message": "no route " + self.path, "type": "not_found"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw)
        except ValueError:
            self.record(raw.decode("utf-8", "replace"))
            self.send_json(400, {"error": {"message": "the body is not JSON", "type": "invalid_request_error"}})
            return
        self.record(body)
        if self.path == "/mock/config":
            with State.lock:
                State.fail_rate = float(body.get("fail_rate", State.fail_rate))
                State.delay_ms = int(body.get("delay_ms", State.delay_ms))
            self.send_json(200, {"fail_rate": State.fail_rate, "delay_ms": State.delay_ms})
            return
        if self.path != "/v1/chat/completions":
            self.send_json(404, {"error": {"message": "no route " + self.path, "type": "not_found"}})
            return
        with State.lock:
            fail = State.fail_left > 0
            if fail:
                State.fail_left -= 1
            broken = State.rng.random() < State.fail_rate
            delay = State.delay_ms
        if delay:
            time.sleep(delay / 1000.0)
        if broken:
            self.send_json(500, {"error": {"message": "injected failure", "type": "server_error"}})
            return
        if fail:
            self.send_json(503, {"error": {"message": "warming up", "type": "server_error"}},
                           [("Retry-After", "0")])
            return
        model = body.get("model")
        if model == "broken":
            self.send_json(400, {"error": {"message": BROKEN_MESSAGE, "type": "invalid_request_error",
                                           "param": "model", "code": None}})
            return
        msgs = body.get("messages") or []
        system = next((m.get("content") for m in msgs if m.get("role") == "system"), None)
        user = next((m.get("content") for m in reversed(msgs) if m.get("role") == "user"), "")
        content = json.dumps({"system": system, "user_head": user[:80], "model": model, "risk_level": "high"})
        usage = {"prompt_tokens": len(raw) // 4, "completion_tokens": len(content) // 4,
                 "total_tokens": len(raw) // 4 + len(content) // 4}
        if not body.get("stream"):
            self.send_json(200, {"id": "chatcmpl-mock", "object": "chat.completion", "model": model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                              "finish_reason": "stop"}],
                                 "usage": usage})
            return
        # HTTP/1.0 style: the body ends when the connection closes.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

        def event(obj):
            self.wfile.write(b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n")
            self.wfile.flush()

        def chunk(delta, finish=None):
            return {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        event(chunk({"role": "assistant"}))
        for i in range(0, len(content), 16):
            event(chunk({"content": content[i:i + 16]}))
        event(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            event({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model, "choices": [],
                   "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 would drop the SYNs of 13 agents at once


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--models", default="mock-model")
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    State.fail_rate = a.fail_rate
    State.delay_ms = a.delay_ms
    State.rng = random.Random(a.seed)
    State.fail_left = a.fail_first
    State.log = a.log
    State.models = [m for m in a.models.split(",") if m]
    open(a.log, "w").close()
    srv = Server(("127.0.0.1", 0), Handler)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(a.port_file + ".tmp", a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
