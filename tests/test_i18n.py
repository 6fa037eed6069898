"""Both interface languages say everything: the same keys, the same placeholders, and the CLI uses them."""

from llm42.i18n import MESSAGES, placeholders
from tests.support.cli import run_cli


def test_every_message_has_english_and_korean_with_the_same_placeholders():
    for key, (en, ko) in MESSAGES.items():
        assert en.strip() and ko.strip(), key
        assert placeholders(en) == placeholders(ko), key


def hangul(line: str) -> bool:
    return any("\uac00" <= c <= "\ud7a3" for c in line)


def test_korean_status_lines_and_errors(tiny42, tmp_path):
    r = run_cli(
        "--model-path",
        str(tiny42),
        "--lang",
        "ko",
        "--max-new-tokens",
        "4",
        "--verbose",
        "--seed",
        "0",
        "--history-dir",
        str(tmp_path),
        "--prompt",
        "안녕하세요",
    )
    assert r.returncode == 0, r.stderr.decode()
    lines = [line for line in r.stderr.decode().splitlines() if line.strip()]
    assert lines[0].startswith("장치 cpu") and "초 만에 불러왔습니다" in lines[1]
    assert all(hangul(line) for line in lines), lines  # device line, load time, the cut marker, the meter
    bad = run_cli("--top-p", "2", LANG="ko_KR.UTF-8")  # the locale picks Korean without --lang
    assert (
        bad.returncode == 2
        and bad.stderr.decode().strip() == "llm42: 오류: top-p 는 (0, 1] 범위여야 합니다, 받은 값 2.0"
    )
    missing = run_cli("--lang", "ko", "--model-path", "/no/such/folder")
    assert missing.stderr.decode().strip() == "llm42: 오류: /no/such/folder 에 모델 폴더가 없습니다; 경로를 확인하세요"


def test_counts_agree_with_their_nouns():
    from llm42.i18n import set_language, t

    set_language("en")
    assert t("turns", n=1) == "1 reply" and t("turns", n=6) == "6 replies"
    assert (
        t("loaded", n=1, path="x") == "loaded 1 message from x"
        and t("loaded", n=12, path="x") == "loaded 12 messages from x"
    )
    assert t("dropped", n=3, window=512).startswith("[3 oldest turns left out") and "(" not in t(
        "dropped", n=1, window=512
    )
    assert "1 CUDA GPU exists" in t("few_gpus", dev="cuda:3", n=1, last=0)
    set_language("ko")
    assert t("loaded", n=12, path="x") == "x 에서 메시지 12개를 불러왔습니다"
    set_language("en")
