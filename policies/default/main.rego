# provscan default policy: turns the facts and findings of a scan report into
# deny / review / warn results. Input: the report JSON. Config: data.provscan.config
# (data.yaml in this folder, with the user's provscan.toml merged over it).
# Rule ids and config keys: README.md in this folder.
#
# Kept to Rego v1 syntax and built-ins that both regopy (rego-cpp) and OPA support.
package provscan.main

import rego.v1

config := data.provscan.config

valid_levels := {"deny", "review", "warn", "none"}

severities := {"info", "low", "medium", "high", "critical"}

# ---------------------------------------------------------------- required steps

deny contains item if {
	some name in config.required_steps
	not step_ran(name)
	item := {
		"rule": "POL-STEP-INCOMPLETE",
		"msg": sprintf("required step %v did not run (absent from the report)", [name]),
		"step": name,
		"status": "missing",
	}
}

deny contains item if {
	some name in config.required_steps
	some step in input.steps
	step.name == name
	step.status != "completed"
	item := {
		"rule": "POL-STEP-INCOMPLETE",
		"msg": sprintf("required step %v %v: %v", [name, step.status, step_reason(step)]),
		"step": name,
		"status": step.status,
	}
}

step_ran(name) if {
	some step in input.steps
	step.name == name
}

step_reason(step) := step.reason if is_string(step.reason)

step_reason(step) := "no reason given" if not is_string(step.reason)

# ---------------------------------------------------------------- files

deny contains item if {
	count(object.get(input, "files", [])) == 0
	item := {"rule": "POL-NO-FILES", "msg": "the target holds no files to scan"}
}

# ---------------------------------------------------------------- findings

deny contains item if {
	some finding in input.findings
	config.severity_levels[finding.severity] == "deny"
	not waived(finding)
	item := finding_item(finding)
}

review contains item if {
	some finding in input.findings
	config.severity_levels[finding.severity] == "review"
	not waived(finding)
	item := finding_item(finding)
}

warn contains item if {
	some finding in input.findings
	config.severity_levels[finding.severity] == "warn"
	not waived(finding)
	item := finding_item(finding)
}

finding_item(finding) := object.union(
	{"rule": finding.rule_id, "msg": finding_msg(finding), "severity": finding.severity},
	location_details(finding),
)

# Messages name their file; prefix the location only when the message does not already.
finding_msg(finding) := sprintf("%v: %v", [finding.location.path, finding.message]) if {
	is_string(finding.location.path)
	not startswith(finding.message, finding.location.path)
}

finding_msg(finding) := finding.message if not is_string(finding.location.path)

finding_msg(finding) := finding.message if {
	is_string(finding.location.path)
	startswith(finding.message, finding.location.path)
}

location_details(finding) := {"file": finding.location.path} if is_string(finding.location.path)

location_details(finding) := {} if not is_string(finding.location.path)

# ---------------------------------------------------------------- waivers

# A waived finding still shows, as a warning that names the waiver's reason.
warn contains item if {
	some finding in input.findings
	config.severity_levels[finding.severity] in {"deny", "review", "warn"}
	some waiver in config.waivers
	valid_waiver(waiver)
	waiver_applies(waiver, finding)
	item := object.union(
		{
			"rule": "POL-WAIVED",
			"msg": sprintf("%v waived (%v): %v", [finding.rule_id, waiver.reason, finding_msg(finding)]),
			"finding_rule": finding.rule_id,
			"severity": finding.severity,
			"waived_level": config.severity_levels[finding.severity],
			"reason": waiver.reason,
		},
		location_details(finding),
	)
}

waived(finding) if {
	some waiver in config.waivers
	valid_waiver(waiver)
	waiver_applies(waiver, finding)
}

valid_waiver(waiver) if {
	is_string(waiver.rule)
	is_string(waiver.reason)
	trim_space(waiver.reason) != ""
	waiver_path_ok(waiver)
}

waiver_path_ok(waiver) if object.get(waiver, "path", null) == null

waiver_path_ok(waiver) if is_string(waiver.path)

waiver_applies(waiver, finding) if {
	waiver.rule == finding.rule_id
	object.get(waiver, "path", null) == null
}

waiver_applies(waiver, finding) if {
	waiver.rule == finding.rule_id
	is_string(waiver.path)
	waiver.path == finding.location.path
}

waiver_applies(waiver, finding) if {
	waiver.rule == finding.rule_id
	is_string(waiver.path)
	is_string(finding.location.path)
	glob.match(waiver.path, ["/"], finding.location.path)
}

deny contains item if {
	some index, waiver in config.waivers
	not valid_waiver(waiver)
	item := {
		"rule": "POL-BAD-WAIVER",
		"msg": sprintf(
			"waiver #%v (%v) needs a string 'rule', a non-empty 'reason' and, optionally, a string 'path'",
			[index + 1, waiver],
		),
		"waiver": index + 1,
	}
}

# ---------------------------------------------------------------- config shape

deny contains item if {
	some severity in severities
	not config.severity_levels[severity] in valid_levels
	item := {
		"rule": "POL-BAD-CONFIG",
		"msg": sprintf("config severity_levels.%v must be one of deny, review, warn, none", [severity]),
		"key": sprintf("severity_levels.%v", [severity]),
	}
}

deny contains item if {
	some key in ["required_steps", "waivers"]
	not is_array(config[key])
	item := {
		"rule": "POL-BAD-CONFIG",
		"msg": sprintf("config %v must be a list", [key]),
		"key": key,
	}
}
