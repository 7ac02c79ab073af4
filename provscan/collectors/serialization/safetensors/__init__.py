"""safetensors files: the header checked, and read again by the safetensors library itself."""
