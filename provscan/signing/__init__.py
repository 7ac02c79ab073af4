"""OpenSSF model signatures (OMS): reading, verifying and producing them."""
