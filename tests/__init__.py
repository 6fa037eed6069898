"""llm42's tests: they drive the real CLI against real model files."""
