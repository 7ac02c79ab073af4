"""Hugging Face Hub access: hf:// references, bounded HTTP with retries, downloads, ranges, lineage."""
