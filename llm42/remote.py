"""A remote backend: the same reply stream, from any OpenAI-compatible chat-completions server.

vLLM, TGI, `transformers serve`, llama.cpp's server and Ollama speak this protocol. top_k and
repetition_penalty are not part of it: they go as extra parameters (vLLM takes them), and are dropped,
with one notice, by a server that refuses them. Nothing here imports torch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .backend import Finish, Response
from .conversation import Dialog
from .errors import Llm42Error
from .i18n import t
from .settings import SamplingSettings


class RemoteError(Llm42Error):
    """The server cannot be used; the message says what to do."""


def explain(e: Exception, base_url: str, model: str | None) -> str:
    """One line for an error from the openai client."""
    import openai

    if isinstance(e, openai.APIConnectionError):
        return t("unreachable", url=base_url)
    if isinstance(e, openai.AuthenticationError):
        return t("http_401", url=base_url)
    if isinstance(e, openai.NotFoundError):
        return t("http_404_api", url=base_url) if model is None else t("http_404", url=base_url, model=model)
    if isinstance(e, openai.RateLimitError):
        return t("http_429", url=base_url)
    if isinstance(e, openai.APIStatusError):
        detail = ""
        try:
            detail = str(e.response.json().get("detail") or e.response.json().get("error") or "")
        except Exception:
            pass
        return t("http_status", url=base_url, code=e.status_code, detail=f": {detail[:200]}" if detail else "")
    return f"{type(e).__name__}: {e}"


@dataclass
class RemoteEngine:
    base_url: str
    model: str | None
    api_key: str
    warn: object = print
    window: int = 0  # unknown: the server fits the context
    sampling_defaults: dict = field(default_factory=dict)  # the server applies its own
    device: str = "remote"
    speculate: bool = False  # the server decodes: nothing to draft here
    extras_ok: bool = True
    client: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.client = self._client(self.base_url)

    def _client(self, url: str):
        import openai

        return openai.OpenAI(base_url=url, api_key=self.api_key or "none", max_retries=0, timeout=600)

    def default_system(self) -> str | None:
        return None  # the server's template decides, unseen from here

    @property
    def endpoint(self) -> str:
        return self.base_url

    def set_speculate(self, on: bool) -> bool:
        return False

    def count_tokens(self, text: str) -> int | None:
        return None  # the server's tokenizer

    def stored(self) -> tuple[int, int] | None:
        return None  # the server keeps its own cache

    def ready(self, dialog: Dialog) -> None:
        pass  # the server keeps its own cache

    def keep_for(self, chat: Path | None) -> None:
        pass  # the server keeps its own cache

    @property
    def name(self) -> str:
        return self.model or ""

    def connect(self) -> str:
        """Check the server answers and settle the model name (the server's only model if none was given).
        A URL without /v1 that has no API is tried once more with /v1 added (and that is said)."""
        try:
            models = self._models()
        except Exception as e:
            import openai

            retry = self.base_url.rstrip("/") + "/v1"
            if not isinstance(e, openai.NotFoundError) or self.base_url.rstrip("/").endswith("/v1"):
                raise RemoteError(explain(e, self.base_url, None)) from None
            client, self.client = self.client, self._client(retry)
            try:
                models = self._models()
            except Exception:
                self.client = client
                raise RemoteError(explain(e, self.base_url, None)) from None
            self.warn(t("using_v1", url=self.base_url, retry=retry))
            self.base_url = retry
        if self.model is None:
            if not models:
                raise RemoteError(t("no_models", url=self.base_url))
            self.model = models[0]
        elif models and self.model not in models:
            shown = ", ".join(models[:5]) + (" ..." if len(models) > 5 else "")
            raise RemoteError(t("unknown_model", url=self.base_url, model=self.model, models=shown))
        return self.model

    def _models(self) -> list[str]:
        return [m.id for m in self.client.models.list().data]

    def reply(self, dialog: Dialog, s: SamplingSettings, debug: bool = False) -> Iterator[Response]:
        """Sends the request now (a refusal raises RemoteError here, before any reply is shown)."""
        start = time.perf_counter()
        try:
            stream = self._request(dialog.render(), s)
        except Exception as e:
            raise RemoteError(explain(e, self.base_url, self.model)) from None
        return self._stream(stream, start)

    def _request(self, messages: list[dict], s: SamplingSettings):
        kw = dict(
            model=self.model,
            messages=messages,
            stream=True,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_new_tokens,
            stream_options={"include_usage": True},
        )
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
                self.warn(t("no_extras", url=self.base_url))
                del kw["extra_body"]
                return self.client.chat.completions.create(**kw)
            raise

    def _stream(self, stream, start: float) -> Iterator[Response]:
        r = Response("")
        first = None
        reason = None
        try:
            for chunk in stream:
                if chunk.usage:
                    r.prompt_tokens = chunk.usage.prompt_tokens or 0
                    r.generation_tokens = chunk.usage.completion_tokens or r.generation_tokens
                for choice in chunk.choices or []:
                    text = choice.delta.content if choice.delta else None
                    if choice.finish_reason:
                        reason = choice.finish_reason
                    if not text:
                        continue
                    now = time.perf_counter()
                    if first is None:
                        first, r.ttft = now, now - start
                    r.generation_tokens += 1
                    r.decode_tps = (r.generation_tokens - 1) / (now - first) if now > first else 0.0
                    r.text = text
                    yield replace(r)
        except Exception as e:  # the connection went away mid-reply: keep what came, say why at the end
            reason, r.error = Finish.LOST, t("lost_midway", url=self.base_url, why=type(e).__name__)
        finally:
            stream.close()
        if reason is None:  # the stream just ended: a server that died without finishing its HTTP reply
            reason, r.error = Finish.LOST, t("lost_unfinished", url=self.base_url)
        r.text = ""
        r.finish_reason = reason if reason in (Finish.LENGTH, Finish.LOST) else Finish.STOP
        yield r
