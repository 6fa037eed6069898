"""What llm42 says, in English and Korean, from one table; `--lang` or the locale picks the language once."""

from __future__ import annotations

import os
import re
import string

# key: (English, Korean). Both take the same {placeholders}; a test checks it.
MESSAGES: dict[str, tuple[str, str]] = {
    "banner": ("Enter sends · Esc Enter new line · Ctrl+C stops a reply · /help lists commands · Ctrl+D quits",
               "Enter 보내기 · Esc Enter 줄바꿈 · Ctrl+C 답변 중지 · /help 명령 목록 · Ctrl+D 종료"),
    "stopped": ("[reply stopped]", "[답변 중지됨]"),
    "again_to_quit": ("(press Ctrl+C again to quit, or Ctrl+D, or /exit)",
                      "(종료하려면 Ctrl+C를 한 번 더 누르거나 Ctrl+D, /exit)"),
    "dropped": ("[{n} oldest (turn|turns) left out to fit the {window}-token context]",
                "[{window} 토큰 문맥에 맞추려고 가장 오래된 대화 {n}턴을 뺐습니다]"),
    "not_sent": ("message not sent: {why}", "메시지를 보내지 않았습니다: {why}"),
    "context": ("context {used}/{window} tokens", "문맥 {used}/{window} 토큰"),
    "context_remote": ("context {used} tokens", "문맥 {used} 토큰"),
    "context_dropped": (", {n} oldest (turn|turns) left out", ", 오래된 대화 {n}턴 제외"),
    "timing": (" · TTFT {ttft:.2f}s · {tps:.1f} tokens/s", " · 첫 토큰 {ttft:.2f}초 · 초당 {tps:.1f} 토큰"),
    "unknown": ("unknown command {cmd}: /help lists the commands (to send text starting with /, begin with // or a space)",
                "알 수 없는 명령 {cmd}: /help 로 명령 목록을 보세요 (/로 시작하는 글은 // 또는 공백으로 시작해 보내세요)"),
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
    "loaded": ("loaded {n} (message|messages) from {path}", "{path} 에서 메시지 {n}개를 불러왔습니다"),
    "resumed": ("resumed {n} (message|messages) from {path}", "{path} 에서 메시지 {n}개로 대화를 이어갑니다"),
    "unanswered": ("(the last message had no reply when it stopped; it was left out)",
                   "(중단될 때 답이 없던 마지막 메시지는 뺐습니다)"),
    "skipped": ("({n} unreadable (line|lines) skipped)", "(읽을 수 없는 줄 {n}개를 건너뛰었습니다)"),
    "nothing_to_export": ("nothing to export yet: the conversation has no messages",
                          "아직 내보낼 것이 없습니다: 대화에 메시지가 없습니다"),
    "no_parent": ("cannot write {path}: there is no folder {folder} (make it first)",
                  "{path} 에 쓸 수 없습니다: {folder} 폴더가 없습니다 (먼저 만드세요)"),
    "replace_file": ("{path} exists: replace it? [y/N]", "{path} 가 이미 있습니다: 바꿀까요? [y/N]"),
    "not_replaced": ("{path} exists; left as it was (give another name)", "{path} 가 이미 있어 그대로 두었습니다 (다른 이름을 주세요)"),
    "exported": ("exported to {path}", "{path} 로 내보냈습니다"),
    "no_stats": ("no reply yet", "아직 답변이 없습니다"),
    "need_arg": ("{cmd} needs {what}", "{cmd} 에는 {what} 이(가) 필요합니다"),
    "history_empty": ("(no messages yet)", "(아직 메시지가 없습니다)"),
    "transcript_failed": ("warning: cannot write the transcript ({why}); the chat goes on without saving",
                          "경고: 대화 기록을 쓸 수 없습니다 ({why}); 저장 없이 대화를 계속합니다"),
    "edit_hint": ("edit your last message and press Enter", "마지막 메시지를 고친 뒤 Enter 를 누르세요"),
    "stopped_mark": ("[stopped]", "[중지됨]"),
    "connection_lost": ("[connection lost: {why}]", "[연결 끊김: {why}]"),
    "cut": ("[cut at the {n}-token limit: /set max_new_tokens N for longer replies]",
            "[{n} 토큰 제한에서 잘렸습니다: 더 긴 답은 /set max_new_tokens N]"),
    "cut_flag": ("[cut at the {n}-token limit: --max-new-tokens N for longer replies]",
                 "[{n} 토큰 제한에서 잘렸습니다: 더 긴 답은 --max-new-tokens N]"),
    "list_empty": ("(no saved conversations in {folder})", "({folder} 에 저장된 대화가 없습니다)"),
    "turns": ("{n} (reply|replies)", "답변 {n}개"),
    "cannot_write": ("cannot write {path}: {why}", "{path} 에 쓸 수 없습니다: {why}"),
    "stats": ("  prompt tokens      {prompt} ({reused} from the cache)\n"
              "  reply tokens       {reply} ({reason})\n"
              "  time to first      {ttft:.2f} s\n"
              "  decode speed       {tps:.1f} tokens/s\n"
              "  context            {used}{window} tokens",
              "  프롬프트 토큰      {prompt} (캐시에서 {reused})\n"
              "  답변 토큰          {reply} ({reason})\n"
              "  첫 토큰까지        {ttft:.2f} 초\n"
              "  생성 속도          초당 {tps:.1f} 토큰\n"
              "  문맥               {used}{window} 토큰"),
    "finish_stop": ("finished", "끝남"),
    "finish_length": ("cut at the token limit", "토큰 제한에서 잘림"),
    "finish_interrupted": ("stopped", "중지됨"),
    "finish_connection_lost": ("connection lost", "연결 끊김"),
    "error": ("error", "오류"),
    "interrupted": ("interrupted", "중단됨"),
    "resumed_which": ("(the most recent chat, {id}; --list shows the others)",
                      "(가장 최근 대화 {id}; 다른 대화는 --list 로 볼 수 있습니다)"),
    "connecting": ("connecting to {url}", "{url} 에 연결하는 중"),
    "remote": ("remote: {name} at {url}", "원격: {url} 의 {name}"),
    "loaded_in": ("loaded in {s:.1f}s", "{s:.1f}초 만에 불러왔습니다"),
    "saving": ("saving to {path}", "{path} 에 저장하는 중"),
    "saved_quantized": ("saved; next time start with --model-path {path}",
                        "저장했습니다. 다음에는 --model-path {path} 로 시작하세요"),
    # settings and flags
    "see_help": ("{message} (see --help)", "{message} (--help 참고)"),
    "bad_temperature": ("temperature must be >= 0 (0 means greedy), got {v}", "temperature 는 0 이상이어야 합니다 (0은 greedy), 받은 값 {v}"),
    "bad_top_p": ("top-p must be in (0, 1], got {v}", "top-p 는 (0, 1] 범위여야 합니다, 받은 값 {v}"),
    "bad_top_k": ("top-k must be >= 0 (0 turns it off), got {v}", "top-k 는 0 이상이어야 합니다 (0은 끔), 받은 값 {v}"),
    "bad_penalty": ("repetition penalty must be > 0 (1 turns it off), got {v}",
                    "repetition penalty 는 0보다 커야 합니다 (1은 끔), 받은 값 {v}"),
    "bad_max_new": ("max new tokens must be >= 1, got {v}", "max new tokens 는 1 이상이어야 합니다, 받은 값 {v}"),
    "not_whole": ("{name} must be a whole number, got {text!r}", "{name} 는 정수여야 합니다, 받은 값 {text!r}"),
    "not_number": ("{name} must be a number, got {text!r}", "{name} 는 숫자여야 합니다, 받은 값 {text!r}"),
    "bad_device": ("unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps",
                   "알 수 없는 장치 {device!r}: auto, cpu, cuda, cuda:N, mps 중 하나를 쓰세요"),
    "bad_context": ("--context must be at least 64 tokens, got {n}", "--context 는 64 토큰 이상이어야 합니다, 받은 값 {n}"),
    "prompt_both": ("use either --prompt or --prompt-file, not both", "--prompt 와 --prompt-file 중 하나만 쓰세요"),
    "endpoint_model_path": ("--model-path is for a local model; with --endpoint, name the server's model with --model",
                            "--model-path 는 로컬 모델용입니다; --endpoint 와 함께라면 서버의 모델을 --model 로 지정하세요"),
    "endpoint_not_url": ("--endpoint {url} is not a URL: give the server's base URL, e.g. http://localhost:8000/v1",
                         "--endpoint {url} 는 URL 이 아닙니다: 서버의 기본 URL 을 주세요, 예: http://localhost:8000/v1"),
    "context_capped": ("--context {asked} is more than this model's {most}-token window: using {most}",
                       "--context {asked} 는 이 모델의 창 {most} 토큰보다 큽니다: {most} 을(를) 씁니다"),
    "endpoint_quantize": ("--quantize and --save-quantized are for local models, not with --endpoint",
                          "--quantize 와 --save-quantized 는 로컬 모델용입니다 (--endpoint 와 함께 쓸 수 없음)"),
    "resume_no_history": ("--resume without an id or path needs the history (drop --no-history)",
                          "id 나 경로 없는 --resume 은 대화 기록이 필요합니다 (--no-history 를 빼세요)"),
    "prompt_empty": ("--prompt is empty: give the message to send, e.g. --prompt \"안녕하세요\"",
                     "--prompt 가 비어 있습니다: 보낼 메시지를 주세요, 예: --prompt \"안녕하세요\""),
    "prompt_file_empty": ("--prompt-file {path} is empty: there is no message to send",
                          "--prompt-file {path} 이(가) 비어 있습니다: 보낼 메시지가 없습니다"),
    "prompt_file_unreadable": ("cannot read --prompt-file {path}: {why}", "--prompt-file {path} 을(를) 읽을 수 없습니다: {why}"),
    "save_needs_quantize": ("--save-quantized needs --quantize int8 or int4", "--save-quantized 에는 --quantize int8 또는 int4 가 필요합니다"),
    "save_exists": ("--save-quantized {path} already exists and is not empty; choose a new folder or delete that one first",
                    "--save-quantized {path} 이(가) 이미 있고 비어 있지 않습니다; 새 폴더를 고르거나 먼저 지우세요"),
    "max_new_window": ("max new tokens ({n}) must be below the model's {window}-token context window",
                       "max new tokens ({n}) 는 모델의 문맥 창 {window} 토큰보다 작아야 합니다"),
    "max_new_below": ("max new tokens must be below the {window}-token window", "max new tokens 는 문맥 창 {window} 토큰보다 작아야 합니다"),
    "on_off": ("expected on or off, got {value!r}", "on 또는 off 를 쓰세요, 받은 값 {value!r}"),
    "too_long": ("this message needs {n} prompt tokens, but the window is {window} tokens with {max_new} kept for the "
                 "reply; shorten it or lower max new tokens",
                 "이 메시지에는 프롬프트 토큰 {n}개가 필요하지만 문맥 창은 {window} 토큰이고 답변에 {max_new} 토큰을 남겨야 합니다; "
                 "메시지를 줄이거나 max new tokens 를 낮추세요"),
    # device choice
    "device_line": ("device {device}, {kind}: {reason}", "장치 {device}, {kind}: {reason}"),
    "dtype_asked": ("{name} as asked", "요청한 {name}"),
    "dtype_gpu_bf16": ("bf16 on this GPU", "이 GPU의 bf16"),
    "dtype_gpu_fp16": ("fp16 (no bf16 on this GPU)", "fp16 (이 GPU는 bf16 미지원)"),
    "dtype_mps": ("fp16 on Apple GPU", "Apple GPU의 fp16"),
    "dtype_cpu_bf16": ("bf16, which this CPU supports natively", "이 CPU가 직접 지원하는 bf16"),
    "dtype_cpu_fp16": ("fp16, which this Arm CPU computes natively (it has no bf16)",
                       "이 Arm CPU가 직접 계산하는 fp16 (bf16 미지원)"),
    "dtype_cpu_bf16_widened": ("bf16 weights, computed in fp32 (this CPU has no bf16 arithmetic): half the memory "
                               "of fp32, and each step reads half the bytes",
                               "bf16 가중치를 fp32 로 계산 (이 CPU는 bf16 연산 미지원): fp32 의 절반 메모리, "
                               "토큰마다 절반의 바이트만 읽습니다"),
    "gpu_most_free": ("{gpu} has the most free memory ({free} free, {need} needed); {why}",
                      "{gpu} 의 여유 메모리가 가장 많습니다 ({free} 여유, {need} 필요); {why}"),
    "gpu_has": ("{dev} has {free} free", "{dev} 여유 {free}"),
    "mps_auto": ("Apple GPU (MPS) available; {why}", "Apple GPU (MPS) 사용 가능; {why}"),
    "no_gpu": ("no GPU found", "GPU 없음"),
    "no_gpu_room": ("no GPU has room ({tried})", "여유 있는 GPU 없음 ({tried})"),
    "cpu_auto": ("{lead}; CPU has {ram} RAM available{limit}; {why}", "{lead}; CPU 사용 가능 RAM {ram}{limit}; {why}"),
    "cpu_asked": ("CPU as asked ({ram} RAM available); {why}", "요청한 CPU (사용 가능 RAM {ram}); {why}"),
    "window_shrunk": (" (context window {n} tokens, not {full}, to fit in RAM)", " (RAM 에 맞추려고 문맥 창을 {full} 대신 {n} 토큰으로)"),
    "no_cuda": ("--device {dev}: no CUDA GPU is visible to PyTorch; use --device auto or cpu",
                "--device {dev}: PyTorch 가 볼 수 있는 CUDA GPU 가 없습니다; --device auto 나 cpu 를 쓰세요"),
    "few_gpus": ("--device {dev}: only {n} CUDA (GPU exists|GPUs exist) (cuda:0..cuda:{last})",
                 "--device {dev}: CUDA GPU 는 {n}개뿐입니다 (cuda:0..cuda:{last})"),
    "gpu_full": ("{dev} ({gpu}) has {free} free but the model needs about {need} in {dtype}; free GPU memory or use --device auto",
                 "{dev} ({gpu}) 의 여유는 {free} 인데 모델은 {dtype} 로 약 {need} 가 필요합니다; GPU 메모리를 비우거나 --device auto 를 쓰세요"),
    "gpu_asked": ("{gpu} as asked ({free} free, {need} needed); {why}", "요청한 {gpu} ({free} 여유, {need} 필요); {why}"),
    "no_mps": ("--device mps: Apple's MPS backend is not available here; use --device auto or cpu",
               "--device mps: 여기서는 Apple MPS 를 쓸 수 없습니다; --device auto 나 cpu 를 쓰세요"),
    "mps_asked": ("Apple GPU as asked; {why}", "요청한 Apple GPU; {why}"),
    "short_of_ram": ("the model needs about {need} in {dtype} but only {ram} RAM is available{limit}{gpus}; {what} or try --quantize int8",
                     "모델은 {dtype} 로 약 {need} 가 필요한데 사용 가능한 RAM 은 {ram} 뿐입니다{limit}{gpus}; {what} --quantize int8 을 써 보세요"),
    "and_no_gpu": (" and no GPU has room", ", 여유 있는 GPU 도 없습니다"),
    "raise_limit": ("raise that limit", "그 제한을 올리거나"),
    "close_programs": ("close other programs", "다른 프로그램을 닫거나"),
    "under_ulimit": (" under ulimit -v", " (ulimit -v 제한)"),
    "under_cgroup": (" under this container's (cgroup's) memory limit", " (이 컨테이너(cgroup)의 메모리 제한)"),
    "quantize_cpu_only": ("--quantize runs on the CPU only; on {device} use --dtype bfloat16 or float16",
                          "--quantize 는 CPU 에서만 됩니다; {device} 에서는 --dtype bfloat16 이나 float16 을 쓰세요"),
    "quantized_reason": ("{kind} weights run on the CPU; {ram} RAM available", "{kind} 가중치는 CPU 에서 실행됩니다; 사용 가능 RAM {ram}"),
    "no_effect_quantize": ("--quantize {asked} has no effect: {path} holds {kind} weights already",
                           "--quantize {asked} 는 효과가 없습니다: {path} 는 이미 {kind} 가중치입니다"),
    "no_effect_dtype": ("--dtype {dtype} has no effect on {kind} weights (their activations are bf16)",
                        "--dtype {dtype} 는 {kind} 가중치에 효과가 없습니다 (활성값은 bf16)"),
    "reading_config": ("reading {path} config", "{path} 설정을 읽는 중"),
    "loading": ("loading {path}", "{path} 을(를) 불러오는 중"),
    "loading_quantizing": ("loading and quantizing to {kind} {path}", "{path} 을(를) 불러와 {kind} 로 양자화하는 중"),
    # loading
    "not_captured": ("the decode step could not be captured as a CUDA graph ({why}); it runs without one, slower",
                     "생성 단계를 CUDA 그래프로 캡처하지 못했습니다 ({why}); 그래프 없이 더 느리게 실행합니다"),
    "measuring_kernels": ("measuring which kernels are fastest on this CPU (once for this model shape)",
                          "이 CPU에서 가장 빠른 커널을 측정하는 중 (이 모델 형태에 한 번)"),
    "capturing": ("capturing the decode step as a CUDA graph", "생성 단계를 CUDA 그래프로 캡처하는 중"),
    "captured": ("decode step captured as a CUDA graph in {s:.1f}s", "생성 단계를 {s:.1f}초 만에 CUDA 그래프로 캡처했습니다"),
    "downloading": ("downloading {file} ({size}) from the Hugging Face hub", "Hugging Face 허브에서 {file} ({size}) 내려받는 중"),
    "no_weights": ("the repository has no weights llm42 can load", "저장소에 llm42 가 불러올 수 있는 가중치가 없습니다"),
    "saved_damaged": ("{path} is damaged or incomplete ({why}); save it again with --quantize and --save-quantized",
                      "{path} 가 손상되었거나 불완전합니다 ({why}); --quantize 와 --save-quantized 로 다시 저장하세요"),
    "saved_other_version": ("{path} was saved by another llm42 version (format {format}); save it again with "
                            "--quantize and --save-quantized",
                            "{path} 는 다른 llm42 버전이 저장했습니다 (형식 {format}); --quantize 와 --save-quantized 로 "
                            "다시 저장하세요"),
    "no_manifest": ("its {file} is missing or damaged", "{file} 가 없거나 손상됨"),
    "file_missing": ("{file} is missing", "{file} 가 없음"),
    "file_size": ("{file} is {size} bytes, its manifest says {expected}", "{file} 는 {size} 바이트, 목록에는 {expected}"),
    "save_failed": ("could not save the quantized model in {path}: {why}; nothing was left there",
                    "{path} 에 양자화 모델을 저장할 수 없습니다: {why}; 아무것도 남기지 않았습니다"),
    "quantized_cached": ("{kind} weights as quantized on an earlier start: {path}",
                         "이전 실행에서 양자화한 {kind} 가중치: {path}"),
    "quantized_kept": ("quantized to {kind} once; kept in {path} for later starts",
                       "{kind} 로 한 번 양자화했습니다; 다음 실행을 위해 {path} 에 보관합니다"),
    "quantized_not_kept": ("the quantized model is not kept for later starts: {why}",
                           "양자화 모델을 다음 실행용으로 보관하지 못했습니다: {why}"),
    "cache_unwritable": ("llm42's cache folder {path} cannot be written ({why}): kernels are measured and models "
                         "converted again at every start", "llm42 캐시 폴더 {path} 에 쓸 수 없습니다 ({why}): 실행할 때마다 "
                         "커널을 다시 측정하고 모델을 다시 변환합니다"),
    "cache_remade": ("{path} in llm42's cache was damaged; making it again", "llm42 캐시의 {path} 가 손상되어 다시 만듭니다"),
    "converting_gguf": ("reading {path} and converting it to safetensors (once: later starts take a few seconds)",
                        "{path} 를 읽어 safetensors 로 변환하는 중 (한 번만: 다음 실행은 몇 초)"),
    "gguf_cached": ("loading the GGUF model as converted on an earlier start: {path}",
                    "이전에 변환해 둔 GGUF 모델을 불러옵니다: {path}"),
    "gguf_converted": ("converted the GGUF model once to {path}; later starts load that",
                       "GGUF 모델을 {path} 로 한 번 변환했습니다; 다음부터는 그것을 불러옵니다"),
    "pickle_only": ("{path} has only pickle weights ({file}), and unpickling can run code: convert them to safetensors, "
                    "or pass --allow-pickle if you trust where they came from",
                    "{path} 에는 pickle 가중치({file})만 있고, pickle 을 여는 것은 코드를 실행할 수 있습니다: safetensors 로 "
                    "변환하거나, 출처를 믿는다면 --allow-pickle 을 주세요"),
    "no_gguf": ("no GGUF file at {path}; check the path", "{path} 에 GGUF 파일이 없습니다; 경로를 확인하세요"),
    "no_config": ("{path} has no config.json; point --model-path at a folder saved with save_pretrained, a .gguf file, "
                  "or a hub id like 42dot/42dot_LLM-SFT-1.3B",
                  "{path} 에 config.json 이 없습니다; --model-path 에 save_pretrained 로 저장한 폴더, .gguf 파일, "
                  "또는 42dot/42dot_LLM-SFT-1.3B 같은 허브 id 를 주세요"),
    "no_folder": ("no model folder at {path}; check the path", "{path} 에 모델 폴더가 없습니다; 경로를 확인하세요"),
    "offline": ("{name} is not in the local cache and the Hugging Face hub cannot be reached; download it once online, "
                "or pass a local copy: --model-path /path/to/folder",
                "{name} 이(가) 로컬 캐시에 없고 Hugging Face 허브에 연결할 수 없습니다; 온라인에서 한 번 내려받거나, "
                "로컬 사본을 주세요: --model-path /path/to/folder"),
    "bad_config": ("cannot read the model config of {name}: {why}{hint}", "{name} 의 모델 설정을 읽을 수 없습니다: {why}{hint}"),
    "cannot_load": ("cannot load {name}: {why}{hint}", "{name} 을(를) 불러올 수 없습니다: {why}{hint}"),
    "damaged": ("the weights of {name} are damaged or incomplete ({why}); download or save them again",
                "{name} 의 가중치가 손상되었거나 불완전합니다 ({why}); 다시 내려받거나 저장하세요"),
    "hint_remote_code": (" (it needs its own Python code: pass --trust-remote-code only if you trust its authors)",
                         " (자체 Python 코드가 필요합니다: 만든 이를 믿을 때만 --trust-remote-code 를 주세요)"),
    "hint_arch": (" (llm42 runs architectures transformers knows; 42dot LLM-SFT is LlamaForCausalLM)",
                  " (llm42 는 transformers 가 아는 구조를 실행합니다; 42dot LLM-SFT 는 LlamaForCausalLM 입니다)"),
    # conversations on disk
    "cannot_read": ("cannot read {path}: {why}", "{path} 을(를) 읽을 수 없습니다: {why}"),
    "not_conversation": ("{path} is not an llm42 conversation (its first line is not a transcript's start); "
                         "nothing was read from or written to it",
                         "{path} 는 llm42 대화가 아닙니다 (첫 줄이 대화 기록의 시작이 아님); 읽거나 쓰지 않았습니다"),
    "resume_recorded": ("resuming with the model this conversation was recorded with: {model}",
                        "이 대화가 기록된 모델로 이어갑니다: {model}"),
    "resume_other": ("this conversation was recorded with {recorded}; it goes on with {now}, as asked",
                     "이 대화는 {recorded} 로 기록되었습니다; 요청대로 {now} 로 이어갑니다"),
    "no_conversation": ("no conversation {ref!r} (neither a file nor an id in {folder}; --list shows them)",
                        "대화 {ref!r} 이(가) 없습니다 ({folder} 의 파일도 id 도 아닙니다; --list 로 목록을 보세요)"),
    "nothing_to_resume": ("no saved conversation to resume in {folder}", "{folder} 에 이어갈 저장된 대화가 없습니다"),
    # remote servers
    "unreachable": ("cannot reach {url}: is the server running, and is the URL right (it usually ends in /v1)?",
                    "{url} 에 연결할 수 없습니다: 서버가 실행 중인지, URL 이 맞는지 확인하세요 (보통 /v1 로 끝납니다)"),
    "http_401": ("{url} refused the API key (HTTP 401): check the variable named by --api-key-env",
                 "{url} 이(가) API 키를 거부했습니다 (HTTP 401): --api-key-env 가 가리키는 변수를 확인하세요"),
    "http_404_api": ("{url} has no OpenAI-compatible API (HTTP 404): the URL usually ends in /v1",
                     "{url} 에 OpenAI 호환 API 가 없습니다 (HTTP 404): URL 은 보통 /v1 로 끝납니다"),
    "http_404": ("{url} has no model {model!r} or no chat endpoint (HTTP 404): check --model and the URL",
                 "{url} 에 모델 {model!r} 이나 채팅 엔드포인트가 없습니다 (HTTP 404): --model 과 URL 을 확인하세요"),
    "http_429": ("{url} is rate-limiting (HTTP 429): wait a moment and send again",
                 "{url} 이(가) 요청 수를 제한하고 있습니다 (HTTP 429): 잠시 뒤 다시 보내세요"),
    "http_status": ("{url} answered HTTP {code}{detail}", "{url} 이(가) HTTP {code} 로 답했습니다{detail}"),
    "no_models": ("{url} lists no models: pass --model NAME", "{url} 에 모델 목록이 없습니다: --model NAME 을 주세요"),
    "unknown_model": ("{url} has no model {model!r}; it has: {models}", "{url} 에 모델 {model!r} 이(가) 없습니다; 있는 모델: {models}"),
    "using_v1": ("{url} has no API; using {retry}", "{url} 에는 API 가 없어 {retry} 를 씁니다"),
    "lost_midway": ("{url} stopped answering in the middle of the reply ({why}); the part that came is kept",
                    "{url} 이(가) 답변 도중 응답을 멈췄습니다 ({why}); 받은 부분은 남겨 둡니다"),
    "lost_unfinished": ("{url} closed the reply before finishing it; the part that came is kept",
                        "{url} 이(가) 답변을 끝내지 않고 닫았습니다; 받은 부분은 남겨 둡니다"),
    "no_extras": ("{url} does not take top_k or repetition_penalty; sampling without them",
                  "{url} 은(는) top_k 와 repetition_penalty 를 받지 않습니다; 그것 없이 샘플링합니다"),
}
LANGUAGES = ("en", "ko")
_lang = "en"


def from_locale() -> str:
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "ko" if value.lower().startswith("ko") else "en"
    return "en"


def set_language(flag: str | None = None) -> str:
    """--lang if given, else the locale's; every message from now on is in it."""
    global _lang
    _lang = flag if flag in LANGUAGES else from_locale()
    return _lang


def language() -> str:
    return _lang


PLURAL = re.compile(r"\(([^()|]+)\|([^()|]+)\)")  # English "(turn|turns)": one or the other by {n}


def t(key: str, **kw) -> str:
    """The message `key` in the current language; English "(one|many)" forms agree with the count `n`
    (Korean counts with counters: 메시지 {n}개)."""
    text = MESSAGES[key][LANGUAGES.index(_lang)].format(**kw)
    if "n" in kw:
        text = PLURAL.sub(lambda m: m.group(1) if kw["n"] == 1 else m.group(2), text)
    return text


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


set_language()
