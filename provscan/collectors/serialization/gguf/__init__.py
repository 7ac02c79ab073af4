"""GGUF files (llama.cpp): header, metadata and tensor table, read without trusting a count."""
