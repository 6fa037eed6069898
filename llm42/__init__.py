"""llm42: a terminal chat for 42dot LLM-SFT and other Hugging Face causal chat models."""

__version__ = "0.1.0"
