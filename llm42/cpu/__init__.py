"""The CPU fast path: llm42's C kernels and their loader, the quantized layers, the kernel and thread choices."""
