"""`python -m eval.judge`: score answers with an LLM judge behind any OpenAI-compatible server.

Works with OpenAI, vLLM, `transformers serve`, llama.cpp's server. The API key comes from an environment
variable and is never printed or stored. Requests run with bounded concurrency and retry with backoff;
a reply that is not the expected JSON is asked again, then recorded as unparsed with its raw text (never
silently scored). Resumable: ids already judged are skipped."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml

from .common import append_jsonl, read_jsonl

RUBRIC = Path(__file__).parent / "eval_prompt.yaml"


class Unparsed(ValueError):
    """The judge's reply is not the JSON object the rubric asks for."""


def load_rubric(path: Path = RUBRIC) -> dict:
    rubric = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for key in ("metrics", "prompt"):
        if key not in rubric:
            raise SystemExit(f"error: {path} has no '{key}'")
    return rubric


def parse_scores(text: str, metrics: list[str], scale=(1, 5)) -> tuple[dict[str, int], str]:
    """The scores and reason from the judge's reply, or Unparsed saying what was wrong."""
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        raise Unparsed("no JSON object in the reply")
    try:
        data = json.loads(match.group(0))
    except ValueError as e:
        raise Unparsed(f"invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise Unparsed("the JSON is not an object")
    scores = {}
    for m in metrics:
        v = data.get(m)
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or not scale[0] <= v <= scale[1]:
            raise Unparsed(f"{m} is {v!r}, not a whole number from {scale[0]} to {scale[1]}")
        scores[m] = v
    return scores, str(data.get("reason", ""))


def judge_one(
    client, model: str, rubric: dict, item: dict, parse_retries: int, retries: int, max_tokens: int = 256
) -> dict:
    prompt = rubric["prompt"].format(task=item.get("task", ""), question=item["question"], answer=item["answer"])
    messages = ([{"role": "system", "content": rubric["system"]}] if rubric.get("system") else []) + [
        {"role": "user", "content": prompt}
    ]
    record = {"id": item["id"], "category": item.get("category"), "task": item.get("task"), "judge_model": model}
    raw, why = "", ""
    for attempt in range(1, parse_retries + 2):
        raw = call(client, model, messages, retries, max_tokens)
        try:
            scores, reason = parse_scores(raw, rubric["metrics"], tuple(rubric.get("scale", (1, 5))))
            return record | {"scores": scores, "reason": reason, "attempts": attempt}
        except Unparsed as e:
            why = str(e)
    return record | {"unparsed": True, "why": why, "raw": raw, "attempts": parse_retries + 1}


def call(client, model: str, messages: list[dict], retries: int, max_tokens: int = 256) -> str:
    """One chat completion; connection errors, 429 and 5xx are retried with exponential backoff."""
    import openai

    for attempt in range(retries + 1):
        try:
            r = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=max_tokens)
            return r.choices[0].message.content or ""
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError):
            if attempt == retries:
                raise
            time.sleep(min(2**attempt * 0.5, 20))
    raise AssertionError("unreachable")


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.judge", description=__doc__.split("\n\n")[0])
    p.add_argument("--answers", required=True, help="answers.jsonl from eval.answer")
    p.add_argument("--out", default=None, help="judgments.jsonl (default: beside the answers)")
    p.add_argument("--judge-base-url", required=True, help="e.g. https://api.openai.com/v1 or http://localhost:8000/v1")
    p.add_argument("--judge-model", required=True)
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="the environment variable holding the key")
    p.add_argument("--rubric", default=str(RUBRIC))
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--retries", type=int, default=4, help="per request, for connection errors, 429 and 5xx")
    p.add_argument("--parse-retries", type=int, default=1, help="asks again when the reply is not the JSON")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--max-tokens", type=int, default=256, help="longest judgment (six scores and a reason fit in 256)")
    return p


def main(argv: list[str] | None = None) -> int:
    import openai

    a = setup_arg_parser().parse_args(argv)
    rubric = load_rubric(Path(a.rubric))
    answers = [r for r in read_jsonl(Path(a.answers)) if "answer" in r]
    out = Path(a.out) if a.out else Path(a.answers).with_name("judgments.jsonl")
    done = {str(r["id"]) for r in read_jsonl(out) if "scores" in r or r.get("unparsed")}
    todo = [r for r in answers if str(r["id"]) not in done]
    print(f"{len(answers)} answers, {len(answers) - len(todo)} already judged in {out}", file=sys.stderr)
    client = openai.OpenAI(
        base_url=a.judge_base_url, api_key=os.environ.get(a.api_key_env) or "none", timeout=a.timeout, max_retries=0
    )
    failed = 0
    with ThreadPoolExecutor(max_workers=max(a.concurrency, 1)) as pool:
        futures = {
            pool.submit(judge_one, client, a.judge_model, rubric, r, a.parse_retries, a.retries, a.max_tokens): r
            for r in todo
        }
        for n, f in enumerate(as_completed(futures), 1):
            item = futures[f]
            try:
                record = f.result()
            except openai.APIStatusError as e:
                failed += 1
                code = e.status_code
                hint = (
                    "check --judge-model"
                    if code in (400, 404)
                    else "check the key"
                    if code == 401
                    else "see the server log"
                )
                print(f"error: id {item['id']}: the judge server answered HTTP {code} ({hint})", file=sys.stderr)
                continue
            except openai.APIConnectionError:
                failed += 1
                print(f"error: id {item['id']}: cannot reach {a.judge_base_url}", file=sys.stderr)
                continue
            append_jsonl(out, record)
            print(
                f"[{n}/{len(todo)}] id {record['id']}: "
                f"{'unparsed' if record.get('unparsed') else json.dumps(record['scores'])}",
                file=sys.stderr,
            )
    records = read_jsonl(out)
    unparsed = sum(1 for r in records if r.get("unparsed"))
    print(
        f"wrote {out}: {len(records) - unparsed} scored, {unparsed} unparsed"
        + (f", {failed} failed (re-run to retry)" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
