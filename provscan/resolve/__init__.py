"""Which files make up a target: a local folder or file, a cache snapshot, or a Hub commit."""
