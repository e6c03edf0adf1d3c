"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for tests (loopback only, bounded).

``behaviour`` is a list consumed one request at a time: "ok", "429", "500", "malformed", "400", "nologprobs";
when it runs out, requests succeed. Every request body is recorded in ``requests``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, behaviour: list[str] | None = None, answer: str = "Answer: 3"):
        self.behaviour = list(behaviour or [])
        self.answer = answer
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer.lock:
                    outer.requests.append(body)
                    what = outer.behaviour.pop(0) if outer.behaviour else "ok"
                if what in ("429", "500", "400"):
                    self.send_response(int(what))
                    if what == "429":
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": {"message": f"fake {what}"}}).encode())
                    return
                if what == "malformed":
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b'{"choices": [')
                    return
                reply = {"id": "x", "object": "chat.completion", "model": body.get("model"),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": outer.answer}}]}
                if body.get("logprobs") and what != "nologprobs":
                    top = [{"token": "3", "logprob": -0.3}, {"token": "2", "logprob": -1.6},
                           {"token": "10", "logprob": -2.5}, {"token": " Answer", "logprob": -5.0}]
                    reply["choices"][0]["logprobs"] = {"content": [
                        {"token": "Answer", "logprob": -0.01, "top_logprobs": []},
                        {"token": ":", "logprob": -0.01, "top_logprobs": []},
                        {"token": " 3", "logprob": -0.3, "top_logprobs": top}]}
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(reply).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
