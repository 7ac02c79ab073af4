"""Chat templates (tokenizer_config.json, GGUF): parsed with Jinja, never rendered outside a sandbox."""
