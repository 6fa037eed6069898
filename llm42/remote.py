"""A remote backend: the same reply stream, from any OpenAI-compatible chat-completions server.

vLLM, TGI, `transformers serve`, llama.cpp's server and Ollama speak this protocol. top_k and
repetition_penalty are not part of it: they go as extra parameters (vLLM takes them), and are dropped,
with one notice, by a server that refuses them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

from .conversation import Dialog
from .settings import SamplingSettings
from .stream import Response


class RemoteError(RuntimeError):
    """The server cannot be used; the message says what to do."""


def explain(e: Exception, base_url: str, model: str | None) -> str:
    """One line for an error from the openai client."""
    import openai

    if isinstance(e, openai.APIConnectionError):
        return f"cannot reach {base_url}: is the server running, and is the URL right (it usually ends in /v1)?"
    if isinstance(e, openai.AuthenticationError):
        return f"{base_url} refused the API key (HTTP 401): check the variable named by --api-key-env"
    if isinstance(e, openai.NotFoundError):
        return f"{base_url} has no model {model!r} or no chat endpoint (HTTP 404): check --model and the URL"
    if isinstance(e, openai.RateLimitError):
        return f"{base_url} is rate-limiting (HTTP 429): wait a moment and send again"
    if isinstance(e, openai.APIStatusError):
        detail = ""
        try:
            detail = str(e.response.json().get("detail") or e.response.json().get("error") or "")
        except Exception:
            pass
        return f"{base_url} answered HTTP {e.status_code}" + (f": {detail[:200]}" if detail else "")
    return f"{type(e).__name__}: {e}"


@dataclass
class RemoteEngine:
    base_url: str
    model: str | None
    api_key: str
    warn: object = print
    window: int = 0  # unknown: the server fits the context
    extras_ok: bool = True
    client: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import openai

        self.client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key or "none", max_retries=0, timeout=600)

    def connect(self) -> str:
        """Check the server answers and settle the model name (the server's only model if none was given)."""
        try:
            models = [m.id for m in self.client.models.list().data]
        except Exception as e:
            raise RemoteError(explain(e, self.base_url, self.model)) from None
        if self.model is None:
            if not models:
                raise RemoteError(f"{self.base_url} lists no models: pass --model NAME")
            self.model = models[0]
        elif models and self.model not in models:
            shown = ", ".join(models[:5]) + (" ..." if len(models) > 5 else "")
            raise RemoteError(f"{self.base_url} has no model {self.model!r}; it has: {shown}")
        return self.model

    def reply(self, dialog: Dialog, s: SamplingSettings, debug: bool = False) -> tuple[Iterator[Response], int]:
        return self._stream(dialog.render(), s), 0

    def _request(self, messages: list[dict], s: SamplingSettings):
        kw = dict(model=self.model, messages=messages, stream=True, temperature=s.temperature, top_p=s.top_p,
                  max_tokens=s.max_new_tokens, stream_options={"include_usage": True})
        if s.seed is not None:
            kw["seed"] = s.seed
        if self.extras_ok and (s.top_k or s.repetition_penalty != 1.0):
            kw["extra_body"] = {"top_k": s.top_k, "repetition_penalty": s.repetition_penalty}
        import openai

        try:
            return self.client.chat.completions.create(**kw)
        except openai.APIStatusError as e:
            said = f"{e} {getattr(e, 'body', '')} {e.response.text}"
            if e.status_code in (400, 422) and "extra_body" in kw and ("top_k" in said or "repetition_penalty" in said):
                self.extras_ok = False
                self.warn(f"{self.base_url} does not take top_k or repetition_penalty; sampling without them")
                del kw["extra_body"]
                return self.client.chat.completions.create(**kw)
            raise

    def _stream(self, messages: list[dict], s: SamplingSettings) -> Iterator[Response]:
        stats = Response("")
        start = time.perf_counter()
        first = last = None
        reason = None
        try:
            stream = self._request(messages, s)
        except Exception as e:
            raise RemoteError(explain(e, self.base_url, self.model)) from None
        try:
            for chunk in stream:
                if chunk.usage:
                    stats.prompt_tokens = chunk.usage.prompt_tokens or 0
                    stats.generation_tokens = chunk.usage.completion_tokens or stats.generation_tokens
                for choice in chunk.choices or []:
                    text = choice.delta.content if choice.delta else None
                    if text:
                        last = time.perf_counter()
                        first = first or last
                        stats.generation_tokens += 1
                        yield Response(text)
                    if choice.finish_reason:
                        reason = choice.finish_reason
        except Exception as e:  # the connection went away mid-reply: keep what came
            self.warn(explain(e, self.base_url, self.model))
            reason = "connection lost"
        finally:
            stream.close()
        stats.finish_reason = "stop" if reason in (None, "stop") else reason
        if first is not None:
            stats.ttft = first - start
            stats.decode_tps = (stats.generation_tokens - 1) / (last - first) if last > first else 0.0
        yield stats
