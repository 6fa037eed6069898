"""The benchmark (`python -m llm42.bench`), the quality report, the random-model builder and llama.cpp's rows.
Nothing in the chat imports this package."""
