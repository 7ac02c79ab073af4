"""Emitters: turn a Report (and Verdict) into text; they never print or write files."""
