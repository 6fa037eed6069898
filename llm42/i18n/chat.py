"""What the chat says: replies' notes, the commands and their help, settings (key: (English, Korean))."""

CHAT: dict[str, tuple[str, str]] = {
    "banner": (
        "Enter sends · Esc Enter new line · Ctrl+C stops a reply · /help lists commands · Ctrl+D quits",
        "Enter 보내기 · Esc Enter 줄바꿈 · Ctrl+C 답변 중지 · /help 명령 목록 · Ctrl+D 종료",
    ),
    "stopped": ("[reply stopped]", "[답변 중지됨]"),
    "again_to_quit": (
        "(press Ctrl+C again to quit, or Ctrl+D, or /exit)",
        "(종료하려면 Ctrl+C를 한 번 더 누르거나 Ctrl+D, /exit)",
    ),
    "dropped": (
        "[{n} oldest (turn|turns) left out to fit the {window}-token context]",
        "[{window} 토큰 문맥에 맞추려고 가장 오래된 대화 {n}턴을 뺐습니다]",
    ),
    "not_sent": ("message not sent: {why}", "메시지를 보내지 않았습니다: {why}"),
    "context": ("context {used}/{window} tokens", "문맥 {used}/{window} 토큰"),
    "context_remote": ("context {used} tokens", "문맥 {used} 토큰"),
    "context_dropped": (", {n} oldest (turn|turns) left out", ", 오래된 대화 {n}턴 제외"),
    "timing": (" · TTFT {ttft:.2f}s · {tps:.1f} tokens/s", " · 첫 토큰 {ttft:.2f}초 · 초당 {tps:.1f} 토큰"),
    "unknown": (
        "unknown command {cmd}: /help lists the commands (to send text starting with /, begin with // or a space)",
        "알 수 없는 명령 {cmd}: /help 로 명령 목록을 보세요 (/로 시작하는 글은 // 또는 공백으로 시작해 보내세요)",
    ),
    "nothing_undo": ("nothing to undo", "되돌릴 대화가 없습니다"),
    "nothing_regen": ("no reply to regenerate yet", "다시 생성할 답변이 아직 없습니다"),
    "nothing_edit": ("no message to edit yet", "고칠 메시지가 아직 없습니다"),
    "undone": ("removed the last exchange", "마지막 대화를 지웠습니다"),
    "reset": ("new conversation", "새 대화를 시작합니다"),
    "system_now": ("system prompt: {text}", "시스템 프롬프트: {text}"),
    "system_default_is": ("system prompt: the model's default: {text}", "시스템 프롬프트: 모델 기본값: {text}"),
    "system_default": ("system prompt: the model's default", "시스템 프롬프트: 모델 기본값"),
    "system_set": ("system prompt changed", "시스템 프롬프트를 바꿨습니다"),
    "set_done": ("{name} = {value}", "{name} = {value}"),
    "set_unknown": ("unknown setting: {name} (settings: {names})", "알 수 없는 설정: {name} (설정: {names})"),
    "set_usage": ("usage: /set NAME VALUE, NAME one of {names}", "사용법: /set 이름 값 (이름: {names})"),
    "saved": ("saved to {path}", "{path} 에 저장했습니다"),
    "save_where": ("this conversation is being written to {path}", "이 대화는 {path} 에 기록되고 있습니다"),
    "kept": (
        "conversation kept in {path}; --resume {ref} continues it",
        "대화를 {path} 에 보관했습니다; --resume {ref} 로 이어 갑니다",
    ),
    "you": ("you", "나"),
    "bot": ("bot", "봇"),
    "loaded": ("loaded {n} (message|messages) from {path}", "{path} 에서 메시지 {n}개를 불러왔습니다"),
    "resumed": ("resumed {n} (message|messages) from {path}", "{path} 에서 메시지 {n}개로 대화를 이어갑니다"),
    "unanswered": (
        "(the last message had no reply when it stopped; it was left out)",
        "(중단될 때 답이 없던 마지막 메시지는 뺐습니다)",
    ),
    "skipped": ("({n} unreadable (line|lines) skipped)", "(읽을 수 없는 줄 {n}개를 건너뛰었습니다)"),
    "nothing_to_export": (
        "nothing to export yet: the conversation has no messages",
        "아직 내보낼 것이 없습니다: 대화에 메시지가 없습니다",
    ),
    "no_parent": (
        "cannot write {path}: there is no folder {folder} (make it first)",
        "{path} 에 쓸 수 없습니다: {folder} 폴더가 없습니다 (먼저 만드세요)",
    ),
    "replace_file": ("{path} exists: replace it? [y/N]", "{path} 가 이미 있습니다: 바꿀까요? [y/N]"),
    "not_replaced": (
        "{path} exists; left as it was (give another name)",
        "{path} 가 이미 있어 그대로 두었습니다 (다른 이름을 주세요)",
    ),
    "exported": ("exported to {path}", "{path} 로 내보냈습니다"),
    "no_stats": ("no reply yet", "아직 답변이 없습니다"),
    "need_arg": ("{cmd} needs {what}", "{cmd} 에는 {what} 이(가) 필요합니다"),
    "history_empty": ("(no messages yet)", "(아직 메시지가 없습니다)"),
    "transcript_failed": (
        "warning: cannot write the transcript ({why}); the chat goes on without saving",
        "경고: 대화 기록을 쓸 수 없습니다 ({why}); 저장 없이 대화를 계속합니다",
    ),
    "edit_hint": ("edit your last message and press Enter", "마지막 메시지를 고친 뒤 Enter 를 누르세요"),
    "stopped_mark": ("[stopped]", "[중지됨]"),
    "connection_lost": ("[connection lost: {why}]", "[연결 끊김: {why}]"),
    "cut": (
        "[cut at the {n}-token limit: /set max_new_tokens N for longer replies]",
        "[{n} 토큰 제한에서 잘렸습니다: 더 긴 답은 /set max_new_tokens N]",
    ),
    "cut_flag": (
        "[cut at the {n}-token limit: --max-new-tokens N for longer replies]",
        "[{n} 토큰 제한에서 잘렸습니다: 더 긴 답은 --max-new-tokens N]",
    ),
    "list_empty": ("(no saved conversations in {folder})", "({folder} 에 저장된 대화가 없습니다)"),
    "turns": ("{n} (reply|replies)", "답변 {n}개"),
    "cannot_write": ("cannot write {path}: {why}", "{path} 에 쓸 수 없습니다: {why}"),
    "stats": (
        "  prompt tokens      {prompt} ({reused} from the cache)\n"
        "  reply tokens       {reply} ({reason})\n"
        "  time to first      {ttft:.2f} s\n"
        "  decode speed       {tps:.1f} tokens/s\n"
        "  context            {used}{window} tokens",
        "  프롬프트 토큰      {prompt} (캐시에서 {reused})\n"
        "  답변 토큰          {reply} ({reason})\n"
        "  첫 토큰까지        {ttft:.2f} 초\n"
        "  생성 속도          초당 {tps:.1f} 토큰\n"
        "  문맥               {used}{window} 토큰",
    ),
    "finish_stop": ("finished", "끝남"),
    "finish_length": ("cut at the token limit", "토큰 제한에서 잘림"),
    "finish_interrupted": ("stopped", "중지됨"),
    "finish_connection_lost": ("connection lost", "연결 끊김"),
    "error": ("error", "오류"),
    "interrupted": ("interrupted", "중단됨"),
    "resumed_which": (
        "(the most recent chat, {id}; --list shows the others)",
        "(가장 최근 대화 {id}; 다른 대화는 --list 로 볼 수 있습니다)",
    ),
    "connecting": ("connecting to {url}", "{url} 에 연결하는 중"),
    "remote": ("remote: {name} at {url}", "원격: {url} 의 {name}"),
    "loaded_in": ("loaded in {s:.1f}s (since start)", "시작 후 {s:.1f}초 만에 불러왔습니다"),
    "saving": ("saving to {path}", "{path} 에 저장하는 중"),
    "saved_quantized": (
        "saved; next time start with --model-path {path}",
        "저장했습니다. 다음에는 --model-path {path} 로 시작하세요",
    ),
    # settings and flags
    "help_help": ("list the commands", "명령 목록"),
    "help_exit": ("leave (also Ctrl+D)", "종료 (Ctrl+D 도 같음)"),
    "help_reset": (
        "start a new conversation (a system prompt you set stays)",
        "새 대화 시작 (설정한 시스템 프롬프트는 유지)",
    ),
    "help_undo": ("remove the last exchange", "마지막 대화 지우기"),
    "help_regen": ("regenerate the last reply", "마지막 답변 다시 생성"),
    "help_edit": (
        "edit your last message (or replace it by text) and regenerate",
        "마지막 메시지를 고쳐 (또는 text 로 바꿔) 다시 생성",
    ),
    "help_system": ("show or change the system prompt", "시스템 프롬프트 보기/바꾸기"),
    "help_set": ("show or change a setting", "설정 보기/바꾸기"),
    "help_save": ("save the conversation (JSON Lines)", "대화 저장 (JSON Lines)"),
    "help_load": ("continue a saved conversation", "저장된 대화 이어가기"),
    "help_list": ("list the saved conversations", "저장된 대화 목록"),
    "help_export": ("write the conversation as Markdown", "대화를 Markdown 으로 내보내기"),
    "help_stats": ("prompt tokens, TTFT, tokens/s of the last reply", "마지막 답변의 토큰 수, 첫 토큰 시간, 속도"),
    "help_history": ("show the conversation so far", "지금까지의 대화 보기"),
    "help_read": ("bring a text file into your next message", "텍스트 파일을 다음 메시지에 넣기"),
    "read_done": (
        "read {name}: {chars} characters{tokens}; it goes with your next message",
        "{name} 을(를) 읽었습니다: {chars}자{tokens}; 다음 메시지와 함께 보냅니다",
    ),
    "read_tokens": (" ({n} (token|tokens))", " ({n} 토큰)"),
    "read_again": ("{name} is already attached to your next message", "{name} 은(는) 이미 다음 메시지에 붙어 있습니다"),
    "read_total": (
        "attached to your next message: {k} files, {n} tokens in all",
        "다음 메시지에 붙은 파일 {k}개, 모두 {n} 토큰",
    ),
    "read_total_files": ("attached to your next message: {k} files", "다음 메시지에 붙은 파일 {k}개"),
    "read_too_long": (
        "{name} is {n} tokens; with what is attached it would not fit the {window}-token window ({max_new} kept "
        "for the reply)",
        "{name} 은(는) {n} 토큰입니다; 함께 붙인 것과 합치면 {window} 토큰 문맥 창에 "
        "들어가지 않습니다 (답변용 {max_new} 토큰 제외)",
    ),
    "read_pending": ("attached to your next message: {names}", "다음 메시지에 붙을 파일: {names}"),
    "speculate_local": (
        "speculation needs llm42's own decode step: a Llama-family model on the CPU",
        "추측 디코딩에는 llm42 의 자체 디코드 단계가 필요합니다: CPU 에서 도는 Llama 계열 모델",
    ),
    "timing_spec": (" · {accepted}/{drafted} drafted tokens accepted", " · 추측 토큰 {drafted}개 중 {accepted}개 채택"),
    "stats_restored": (
        "\n  read from disk     {n} of the cached tokens (KV kept by an earlier run)",
        "\n  디스크에서 읽음    캐시 토큰 중 {n} (이전 실행이 남긴 KV)",
    ),
    "stats_stored": (
        "\n  kept on disk       {n} tokens of KV, {mb:.1f} MB (for the next run)",
        "\n  디스크에 보관      KV {n} 토큰, {mb:.1f} MB (다음 실행용)",
    ),
    "stats_spec": (
        "\n  drafted tokens     {drafted} ({accepted} accepted)",
        "\n  추측 토큰          {drafted} (채택 {accepted})",
    ),
}
