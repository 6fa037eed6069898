"""What the tests share: driving the CLI, building test models, fake servers."""
