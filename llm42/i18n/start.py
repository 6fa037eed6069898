"""What llm42 says while it starts: flags, devices, loading, caches, conversations on disk, servers
(key: (English, Korean))."""

START: dict[str, tuple[str, str]] = {
    "see_help": ("{message} (see --help)", "{message} (--help 참고)"),
    "bad_temperature": (
        "temperature must be >= 0 (0 means greedy), got {v}",
        "temperature 는 0 이상이어야 합니다 (0은 greedy), 받은 값 {v}",
    ),
    "bad_top_p": ("top-p must be in (0, 1], got {v}", "top-p 는 (0, 1] 범위여야 합니다, 받은 값 {v}"),
    "bad_top_k": ("top-k must be >= 0 (0 turns it off), got {v}", "top-k 는 0 이상이어야 합니다 (0은 끔), 받은 값 {v}"),
    "bad_penalty": (
        "repetition penalty must be > 0 (1 turns it off), got {v}",
        "repetition penalty 는 0보다 커야 합니다 (1은 끔), 받은 값 {v}",
    ),
    "bad_last_n": (
        "repeat last n must be a number of the reply's tokens, or -1 for the prompt and the whole reply; got {v}",
        "repeat last n 은 응답의 토큰 수이거나, 프롬프트와 응답 전체를 뜻하는 -1 이어야 합니다; 받은 값 {v}",
    ),
    "bad_kv_cache": (
        "--kv-cache-gb must be 0 (keep none) or more, got {v}",
        "--kv-cache-gb 는 0(보관 안 함) 이상이어야 합니다, 받은 값 {v}",
    ),
    "bad_max_new": ("max new tokens must be >= 1, got {v}", "max new tokens 는 1 이상이어야 합니다, 받은 값 {v}"),
    "not_whole": ("{name} must be a whole number, got {text!r}", "{name} 는 정수여야 합니다, 받은 값 {text!r}"),
    "not_number": ("{name} must be a number, got {text!r}", "{name} 는 숫자여야 합니다, 받은 값 {text!r}"),
    "bad_device": (
        "unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps",
        "알 수 없는 장치 {device!r}: auto, cpu, cuda, cuda:N, mps 중 하나를 쓰세요",
    ),
    "bad_context": (
        "--context must be at least 64 tokens, got {n}",
        "--context 는 64 토큰 이상이어야 합니다, 받은 값 {n}",
    ),
    "prompt_both": ("use either --prompt or --prompt-file, not both", "--prompt 와 --prompt-file 중 하나만 쓰세요"),
    "endpoint_model_path": (
        "--model-path is for a local model; with --endpoint, name the server's model with --model",
        "--model-path 는 로컬 모델용입니다; --endpoint 와 함께라면 서버의 모델을 --model 로 지정하세요",
    ),
    "endpoint_not_url": (
        "--endpoint {url} is not a URL: give the server's base URL, e.g. http://localhost:8000/v1",
        "--endpoint {url} 는 URL 이 아닙니다: 서버의 기본 URL 을 주세요, 예: http://localhost:8000/v1",
    ),
    "context_capped": (
        "--context {asked} is more than this model's {most}-token window: using {most}",
        "--context {asked} 는 이 모델의 창 {most} 토큰보다 큽니다: {most} 을(를) 씁니다",
    ),
    "endpoint_quantize": (
        "--quantize and --save-quantized are for local models, not with --endpoint",
        "--quantize 와 --save-quantized 는 로컬 모델용입니다 (--endpoint 와 함께 쓸 수 없음)",
    ),
    "resume_no_history": (
        "--resume without an id or path needs the history (drop --no-history)",
        "id 나 경로 없는 --resume 은 대화 기록이 필요합니다 (--no-history 를 빼세요)",
    ),
    "prompt_empty": (
        '--prompt is empty: give the message to send, e.g. --prompt "안녕하세요"',
        '--prompt 가 비어 있습니다: 보낼 메시지를 주세요, 예: --prompt "안녕하세요"',
    ),
    "prompt_file_empty": (
        "--prompt-file {path} is empty: there is no message to send",
        "--prompt-file {path} 이(가) 비어 있습니다: 보낼 메시지가 없습니다",
    ),
    "prompt_file_unreadable": (
        "cannot read --prompt-file {path}: {why}",
        "--prompt-file {path} 을(를) 읽을 수 없습니다: {why}",
    ),
    "save_needs_quantize": (
        "--save-quantized needs --quantize int8 or int4",
        "--save-quantized 에는 --quantize int8 또는 int4 가 필요합니다",
    ),
    "save_exists": (
        "--save-quantized {path} already exists and is not empty; choose a new folder or delete that one first",
        "--save-quantized {path} 이(가) 이미 있고 비어 있지 않습니다; 새 폴더를 고르거나 먼저 지우세요",
    ),
    "max_new_window": (
        "--max-new-tokens {n} must be below the {window}-token context window ({whose}); give a smaller one",
        "--max-new-tokens {n} 는 문맥 창 {window} 토큰({whose})보다 작아야 합니다; 더 작은 값을 주세요",
    ),
    "reply_fitted": (
        "replies up to {n} tokens: half the {window}-token context window ({whose}); --max-new-tokens N to choose",
        "답변은 최대 {n} 토큰: 문맥 창 {window} 토큰({whose})의 절반; --max-new-tokens N 으로 정하세요",
    ),
    "models_window": ("the model's", "모델의 창"),
    "max_new_below": (
        "max new tokens must be below the {window}-token window",
        "max new tokens 는 문맥 창 {window} 토큰보다 작아야 합니다",
    ),
    "on_off": ("expected on or off, got {value!r}", "on 또는 off 를 쓰세요, 받은 값 {value!r}"),
    "too_long": (
        "this message needs {n} prompt tokens, but the window is {window} tokens with {max_new} kept for the "
        "reply; shorten it or lower max new tokens",
        "이 메시지에는 프롬프트 토큰 {n}개가 필요하지만 문맥 창은 {window} "
        "토큰이고 답변에 {max_new} 토큰을 남겨야 합니다; "
        "메시지를 줄이거나 max new tokens 를 낮추세요",
    ),
    # device choice
    "device_line": ("device {device}, {kind}: {reason}", "장치 {device}, {kind}: {reason}"),
    "dtype_asked": ("{name} as asked", "요청한 {name}"),
    "dtype_gpu_bf16": ("bf16 on this GPU", "이 GPU의 bf16"),
    "dtype_gpu_fp16": ("fp16 (no bf16 on this GPU)", "fp16 (이 GPU는 bf16 미지원)"),
    "dtype_mps": ("fp16 on Apple GPU", "Apple GPU의 fp16"),
    "dtype_cpu_bf16": ("bf16, which this CPU computes natively{cls}", "이 CPU가 직접 계산하는 bf16{cls}"),
    "dtype_cpu_fp16": (
        "fp16, which this Arm CPU computes natively (it has no bf16){cls}",
        "이 Arm CPU가 직접 계산하는 fp16 (bf16 미지원){cls}",
    ),
    "dtype_cpu_bf16_widened": (
        "bf16 weights, computed in fp32{cls} (this CPU has no bf16 arithmetic): half the memory "
        "of fp32, and each step reads half the bytes",
        "bf16 가중치를 fp32 로 계산{cls} (이 CPU는 bf16 연산 미지원): fp32 의 절반 메모리, "
        "토큰마다 절반의 바이트만 읽습니다",
    ),
    "gpu_most_free": (
        "{gpu} has the most free memory ({free} free, {need} needed); {why}",
        "{gpu} 의 여유 메모리가 가장 많습니다 ({free} 여유, {need} 필요); {why}",
    ),
    "gpu_has": ("{dev} has {free} free", "{dev} 여유 {free}"),
    "mps_auto": ("Apple GPU (MPS) available; {why}", "Apple GPU (MPS) 사용 가능; {why}"),
    "no_gpu": ("no GPU found", "GPU 없음"),
    "no_gpu_room": ("no GPU has room ({tried})", "여유 있는 GPU 없음 ({tried})"),
    "cpu_auto": ("{lead}; CPU has {ram} RAM available{limit}; {why}", "{lead}; CPU 사용 가능 RAM {ram}{limit}; {why}"),
    "cpu_asked": ("CPU as asked ({ram} RAM available); {why}", "요청한 CPU (사용 가능 RAM {ram}); {why}"),
    "window_shrunk": (
        " (context window {n} tokens, not {full}, to fit in RAM)",
        " (RAM 에 맞추려고 문맥 창을 {full} 대신 {n} 토큰으로)",
    ),
    "no_cuda": (
        "--device {dev}: no CUDA GPU is visible to PyTorch; use --device auto or cpu",
        "--device {dev}: PyTorch 가 볼 수 있는 CUDA GPU 가 없습니다; --device auto 나 cpu 를 쓰세요",
    ),
    "few_gpus": (
        "--device {dev}: only {n} CUDA (GPU exists|GPUs exist) (cuda:0..cuda:{last})",
        "--device {dev}: CUDA GPU 는 {n}개뿐입니다 (cuda:0..cuda:{last})",
    ),
    "gpu_full": (
        "{dev} ({gpu}) has {free} free but the model needs about {need} "
        "in {dtype}; free GPU memory or use --device auto",
        "{dev} ({gpu}) 의 여유는 {free} 인데 모델은 {dtype} 로 약 {need} 가 "
        "필요합니다; GPU 메모리를 비우거나 --device auto 를 쓰세요",
    ),
    "gpu_asked": (
        "{gpu} as asked ({free} free, {need} needed); {why}",
        "요청한 {gpu} ({free} 여유, {need} 필요); {why}",
    ),
    "no_mps": (
        "--device mps: Apple's MPS backend is not available here; use --device auto or cpu",
        "--device mps: 여기서는 Apple MPS 를 쓸 수 없습니다; --device auto 나 cpu 를 쓰세요",
    ),
    "mps_asked": ("Apple GPU as asked; {why}", "요청한 Apple GPU; {why}"),
    "short_of_ram": (
        "the model needs about {need} in {dtype} but only {ram} RAM is "
        "available{limit}{gpus}; {what} or try --quantize int8",
        "모델은 {dtype} 로 약 {need} 가 필요한데 사용 가능한 RAM 은 {ram} "
        "뿐입니다{limit}{gpus}; {what} --quantize int8 을 써 보세요",
    ),
    "and_no_gpu": (" and no GPU has room", ", 여유 있는 GPU 도 없습니다"),
    "raise_limit": ("raise that limit", "그 제한을 올리거나"),
    "close_programs": ("close other programs", "다른 프로그램을 닫거나"),
    "under_ulimit": (" under ulimit -v", " (ulimit -v 제한)"),
    "under_cgroup": (" under this container's (cgroup's) memory limit", " (이 컨테이너(cgroup)의 메모리 제한)"),
    "quantize_cpu_only": (
        "--quantize runs on the CPU only; on {device} use --dtype bfloat16 or float16",
        "--quantize 는 CPU 에서만 됩니다; {device} 에서는 --dtype bfloat16 이나 float16 을 쓰세요",
    ),
    "quantized_reason": (
        "{kind} weights run on the CPU; {ram} RAM available",
        "{kind} 가중치는 CPU 에서 실행됩니다; 사용 가능 RAM {ram}",
    ),
    "no_effect_quantize": (
        "--quantize {asked} has no effect: {path} holds {kind} weights already",
        "--quantize {asked} 는 효과가 없습니다: {path} 는 이미 {kind} 가중치입니다",
    ),
    "no_effect_dtype": (
        "--dtype {dtype} has no effect on {kind} weights (their activations are bf16)",
        "--dtype {dtype} 는 {kind} 가중치에 효과가 없습니다 (활성값은 bf16)",
    ),
    "reading_config": ("reading {path} config", "{path} 설정을 읽는 중"),
    "model_defaults": (
        "sampling: {values}, as the model's generation_config.json sets them (flags override)",
        "샘플링: 모델의 generation_config.json 이 정한 {values} (플래그가 우선)",
    ),
    "model_defaults_bad": (
        "the model's generation_config.json sets a sampling value llm42 cannot use ({why}); 42dot's defaults apply",
        "모델의 generation_config.json 에 쓸 수 없는 샘플링 값이 있습니다 ({why}); 42dot 기본값을 씁니다",
    ),
    "importing": ("starting PyTorch", "PyTorch 를 시작하는 중"),
    "loading": ("loading {path}", "{path} 을(를) 불러오는 중"),
    "loading_quantizing": ("loading and quantizing to {kind} {path}", "{path} 을(를) 불러와 {kind} 로 양자화하는 중"),
    # loading
    "not_captured": (
        "the decode step could not be captured as a CUDA graph ({why}); it runs without one, slower",
        "생성 단계를 CUDA 그래프로 캡처하지 못했습니다 ({why}); 그래프 없이 더 느리게 실행합니다",
    ),
    "measuring_kernels": (
        "measuring which kernels are fastest on this CPU (once for this model shape)",
        "이 CPU에서 가장 빠른 커널을 측정하는 중 (이 모델 형태에 한 번)",
    ),
    "capturing": ("capturing the decode step as a CUDA graph", "생성 단계를 CUDA 그래프로 캡처하는 중"),
    "captured": (
        "decode step captured as a CUDA graph in {s:.1f}s",
        "생성 단계를 {s:.1f}초 만에 CUDA 그래프로 캡처했습니다",
    ),
    "downloading": (
        "downloading {file} ({size}) from the Hugging Face hub",
        "Hugging Face 허브에서 {file} ({size}) 내려받는 중",
    ),
    "read_folder": (
        "{path} is a folder; /read and --file take a text file",
        "{path} 은(는) 폴더입니다; /read 와 --file 은 텍스트 파일을 받습니다",
    ),
    "read_huge": (
        "{path} is {mb:.0f} MB: too big for any context window",
        "{path} 은(는) {mb:.0f} MB 입니다: 어떤 문맥 창에도 너무 큽니다",
    ),
    "read_unreadable": ("cannot read {path}: {why}", "{path} 을(를) 읽을 수 없습니다: {why}"),
    "read_binary": (
        "{path} is not a text file (UTF-8 or CP949/EUC-KR)",
        "{path} 은(는) 텍스트 파일이 아닙니다 (UTF-8 또는 CP949/EUC-KR)",
    ),
    "read_empty": ("{path} is empty", "{path} 이(가) 비어 있습니다"),
}
