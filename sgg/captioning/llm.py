"""Captions written by a language model behind any OpenAI-compatible chat endpoint (standard library only).

The model receives the scene graph as structured JSON context — image size and resolution, counts per
class, the objects (class, centre, size, image part; at most ``max_objects``) and the best relations (at
most ``max_relations``) — with an instruction to describe only what the graph holds. Works with OpenAI,
vLLM, llama.cpp's server, Ollama (``/v1``), LM Studio, … Configuration: arguments, else the environment
(``SGG_LLM_URL``, ``SGG_LLM_MODEL``, ``SGG_LLM_API_KEY``; ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` as
fall-backs). Timeouts and retries (429 and 5xx, with exponential back-off) are bounded; an unreachable server
raises :class:`LLMError` naming the URL and the cause.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

from sgg.structures import SceneGraph

from .tasks import image_part, labelled

SYSTEM_PROMPT = (
    "You describe satellite images for geospatial analysts. You are given the scene graph of one image as "
    "JSON: objects with their class, position and size, and relations between them. Write a fluent caption "
    "of 3 to 6 sentences: what the scene is, how many objects of each main class there are, where they are, "
    "and the most important relations. State only facts the graph holds; give exact counts."
)


class LLMError(RuntimeError):
    """The language-model server could not be reached or gave no usable answer."""


def graph_context(graph: SceneGraph, top_k: int | None = 100, max_objects: int = 200,
                  max_relations: int = 60) -> dict[str, Any]:
    """The JSON-able context given to the model."""
    g = labelled(graph, top_k=top_k)
    names = [g.vocabulary.objects[i] for i in g.detections.labels.tolist()]
    w, h = g.image_size or (None, None)
    boxes = g.detections.boxes.tensor.tolist()
    objects = []
    for i, (n, b) in enumerate(zip(names, boxes)):
        if i >= max_objects:
            break
        obj = {"id": i, "class": n, "center_px": [round(b[0], 1), round(b[1], 1)],
               "size_px": [round(b[2], 1), round(b[3], 1)]}
        if w and h:
            obj["image_part"] = image_part(b[0], b[1], w, h)
        objects.append(obj)
    rels = []
    lab = g.predicate_labels.tolist() if g.predicate_labels is not None else []
    for (s, o), k in zip(g.pairs.pairs.tolist(), lab):
        if k > 0 and len(rels) < max_relations:
            rels.append({"subject": s, "subject_class": names[s], "predicate": g.vocabulary.predicates[k],
                         "object": o, "object_class": names[o]})
    return {
        "image_size_px": [w, h] if w else None,
        "gsd_m_per_px": (g.metadata or {}).get("gsd"),
        "object_counts": dict(Counter(names).most_common()),
        "objects": objects, "objects_listed": len(objects), "objects_total": len(names),
        "relations": rels, "relations_listed": len(rels), "relations_total": sum(1 for k in lab if k > 0),
    }


class OpenAIChatBackend:
    """POST ``{url}/chat/completions`` with the graph as context; ``caption(graph)`` returns the text."""

    def __init__(self, url: str | None = None, model: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, retries: int = 2, backoff: float = 1.0, temperature: float = 0.0,
                 max_tokens: int = 400, system_prompt: str = SYSTEM_PROMPT):
        env = os.environ
        self.url = (url or env.get("SGG_LLM_URL") or env.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1").rstrip("/")
        self.model = model or env.get("SGG_LLM_MODEL") or "default"
        self.api_key = api_key if api_key is not None else (env.get("SGG_LLM_API_KEY") or env.get("OPENAI_API_KEY"))
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.temperature, self.max_tokens, self.system_prompt = temperature, max_tokens, system_prompt

    @property
    def endpoint(self) -> str:
        return self.url if self.url.endswith("/chat/completions") else self.url + "/chat/completions"

    def messages(self, graph: SceneGraph, top_k: int | None = 100) -> list[dict[str, str]]:
        ctx = json.dumps(graph_context(graph, top_k=top_k), ensure_ascii=False)
        return [{"role": "system", "content": self.system_prompt},
                {"role": "user", "content": f"Scene graph:\n{ctx}\n\nDescribe this image."}]

    def chat(self, messages: list[dict[str, str]]) -> str:
        """One chat completion; retries on connection errors, 429 and 5xx."""
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature,
                           "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    data = json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:300]
                last = f"HTTP {exc.code}: {detail}"
                if exc.code == 429 or exc.code >= 500:
                    continue
                raise LLMError(f"{self.endpoint}: {last}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = f"unreachable ({getattr(exc, 'reason', exc)})"
                continue
            except json.JSONDecodeError as exc:
                raise LLMError(f"{self.endpoint}: the answer is not JSON ({exc})") from None
            try:
                text = data["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                raise LLMError(f"{self.endpoint}: no choices[0].message.content in the answer: {str(data)[:300]}") from None
            if not isinstance(text, str) or not text.strip():
                raise LLMError(f"{self.endpoint}: empty answer")
            return text.strip()
        raise LLMError(f"{self.endpoint}: {last} after {self.retries + 1} attempt(s); set SGG_LLM_URL or pass url=")

    def caption(self, graph: SceneGraph, top_k: int | None = 100) -> str:
        return self.chat(self.messages(graph, top_k=top_k))
