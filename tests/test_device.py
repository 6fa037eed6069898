"""Device choice on given RAM/VRAM figures: the decision function alone, and reading a cgroup's memory limit."""

import pytest
import torch
from transformers import LlamaConfig

from llm42.cpu.flags import cpu_supports_fp16
from llm42.model.device import DeviceError, Gpu, Machine, cgroup_room, choose, estimate_bytes

GB = 1024**3
CFG_42DOT = LlamaConfig(
    vocab_size=50304,
    hidden_size=2048,
    intermediate_size=5632,
    num_hidden_layers=24,
    num_attention_heads=32,
    max_position_embeddings=4096,
    tie_word_embeddings=False,
)


WINDOW = 4096


def need(dtype, tokens=WINDOW):
    return estimate_bytes(CFG_42DOT, dtype, tokens)


def pick(requested, m, dtype="auto"):
    return choose(requested, dtype, m, need, WINDOW)


def gpu(i, free_gb, bf16=True):
    return Gpu(i, f"GPU{i}", int(free_gb * GB), int(80 * GB), bf16)


def test_estimate_counts_42dot_parameters_and_kv_cache():
    # 1.44 B parameters in bf16 = 2.7 GiB, KV for 4096 tokens = 0.75 GiB, plus margin
    assert 3.9 * GB < need(torch.bfloat16) < 4.3 * GB
    assert need(torch.float32) > 1.9 * need(torch.bfloat16) - GB


def test_auto_picks_the_gpu_with_most_free_memory():
    m = Machine(16 * GB, True, [gpu(0, 3), gpu(1, 20), gpu(2, 10)])
    c = pick("auto", m)
    assert (c.device, c.dtype) == ("cuda:1", torch.bfloat16)
    assert "GPU1" in c.reason


def test_auto_uses_fp16_on_a_gpu_without_bf16():
    c = pick("auto", Machine(16 * GB, True, [gpu(0, 20, bf16=False)]))
    assert c.dtype == torch.float16


def test_auto_falls_back_to_cpu_when_no_gpu_has_room():
    c = pick("auto", Machine(16 * GB, True, [gpu(0, 1), gpu(1, 2)]))
    assert (c.device, c.dtype) == ("cpu", torch.bfloat16)
    assert "cuda:0 has 1.0 GiB free" in c.reason


def test_cpu_without_bf16_keeps_bf16_weights_computed_in_fp32_and_says_so():
    c = pick("auto", Machine(16 * GB, False))
    assert c.dtype == torch.bfloat16 and "computed in fp32 (this CPU has no bf16 arithmetic)" in c.reason


def test_mps_before_cpu():
    c = pick("auto", Machine(16 * GB, True, [], mps=True))
    assert (c.device, c.dtype) == ("mps", torch.float16)


def test_nothing_fits_names_both_figures():
    with pytest.raises(DeviceError, match=r"needs about 4\.\d GiB in bf16 but only 2\.0 GiB RAM"):
        pick("auto", Machine(2 * GB, True, [gpu(0, 1)]))


def test_asked_gpu_that_does_not_fit_is_an_error():
    m = Machine(16 * GB, True, [gpu(0, 20), gpu(1, 2)])
    with pytest.raises(DeviceError, match=r"cuda:1 \(GPU1\) has 2\.0 GiB free"):
        pick("cuda:1", m)
    with pytest.raises(DeviceError, match="only 2 CUDA GPU"):
        pick("cuda:5", m)
    assert pick("cuda", m).device == "cuda:0"


def test_asked_device_absent():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        pick("cuda", Machine(16 * GB, True))
    with pytest.raises(DeviceError, match="MPS"):
        pick("mps", Machine(16 * GB, True))


def test_apple_m1_cpu_runs_fp16_not_fp32():
    """An M1 (Arm with fp16 arithmetic, no bf16) with about 4 GiB free, as in 42dot's own example: fp32 would
    need 5.4 GiB of weights; fp16 fits, with a smaller context window if the full one's KV cache does not."""
    m1 = Machine(int(4.0 * GB), cpu_bf16=False, cpu_fp16=True)
    c = pick("cpu", m1)
    assert c.dtype == torch.float16 and "fp16, which this Arm CPU computes natively" in c.reason
    assert c.window == 2048 and "context window 2048 tokens, not 4096" in c.reason
    assert need(torch.float16, 2048) <= m1.cpu_available < need(torch.float16)
    roomy = pick("cpu", Machine(8 * GB, cpu_bf16=False, cpu_fp16=True))
    assert roomy.dtype == torch.float16 and roomy.window is None
    x86 = pick("cpu", Machine(int(4.0 * GB), cpu_bf16=False))  # an AVX2 laptop: 16-bit weights fit there too
    assert x86.dtype == torch.bfloat16 and x86.window == 2048


def test_fp16_is_read_from_arm_cpu_features(tmp_path, monkeypatch):
    import platform

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 atomics fphp asimdhp cpuid\n")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert cpu_supports_fp16(info)
    info.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32\n")  # an Armv8.0 core: no fp16 math
    assert not cpu_supports_fp16(info)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert not cpu_supports_fp16(info)


def test_explicit_dtype_is_kept():
    c = pick("cpu", Machine(16 * GB, True), "float32")
    assert c.dtype == torch.float32


def _cgroup(tmp_path, own: str, folder: str, files: dict) -> tuple:
    (tmp_path / "proc").write_text(own)
    d = tmp_path / "fs" / folder
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return tmp_path / "fs", tmp_path / "proc"


def test_cgroup_v2_room_is_limit_minus_usage_plus_reclaimable_cache(tmp_path):
    root, own = _cgroup(
        tmp_path,
        "0::/\n",
        "",
        {
            "memory.max": f"{4 * GB}\n",
            "memory.current": f"{3 * GB}\n",
            "memory.stat": f"anon 1\ninactive_file {GB // 2}\n",
        },
    )
    assert cgroup_room(root, own) == GB + GB // 2


def test_cgroup_v1_without_a_limit_and_no_cgroup_at_all(tmp_path):
    root, own = _cgroup(
        tmp_path,
        "4:memory:/docker/abc\n0::/\n",
        "memory",  # the container's own group at the root
        {
            "memory.limit_in_bytes": "9223372036854771712\n",
            "memory.usage_in_bytes": "1000\n",
            "memory.stat": "total_inactive_file 0\n",
        },
    )
    assert cgroup_room(root, own) is None
    assert cgroup_room(root, tmp_path / "absent") is None


def test_the_cpu_class_is_named_as_its_maker_names_it():
    """The device line says which instruction sets the kernels use: PyTorch's capability (forced lower by
    ATEN_CPU_CAPABILITY), and the bf16, VNNI and AMX units oneDNN and llm42's kernels use where it is AVX512."""
    from llm42.cpu.flags import cpu_class

    sapphire = "avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 amx_tile fma"
    assert cpu_class(sapphire, "AVX512", True) == "AVX512-BF16, VNNI, AMX"
    assert cpu_class(sapphire, "AVX2", True) == "AVX2"  # forced down: PyTorch's AVX2 kernels
    assert cpu_class("avx2 avx512f avx512_vnni", "AVX512", False) == "AVX512, VNNI"
    assert cpu_class("avx2 fma", "AVX2", False) == "AVX2"
    assert cpu_class("fp asimd fphp bf16", "DEFAULT", True) == "NEON, bf16, fp16"


def test_the_device_line_names_the_cpu_class(tiny42):
    from tests.support.cli import run_cli

    r = run_cli(
        "--model-path", str(tiny42), "--device", "cpu", "--max-new-tokens", "4", "--prompt", "hi",
        ATEN_CPU_CAPABILITY="avx2",
    )  # fmt: skip
    line = next(line for line in r.stderr.decode().splitlines() if line.startswith("device cpu"))
    assert r.returncode == 0 and "(AVX2)" in line, line
