"""Behavioural backdoor probes: run the model to look for hidden triggers (issue 7)."""
