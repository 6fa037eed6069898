"""What llm42 says about what it keeps on disk: downloads, saved and cached models, conversations, and servers
(key: (English, Korean))."""

STORE: dict[str, tuple[str, str]] = {
    "no_weights": (
        "the repository has no weights llm42 can load",
        "저장소에 llm42 가 불러올 수 있는 가중치가 없습니다",
    ),
    "saved_damaged": (
        "{path} is damaged or incomplete ({why}); save it again with --quantize and --save-quantized",
        "{path} 가 손상되었거나 불완전합니다 ({why}); --quantize 와 --save-quantized 로 다시 저장하세요",
    ),
    "saved_other_version": (
        "{path} was saved by another llm42 version (format {format}); save it again with "
        "--quantize and --save-quantized",
        "{path} 는 다른 llm42 버전이 저장했습니다 (형식 {format}); --quantize 와 --save-quantized 로 다시 저장하세요",
    ),
    "no_manifest": ("its {file} is missing or damaged", "{file} 가 없거나 손상됨"),
    "file_missing": ("{file} is missing", "{file} 가 없음"),
    "file_size": (
        "{file} is {size} bytes, its manifest says {expected}",
        "{file} 는 {size} 바이트, 목록에는 {expected}",
    ),
    "save_failed": (
        "could not save the quantized model in {path}: {why}; nothing was left there",
        "{path} 에 양자화 모델을 저장할 수 없습니다: {why}; 아무것도 남기지 않았습니다",
    ),
    "quantized_cached": (
        "{kind} weights as quantized on an earlier start: {path}",
        "이전 실행에서 양자화한 {kind} 가중치: {path}",
    ),
    "quantized_kept": (
        "quantized to {kind} once; kept in {path} for later starts",
        "{kind} 로 한 번 양자화했습니다; 다음 실행을 위해 {path} 에 보관합니다",
    ),
    "quantized_not_kept": (
        "the quantized model is not kept for later starts: {why}",
        "양자화 모델을 다음 실행용으로 보관하지 못했습니다: {why}",
    ),
    "cache_unwritable": (
        "llm42's cache folder {path} cannot be written ({why}): kernels are measured and models "
        "converted again at every start",
        "llm42 캐시 폴더 {path} 에 쓸 수 없습니다 ({why}): 실행할 때마다 커널을 다시 측정하고 모델을 다시 변환합니다",
    ),
    "cache_remade": (
        "{path} in llm42's cache was damaged; making it again",
        "llm42 캐시의 {path} 가 손상되어 다시 만듭니다",
    ),
    "converting_gguf": (
        "reading {path} and converting it to safetensors (once: later starts take a few seconds)",
        "{path} 를 읽어 safetensors 로 변환하는 중 (한 번만: 다음 실행은 몇 초)",
    ),
    "gguf_cached": (
        "loading the GGUF model as converted on an earlier start: {path}",
        "이전에 변환해 둔 GGUF 모델을 불러옵니다: {path}",
    ),
    "gguf_converted": (
        "converted the {gguf:.0f} MB GGUF model once to {path} ({mb:.0f} MB of {dtype} weights); "
        "later starts load that",
        "{gguf:.0f} MB GGUF 모델을 {path} 로 한 번 변환했습니다 ({dtype} 가중치 {mb:.0f} MB); "
        "다음부터는 그것을 불러옵니다",
    ),
    "gguf_bigger": (
        "a GGUF's quantized weights are unpacked for PyTorch, so they take more room; --quantize int4 keeps them small",
        "GGUF 의 양자화된 가중치는 PyTorch 용으로 풀려서 더 커집니다; --quantize int4 로 작게 유지하세요",
    ),
    "pickle_only": (
        "{path} has only pickle weights ({file}), and unpickling can run code: convert them to safetensors, "
        "or pass --allow-pickle if you trust where they came from",
        "{path} 에는 pickle 가중치({file})만 있고, pickle 을 여는 것은 코드를 실행할 수 있습니다: safetensors 로 "
        "변환하거나, 출처를 믿는다면 --allow-pickle 을 주세요",
    ),
    "no_gguf": ("no GGUF file at {path}; check the path", "{path} 에 GGUF 파일이 없습니다; 경로를 확인하세요"),
    "no_config": (
        "{path} has no config.json; point --model-path at a folder saved with save_pretrained, a .gguf file, "
        "or a hub id like 42dot/42dot_LLM-SFT-1.3B",
        "{path} 에 config.json 이 없습니다; --model-path 에 save_pretrained 로 저장한 폴더, .gguf 파일, "
        "또는 42dot/42dot_LLM-SFT-1.3B 같은 허브 id 를 주세요",
    ),
    "not_a_model_file": (
        "{path} is a file, but neither a model folder nor a .gguf file: pass a folder with config.json and weights, "
        "a .gguf file or a hub id",
        "{path} 은(는) 파일이지만 모델 폴더도 .gguf 파일도 아닙니다: config.json 과 가중치가 있는 폴더, .gguf 파일, "
        "또는 hub id 를 주세요",
    ),
    "no_folder": ("no model folder at {path}; check the path", "{path} 에 모델 폴더가 없습니다; 경로를 확인하세요"),
    "offline": (
        "{name} is not in the local cache and the Hugging Face hub cannot be reached; download it once online, "
        "or pass a local copy: --model-path /path/to/folder",
        "{name} 이(가) 로컬 캐시에 없고 Hugging Face 허브에 연결할 수 없습니다; 온라인에서 한 번 내려받거나, "
        "로컬 사본을 주세요: --model-path /path/to/folder",
    ),
    "bad_config": (
        "cannot read the model config of {name}: {why}{hint}",
        "{name} 의 모델 설정을 읽을 수 없습니다: {why}{hint}",
    ),
    "cannot_load": ("cannot load {name}: {why}{hint}", "{name} 을(를) 불러올 수 없습니다: {why}{hint}"),
    "damaged": (
        "the weights of {name} are damaged or incomplete ({why}); download or save them again",
        "{name} 의 가중치가 손상되었거나 불완전합니다 ({why}); 다시 내려받거나 저장하세요",
    ),
    "hint_remote_code": (
        " (it needs its own Python code: pass --trust-remote-code only if you trust its authors)",
        " (자체 Python 코드가 필요합니다: 만든 이를 믿을 때만 --trust-remote-code 를 주세요)",
    ),
    "hint_arch": (
        " (llm42 runs architectures transformers knows; 42dot LLM-SFT is LlamaForCausalLM)",
        " (llm42 는 transformers 가 아는 구조를 실행합니다; 42dot LLM-SFT 는 LlamaForCausalLM 입니다)",
    ),
    # conversations on disk
    "cannot_read": ("cannot read {path}: {why}", "{path} 을(를) 읽을 수 없습니다: {why}"),
    "not_conversation": (
        "{path} is not an llm42 conversation (its first line is not a transcript's start); "
        "nothing was read from or written to it",
        "{path} 는 llm42 대화가 아닙니다 (첫 줄이 대화 기록의 시작이 아님); 읽거나 쓰지 않았습니다",
    ),
    "resume_recorded": (
        "resuming with the model this conversation was recorded with: {model}",
        "이 대화가 기록된 모델로 이어갑니다: {model}",
    ),
    "resume_other": (
        "this conversation was recorded with {recorded}; it goes on with {now}, as asked",
        "이 대화는 {recorded} 로 기록되었습니다; 요청대로 {now} 로 이어갑니다",
    ),
    "no_conversation": (
        "no conversation {ref!r} (neither a file nor an id in {folder}; --list shows them)",
        "대화 {ref!r} 이(가) 없습니다 ({folder} 의 파일도 id 도 아닙니다; --list 로 목록을 보세요)",
    ),
    "nothing_to_resume": ("no saved conversation to resume in {folder}", "{folder} 에 이어갈 저장된 대화가 없습니다"),
    # remote servers
    "unreachable": (
        "cannot reach {url}: is the server running, and is the URL right (it usually ends in /v1)?",
        "{url} 에 연결할 수 없습니다: 서버가 실행 중인지, URL 이 맞는지 확인하세요 (보통 /v1 로 끝납니다)",
    ),
    "http_401": (
        "{url} refused the API key (HTTP 401): check the variable named by --api-key-env",
        "{url} 이(가) API 키를 거부했습니다 (HTTP 401): --api-key-env 가 가리키는 변수를 확인하세요",
    ),
    "http_404_api": (
        "{url} has no OpenAI-compatible API (HTTP 404): the URL usually ends in /v1",
        "{url} 에 OpenAI 호환 API 가 없습니다 (HTTP 404): URL 은 보통 /v1 로 끝납니다",
    ),
    "http_404": (
        "{url} has no model {model!r} or no chat endpoint (HTTP 404): check --model and the URL",
        "{url} 에 모델 {model!r} 이나 채팅 엔드포인트가 없습니다 (HTTP 404): --model 과 URL 을 확인하세요",
    ),
    "http_429": (
        "{url} is rate-limiting (HTTP 429): wait a moment and send again",
        "{url} 이(가) 요청 수를 제한하고 있습니다 (HTTP 429): 잠시 뒤 다시 보내세요",
    ),
    "http_status": ("{url} answered HTTP {code}{detail}", "{url} 이(가) HTTP {code} 로 답했습니다{detail}"),
    "no_models": ("{url} lists no models: pass --model NAME", "{url} 에 모델 목록이 없습니다: --model NAME 을 주세요"),
    "unknown_model": (
        "{url} has no model {model!r}; it has: {models}",
        "{url} 에 모델 {model!r} 이(가) 없습니다; 있는 모델: {models}",
    ),
    "using_v1": ("{url} has no API; using {retry}", "{url} 에는 API 가 없어 {retry} 를 씁니다"),
    "lost_midway": (
        "{url} stopped answering in the middle of the reply ({why}); the part that came is kept",
        "{url} 이(가) 답변 도중 응답을 멈췄습니다 ({why}); 받은 부분은 남겨 둡니다",
    ),
    "lost_unfinished": (
        "{url} closed the reply before finishing it; the part that came is kept",
        "{url} 이(가) 답변을 끝내지 않고 닫았습니다; 받은 부분은 남겨 둡니다",
    ),
    "no_extras": (
        "{url} does not take top_k or repetition_penalty; sampling without them",
        "{url} 은(는) top_k 와 repetition_penalty 를 받지 않습니다; 그것 없이 샘플링합니다",
    ),
}
