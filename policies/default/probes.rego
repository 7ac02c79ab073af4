# provscan default policy, behavioural probe rules (report.probes, the "probes" step).
# Rule ids and config keys: README.md in this folder. Pitfalls: top of main.rego.
#
# A confirmed trigger is a critical PRB-TRIGGER-CONFIRMED finding and a strong unconfirmed
# candidate a high PRB-CANDIDATE finding: they deny and ask for review through
# severity_levels. These rules judge whether the probes ran at all.
package provscan.main

import rego.v1

probe_steps := [step | some step in input.steps; step.name == "probes"]

probes_completed if {
	some step in probe_steps
	step.status == "completed"
}

# POL-PROBES-REQUIRED: config probes.required, and the probes did not run to completion.
deny contains item if {
	config.probes.required == true
	count(probe_steps) == 0
	item := {
		"rule": "POL-PROBES-REQUIRED",
		"msg": "the policy requires behavioural backdoor probes and none ran: run provscan check --probes (or provscan probe)",
	}
}

deny contains item if {
	config.probes.required == true
	some step in probe_steps
	step.status != "completed"
	item := {
		"rule": "POL-PROBES-REQUIRED",
		"msg": sprintf("the policy requires behavioural backdoor probes and the probe step %v: %v", [step.status, step_reason(step)]),
	}
}

# POL-PROBES-INCOMPLETE: probes were asked for but did not run (not required: review).
review contains item if {
	not config.probes.required == true
	some step in probe_steps
	step.status != "completed"
	item := {
		"rule": "POL-PROBES-INCOMPLETE",
		"msg": sprintf("behavioural probes were asked for but the probe step %v: %v", [step.status, step_reason(step)]),
	}
}

# POL-PROBES-PARTIAL (level: probes.partial): the budget ran out before the suite finished.
leveled contains {"level": config.probes.partial, "item": item} if {
	probes_completed
	is_object(input.probes)
	input.probes.partial == true
	unfinished := [run.family | some run in input.probes.families; run.status != "completed"]
	item := {
		"rule": "POL-PROBES-PARTIAL",
		"msg": concat("", [
			"the probe budget ran out before the suite finished (not finished: ",
			concat(", ", unfinished),
			"); no trigger was confirmed in what ran, which is not evidence of no backdoor",
		]),
	}
}
