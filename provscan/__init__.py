"""provscan: admit or refuse an open-weight model, with the evidence written down."""

__version__ = "0.1.0"
