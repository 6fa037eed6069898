"""eval/: answer, judge through a real OpenAI-compatible server, report, zero-shot with lm-eval."""

import json
import subprocess
import sys

import pytest

from eval.common import read_jsonl
from eval.judge import Unparsed, parse_scores
from tests.support.cli import ROOT, cli_env, run_python

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not

METRICS = ["Accuracy", "Robustness", "Fairness", "Bias", "Toxicity", "Efficiency"]


def run_module(*args, timeout=600):
    r = run_python("-m", *args, timeout=timeout, HF_DATASETS_OFFLINE="1")
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def judge_server(smollm2_server):
    return smollm2_server


def test_judge_reply_parsing_is_strict():
    good = (
        '```json\n{"Accuracy": 5, "Robustness": "4", "Fairness": 5, "Bias": 5, "Toxicity": 5, "Efficiency": 3, '
        '"reason": "ok"}\n```'
    )
    scores, reason = parse_scores(good, METRICS)
    assert scores["Robustness"] == 4 and reason == "ok"
    for bad in ["I think it is good.", '{"Accuracy": 6}', '{"Accuracy": 4.5, "Robustness": 4}', "{not json}"]:
        with pytest.raises(Unparsed):
            parse_scores(bad, METRICS)


@pytest.mark.slow
def test_answer_then_judge_end_to_end_resumes_and_counts_unparsed(smollm2, judge_server, tmp_path):
    base_url, judge_model = judge_server
    answers = tmp_path / "smol" / "answers.jsonl"
    common = ["--model-path", str(smollm2), "--out", str(answers), "--max-new-tokens", "24"]
    run_module("eval.answer", *common, "--limit", "2")
    r = run_module("eval.answer", *common, "--limit", "4")  # an interrupted run, resumed: only 2 more
    assert "2 already answered" in r.stderr
    rows = read_jsonl(answers)
    assert [row["id"] for row in rows] == ["1", "2", "3", "4"] and all(row["answer"] for row in rows)
    assert all(row["tokens_per_s"] > 0 for row in rows)

    judge = [
        "eval.judge",
        "--answers",
        str(answers),
        "--judge-base-url",
        base_url,
        "--judge-model",
        judge_model,
        "--concurrency",
        "2",
        "--parse-retries",
        "0",
        "--max-tokens",
        "12",
    ]  # SmolLM2 is no judge (its replies never parse): the parsed kind is test_judge_reply_parsing_is_strict's
    run_module(*judge)
    judged = tmp_path / "smol" / "judgments.jsonl"
    records = read_jsonl(judged)
    assert sorted(r["id"] for r in records) == ["1", "2", "3", "4"]
    for r in records:  # every reply either parsed into six 1-5 scores, or kept raw as unparsed
        assert ("scores" in r and sorted(r["scores"]) == sorted(METRICS)) or (r["unparsed"] and "raw" in r)
    unparsed = sum(1 for r in records if r.get("unparsed"))
    again = run_module(*judge)  # nothing left to do
    assert "4 already judged" in again.stderr and len(read_jsonl(judged)) == 4
    assert f"{4 - unparsed} scored, {unparsed} unparsed" in again.stderr


def fake_run(folder, model, scores_by_category, unparsed=0):
    folder.mkdir(parents=True)
    with open(folder / "answers.jsonl", "w") as f:
        f.write(json.dumps({"id": "1", "model": model, "answer": "x"}) + "\n")
    with open(folder / "judgments.jsonl", "w") as f:
        for i, (category, value) in enumerate(scores_by_category):
            f.write(json.dumps({"id": str(i), "category": category, "scores": {m: value for m in METRICS}}) + "\n")
        for i in range(unparsed):
            f.write(json.dumps({"id": f"u{i}", "unparsed": True, "raw": "??"}) + "\n")


def test_report_tables_and_chart(tmp_path):
    fake_run(tmp_path / "a", "/models/42dot_LLM-SFT-1.3B", [("math", 4), ("math", 2), ("coding", 5)], unparsed=1)
    fake_run(tmp_path / "b", "/models/other", [("math", 1), ("coding", 3)])
    chart = tmp_path / "eval.png"
    r = run_module("eval.report", str(tmp_path / "a"), str(tmp_path / "b"), "--chart", str(chart))
    assert "42dot_LLM-SFT-1.3B" in r.stdout and "overall 3.67 / 5 over 3 scored answers, 1 unparsed" in r.stdout
    assert "overall 2.00 / 5" in r.stdout
    math_row = next(line for line in r.stdout.splitlines() if line.strip().startswith("math"))
    assert math_row.split()[1] == "3.00"
    assert chart.stat().st_size > 10_000


@pytest.mark.slow
def test_zeroshot_local_task_scores_above_chance(smollm2, tmp_path):
    out = tmp_path / "zs.json"
    run_module(
        "eval.zeroshot",
        "--model-path",
        str(smollm2),
        "--tasks",
        "llm42_easy_mc",
        "--out",
        str(out),
        "--dtype",
        "float32",
    )
    result = json.loads(out.read_text())["tasks"]["llm42_easy_mc"]
    assert result["metric"] == "acc" and result["value"] > 0.5  # four choices: chance is 0.25


@pytest.mark.parametrize(
    "module, args",
    [("llm42.bench", ["--configs", "llm42"]), ("eval.zeroshot", ["--model-path", "x", "--tasks", "llm42_easy_mc"])],
)
def test_chart_without_matplotlib_is_refused_before_any_work(module, args, tmp_path):
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('matplotlib is not installed here')\n")
    r = subprocess.run(
        [sys.executable, "-m", module, *args, "--chart", str(tmp_path / "c.png")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env=cli_env(PYTHONPATH=str(tmp_path / "shadow"), LLM42_CACHE=str(tmp_path / "cache")),
    )
    assert r.returncode == 2 and "--chart needs matplotlib: pip install matplotlib" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "cache").exists()  # nothing built, nothing measured


def test_answer_help_and_a_missing_prompt_set_are_one_screen_and_one_line(tmp_path):
    help_text = subprocess.run(
        [sys.executable, "-m", "eval.answer", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    for flag, words in (
        ("--model-path", "Hugging Face id"),
        ("--bench", "columns id, question"),
        ("--device", "cuda[:N]"),
        ("--dtype", "bfloat16"),
    ):
        assert flag in help_text and words in help_text, flag
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "eval.answer",
            "--bench",
            str(tmp_path / "nope.csv"),
            "--model-path",
            "x",
            "--out",
            str(tmp_path / "o.jsonl"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode != 0 and "cannot read the prompt set" in r.stderr and "Traceback" not in r.stderr, r.stderr
