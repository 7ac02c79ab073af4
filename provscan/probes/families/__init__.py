"""The probe families: leakage, sweep, phrase, replay and inversion, each a search for triggers."""
