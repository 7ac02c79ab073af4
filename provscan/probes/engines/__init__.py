"""Which engines can run the probes? transformers, vLLM and an OpenAI-compatible server.

Importing this package imports no torch, transformers or vllm: provscan's other commands
work without the `probes` extra. Each engine module imports its heavy library itself, and
`load.make_engine` imports only the module of the engine asked for.
"""
