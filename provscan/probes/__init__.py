"""Behavioural backdoor probes: run the model to look for hidden triggers."""
