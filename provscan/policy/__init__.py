"""Which verdict does the Rego policy give a report? The policy engine and its helpers."""
