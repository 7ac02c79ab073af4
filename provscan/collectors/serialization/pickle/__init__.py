"""Pickles (plain, in torch checkpoints, joblib): what loading them would import and call."""
