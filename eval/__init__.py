"""llm42's evaluation: answer a prompt set, judge the answers with an LLM, report; zero-shot tasks."""
