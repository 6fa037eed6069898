"""Device choice on given RAM/VRAM figures: the decision function alone, and reading a cgroup's memory limit."""

import pytest
import torch
from transformers import LlamaConfig

from llm42.device import DeviceError, Gpu, Machine, cgroup_room, choose, estimate_bytes

GB = 1024**3
CFG_42DOT = LlamaConfig(vocab_size=50304, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                        num_attention_heads=32, max_position_embeddings=4096, tie_word_embeddings=False)


def need(dtype):
    return estimate_bytes(CFG_42DOT, dtype)


def gpu(i, free_gb, bf16=True):
    return Gpu(i, f"GPU{i}", int(free_gb * GB), int(80 * GB), bf16)


def test_estimate_counts_42dot_parameters_and_kv_cache():
    # 1.44 B parameters in bf16 = 2.7 GiB, KV for 4096 tokens = 0.75 GiB, plus margin
    assert 3.9 * GB < need(torch.bfloat16) < 4.3 * GB
    assert need(torch.float32) > 1.9 * need(torch.bfloat16) - GB


def test_auto_picks_the_gpu_with_most_free_memory():
    m = Machine(16 * GB, True, [gpu(0, 3), gpu(1, 20), gpu(2, 10)])
    c = choose("auto", "auto", m, need)
    assert (c.device, c.dtype) == ("cuda:1", torch.bfloat16)
    assert "GPU1" in c.reason


def test_auto_uses_fp16_on_a_gpu_without_bf16():
    c = choose("auto", "auto", Machine(16 * GB, True, [gpu(0, 20, bf16=False)]), need)
    assert c.dtype == torch.float16


def test_auto_falls_back_to_cpu_when_no_gpu_has_room():
    c = choose("auto", "auto", Machine(16 * GB, True, [gpu(0, 1), gpu(1, 2)]), need)
    assert (c.device, c.dtype) == ("cpu", torch.bfloat16)
    assert "cuda:0 has 1.0 GiB free" in c.reason


def test_cpu_without_bf16_uses_fp32_and_says_so():
    c = choose("auto", "auto", Machine(16 * GB, False), need)
    assert c.dtype == torch.float32 and "no native bf16" in c.reason


def test_mps_before_cpu():
    c = choose("auto", "auto", Machine(16 * GB, True, [], mps=True), need)
    assert (c.device, c.dtype) == ("mps", torch.float16)


def test_nothing_fits_names_both_figures():
    with pytest.raises(DeviceError, match=r"needs about 4\.\d GiB in bf16 but only 2\.0 GiB RAM"):
        choose("auto", "auto", Machine(2 * GB, True, [gpu(0, 1)]), need)


def test_asked_gpu_that_does_not_fit_is_an_error():
    m = Machine(16 * GB, True, [gpu(0, 20), gpu(1, 2)])
    with pytest.raises(DeviceError, match=r"cuda:1 \(GPU1\) has 2\.0 GiB free"):
        choose("cuda:1", "auto", m, need)
    with pytest.raises(DeviceError, match="only 2 CUDA GPU"):
        choose("cuda:5", "auto", m, need)
    assert choose("cuda", "auto", m, need).device == "cuda:0"


def test_asked_device_absent():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        choose("cuda", "auto", Machine(16 * GB, True), need)
    with pytest.raises(DeviceError, match="MPS"):
        choose("mps", "auto", Machine(16 * GB, True), need)


def test_explicit_dtype_is_kept():
    c = choose("cpu", "float32", Machine(16 * GB, True), need)
    assert c.dtype == torch.float32


def _cgroup(tmp_path, own: str, folder: str, files: dict) -> tuple:
    (tmp_path / "proc").write_text(own)
    d = tmp_path / "fs" / folder
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return tmp_path / "fs", tmp_path / "proc"


def test_cgroup_v2_room_is_limit_minus_usage_plus_reclaimable_cache(tmp_path):
    root, own = _cgroup(tmp_path, "0::/\n", "", {"memory.max": f"{4 * GB}\n", "memory.current": f"{3 * GB}\n",
                                                  "memory.stat": f"anon 1\ninactive_file {GB // 2}\n"})
    assert cgroup_room(root, own) == GB + GB // 2


def test_cgroup_v1_without_a_limit_and_no_cgroup_at_all(tmp_path):
    root, own = _cgroup(tmp_path, "4:memory:/docker/abc\n0::/\n", "memory",  # the container's own group at the root
                        {"memory.limit_in_bytes": "9223372036854771712\n", "memory.usage_in_bytes": "1000\n",
                         "memory.stat": "total_inactive_file 0\n"})
    assert cgroup_room(root, own) is None
    assert cgroup_room(root, tmp_path / "absent") is None
