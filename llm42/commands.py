"""In-chat slash commands: what the user typed, parsed into a command or a message."""

from __future__ import annotations

from dataclasses import dataclass

HELP = {  # name: (argument, English, Korean)
    "/help": ("", "list the commands", "명령 목록"),
    "/exit": ("", "leave (also Ctrl+D)", "종료 (Ctrl+D 도 같음)"),
    "/reset": ("", "start a new conversation", "새 대화 시작"),
    "/undo": ("", "remove the last exchange", "마지막 대화 지우기"),
    "/regen": ("", "regenerate the last reply", "마지막 답변 다시 생성"),
    "/edit": ("", "edit your last message and regenerate", "마지막 메시지를 고쳐 다시 생성"),
    "/system": ("[text]", "show or change the system prompt", "시스템 프롬프트 보기/바꾸기"),
    "/set": ("[NAME VALUE]", "show or change a setting", "설정 보기/바꾸기"),
    "/save": ("[path]", "save the conversation (JSON Lines)", "대화 저장 (JSON Lines)"),
    "/load": ("ID|path", "continue a saved conversation", "저장된 대화 이어가기"),
    "/export": ("path.md", "write the conversation as Markdown", "대화를 Markdown 으로 내보내기"),
    "/stats": ("", "prompt tokens, TTFT, tokens/s of the last reply", "마지막 답변의 토큰 수, 첫 토큰 시간, 속도"),
    "/history": ("", "show the conversation so far", "지금까지의 대화 보기"),
}
ALIASES = {"/quit": "/exit", "/bye": "/exit", "/clear": "/reset", "/?": "/help"}
SETTINGS = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens", "seed", "markdown", "status")


@dataclass
class Command:
    name: str  # canonical, e.g. "/undo"; unknown ones keep what was typed
    arg: str
    known: bool


def parse(text: str) -> Command | str:
    """A Command for '/name args', else the message to send ('//x' sends '/x'; a leading space sends as is)."""
    if text.startswith("//"):
        return text[1:]
    if not text.startswith("/"):
        return text
    name, _, arg = text.partition(" ")
    name = ALIASES.get(name.lower(), name.lower())
    return Command(name, arg.strip(), name in HELP)


def help_text(lang: str) -> str:
    col = 2 if lang == "ko" else 1
    width = max(len(f"{n} {a}") for n, (a, *_) in HELP.items())
    return "\n".join(f"  {(n + ' ' + spec[0]).strip():<{width}}  {spec[col]}" for n, spec in HELP.items())
