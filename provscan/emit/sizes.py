"""How is a byte count shown to a person? One way, for the terminal and the audit report."""

from __future__ import annotations


def human_size(n: int) -> str:
    """A byte count as people read it: 229.9 KiB (the terminal and the audit report agree)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
