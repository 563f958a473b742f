"""The OpenAI-compatible chat backend against a tiny HTTP server on 127.0.0.1 (started per test, bounded)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch

from sgg.captioning import caption
from sgg.captioning.llm import LLMError, OpenAIChatBackend, graph_context
from sgg.structures import Detections, OrientedBoxes, PairSet, SceneGraph, Vocabulary


def _graph() -> SceneGraph:
    v = Vocabulary.star()
    boxes = torch.tensor([[100, 100, 40, 10, 0], [100, 150, 200, 12, 0]], dtype=torch.float32)
    return SceneGraph(Detections(OrientedBoxes(boxes), [v.object_index("ship"), v.object_index("dock")]),
                      PairSet([[0, 1]]), predicate_labels=[v.predicate_index("parallelly docked at")],
                      image_size=(400, 300), metadata={"gsd": 0.5})


class _Server:
    """Answers POST /v1/chat/completions from a script of (status, body) replies; records the requests."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": json.loads(self.rfile.read(n))})
                status, body = outer.replies.pop(0) if outer.replies else (500, {"error": "no more replies"})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _reply(text: str):
    return 200, {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


def test_caption_through_the_chat_api_sends_the_graph():
    with _Server([_reply("  A ship is docked at a pier.  ")]) as srv:
        text = caption(_graph(), "openai", url=srv.url, model="test-model", api_key="k123", timeout=5)
    assert text == "A ship is docked at a pier."
    (req,) = srv.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer k123"
    body = req["body"]
    assert body["model"] == "test-model" and body["messages"][0]["role"] == "system"
    ctx = json.loads(body["messages"][1]["content"].split("Scene graph:\n", 1)[1].split("\n\nDescribe", 1)[0])
    assert ctx["object_counts"] == {"ship": 1, "dock": 1}
    assert ctx["relations"] == [{"subject": 0, "subject_class": "ship", "predicate": "parallelly docked at",
                                 "object": 1, "object_class": "dock"}]


def test_retries_on_server_errors_then_succeeds():
    with _Server([(503, {"error": "busy"}), (429, {"error": "slow down"}), _reply("ok")]) as srv:
        be = OpenAIChatBackend(url=srv.url, model="m", retries=2, backoff=0.0, timeout=5)
        assert be.caption(_graph()) == "ok"
    assert len(srv.requests) == 3


def test_client_errors_and_bad_answers_are_clear():
    with _Server([(401, {"error": "bad key"}), (200, {"choices": []})]) as srv:
        be = OpenAIChatBackend(url=srv.url, retries=3, backoff=0.0, timeout=5)
        with pytest.raises(LLMError, match="HTTP 401"):
            be.caption(_graph())
        with pytest.raises(LLMError, match="no choices"):
            be.caption(_graph())
    assert len(srv.requests) == 2  # a 4xx is not retried


def test_unreachable_server_names_the_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    be = OpenAIChatBackend(url=f"http://127.0.0.1:{port}/v1", retries=1, backoff=0.0, timeout=2)
    with pytest.raises(LLMError, match=rf"127\.0\.0\.1:{port}/v1/chat/completions: unreachable .* after 2 attempt"):
        be.caption(_graph())


def test_configuration_from_the_environment(monkeypatch):
    monkeypatch.setenv("SGG_LLM_URL", "http://example.invalid/v1/")
    monkeypatch.setenv("SGG_LLM_MODEL", "qwen")
    monkeypatch.setenv("SGG_LLM_API_KEY", "env-key")
    be = OpenAIChatBackend()
    assert be.endpoint == "http://example.invalid/v1/chat/completions" and be.model == "qwen" and be.api_key == "env-key"
    ctx = graph_context(_graph())
    assert ctx["objects"][0]["image_part"] == "left"  # (100, 100) of 400 × 300: middle row, left column
    assert ctx["gsd_m_per_px"] == 0.5
    with pytest.raises(ValueError, match="unknown backend"):
        caption(_graph(), "telepathy")
