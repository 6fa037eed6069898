"""What llm42 says in the chat, in English and Korean; `--lang` or the locale picks."""

from __future__ import annotations

import os

MESSAGES = {
    "en": {
        "banner": "Enter sends · Esc Enter new line · Ctrl+C stops a reply · /help lists commands · Ctrl+D quits",
        "stopped": "[reply stopped]",
        "again_to_quit": "(press Ctrl+C again to quit, or Ctrl+D, or /exit)",
        "dropped": "[{n} oldest turn(s) left out to fit the {window}-token context]",
        "not_sent": "message not sent: {why}",
        "context": "context {used}/{window} tokens",
        "context_remote": "context {used} tokens",
        "context_dropped": ", {n} oldest turn(s) left out",
        "timing": " · TTFT {ttft:.2f}s · {tps:.1f} tokens/s",
        "unknown": "unknown command {cmd}: /help lists the commands (to send text starting with /, begin with // or a space)",
        "nothing_undo": "nothing to undo",
        "nothing_regen": "no reply to regenerate yet",
        "nothing_edit": "no message to edit yet",
        "undone": "removed the last exchange",
        "reset": "new conversation",
        "system_now": "system prompt: {text}",
        "system_default": "system prompt: the model's default",
        "system_set": "system prompt changed",
        "set_done": "{name} = {value}",
        "set_usage": "usage: /set NAME VALUE, NAME one of {names}",
        "saved": "saved to {path}",
        "save_where": "this conversation is being written to {path}",
        "loaded": "loaded {n} message(s) from {path}",
        "resumed": "resumed {n} message(s) from {path}",
        "unanswered": "(the last message had no reply when it stopped; it was left out)",
        "skipped": "({n} unreadable line(s) skipped)",
        "exported": "exported to {path}",
        "no_stats": "no reply yet",
        "need_arg": "{cmd} needs {what}",
        "history_empty": "(no messages yet)",
        "transcript_failed": "warning: cannot write the transcript ({why}); the chat goes on without saving",
        "edit_hint": "edit your last message and press Enter",
    },
    "ko": {
        "banner": "Enter 보내기 · Esc Enter 줄바꿈 · Ctrl+C 답변 중지 · /help 명령 목록 · Ctrl+D 종료",
        "stopped": "[답변 중지됨]",
        "again_to_quit": "(종료하려면 Ctrl+C를 한 번 더 누르거나 Ctrl+D, /exit)",
        "dropped": "[{window} 토큰 문맥에 맞추려고 가장 오래된 대화 {n}턴을 뺐습니다]",
        "not_sent": "메시지를 보내지 않았습니다: {why}",
        "context": "문맥 {used}/{window} 토큰",
        "context_remote": "문맥 {used} 토큰",
        "context_dropped": ", 오래된 대화 {n}턴 제외",
        "timing": " · 첫 토큰 {ttft:.2f}초 · 초당 {tps:.1f} 토큰",
        "unknown": "알 수 없는 명령 {cmd}: /help 로 명령 목록을 보세요 (/로 시작하는 글은 // 또는 공백으로 시작해 보내세요)",
        "nothing_undo": "되돌릴 대화가 없습니다",
        "nothing_regen": "다시 생성할 답변이 아직 없습니다",
        "nothing_edit": "고칠 메시지가 아직 없습니다",
        "undone": "마지막 대화를 지웠습니다",
        "reset": "새 대화를 시작합니다",
        "system_now": "시스템 프롬프트: {text}",
        "system_default": "시스템 프롬프트: 모델 기본값",
        "system_set": "시스템 프롬프트를 바꿨습니다",
        "set_done": "{name} = {value}",
        "set_usage": "사용법: /set 이름 값 (이름: {names})",
        "saved": "{path} 에 저장했습니다",
        "save_where": "이 대화는 {path} 에 기록되고 있습니다",
        "loaded": "{path} 에서 메시지 {n}개를 불러왔습니다",
        "resumed": "{path} 에서 메시지 {n}개로 대화를 이어갑니다",
        "unanswered": "(중단될 때 답이 없던 마지막 메시지는 뺐습니다)",
        "skipped": "(읽을 수 없는 줄 {n}개를 건너뛰었습니다)",
        "exported": "{path} 로 내보냈습니다",
        "no_stats": "아직 답변이 없습니다",
        "need_arg": "{cmd} 에는 {what} 이(가) 필요합니다",
        "history_empty": "(아직 메시지가 없습니다)",
        "transcript_failed": "경고: 대화 기록을 쓸 수 없습니다 ({why}); 저장 없이 대화를 계속합니다",
        "edit_hint": "마지막 메시지를 고친 뒤 Enter 를 누르세요",
    },
}


def pick_language(flag: str | None = None) -> str:
    if flag in MESSAGES:
        return flag
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "ko" if value.lower().startswith("ko") else "en"
    return "en"


class Say:
    def __init__(self, lang: str = "en"):
        self.table = MESSAGES.get(lang, MESSAGES["en"])

    def __call__(self, key: str, **kw) -> str:
        return (self.table.get(key) or MESSAGES["en"][key]).format(**kw)
