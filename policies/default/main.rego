# provscan default policy: turns the facts and findings of a scan report into
# deny / review / warn results. Input: the report JSON. Config: data.provscan.config
# (data.yaml in this folder, with the user's provscan.toml merged over it).
# Rule ids and config keys: README.md in this folder. The licence and origin rules are in
# licence.rego and origin.rego (same package).
#
# Kept to Rego v1 syntax and built-ins that both regopy (rego-cpp) and OPA support.
# regopy 1.5.2 pitfalls these modules work around:
# - sprintf %v wraps some strings in raw quotes, which makes the engine's output invalid
#   JSON (provscan then stops with exit 3): strings made by upper, lower, concat or
#   replace, and a string literal bound to a variable or passed as a function argument.
#   Strings from input, data, rule values, object / array / set members and sprintf are
#   safe. So: compare normalised strings but print the originals, keep literal texts in
#   objects (config_shapes below), and join a message holding a concat result with concat.
# - `null > 3` is true: check is_number before comparing a config value.
# - A function may not call another clause of itself; `some k, v in obj` is refused inside
#   a comprehension (iterate with a reference: `[k | obj[k]]`).
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
	object.get(input, ["file_summary", "count"], 0) == 0
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

# ---------------------------------------------------------------- configurable levels

# Rules whose level is itself a config value (licence.unknown, licence.attribution,
# origin.unknown) add {"level": <that value>, "item": <result>} to `leveled`; these three
# rules file each item under its level. "none" files it nowhere, and so does an invalid
# level, which POL-BAD-CONFIG denies (so a typo never passes silently).
deny contains item if {
	some entry in leveled
	entry.level == "deny"
	item := entry.item
}

review contains item if {
	some entry in leveled
	entry.level == "review"
	item := entry.item
}

warn contains item if {
	some entry in leveled
	entry.level == "warn"
	item := entry.item
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

# The licence and origin settings, and the shape each value must have. A bad value denies:
# it would otherwise switch a check off without anyone noticing. (A table, not one rule per
# key: regopy's sprintf mangles a string literal passed as a function argument.)
config_shapes := {
	"licence": "table",
	"licence.allowed": "licence keys",
	"licence.denied": "licence keys",
	"licence.commercial_use": "boolean",
	"licence.noncommercial": "level",
	"licence.monthly_active_users": "amount",
	"licence.annual_revenue_usd": "amount",
	"licence.unknown": "level",
	"licence.attribution": "level",
	"deployment_territory": "territory",
	"eu_member_states": "country codes",
	"origin": "table",
	"origin.denied_jurisdictions": "country codes",
	"origin.review_jurisdictions": "country codes",
	"origin.unknown": "level",
	"signatures": "table",
	"signatures.unsigned": "level",
	"signatures.untrusted": "level",
	"signatures.not_covered": "level",
	"signatures.uncovered_facts": "level",
	"hub": "table",
	"hub.not_downloaded": "level",
	"hub.unsigned_matched": "optional level",
	"probes": "table",
	"probes.required": "boolean",
	"probes.partial": "level",
}

shape_rules := {
	"table": "must be a table",
	"licence keys": "must be a list of licence keys (non-empty strings)",
	"boolean": "must be true or false",
	"amount": "must be a number >= 0, or left out",
	"level": "must be one of deny, review, warn, none",
	"optional level": "must be one of deny, review, warn, none, or left out",
	"territory": "must be \"EU\", an ISO 3166-1 alpha-2 country code, a list of them, or left out",
	"country codes": "must be a list of ISO 3166-1 alpha-2 country codes",
}

deny contains item if {
	some key, shape in config_shapes
	not has_shape(shape, setting(key))
	item := {
		"rule": "POL-BAD-CONFIG",
		"msg": sprintf("config %v %v (got %v)", [key, shape_rules[shape], setting(key)]),
		"key": key,
	}
}

# A misspelt key in the licence, origin, signatures, hub or probes table would be ignored, its default used instead.
deny contains item if {
	some table in ["licence", "origin", "signatures", "hub", "probes"]
	is_object(config[table])
	some name, _ in config[table]
	key := sprintf("%v.%v", [table, name])
	not config_shapes[key]
	prefix := sprintf("%v.", [table])
	known := [known_key | config_shapes[known_key]; startswith(known_key, prefix)]
	item := {
		"rule": "POL-BAD-CONFIG",
		"msg": sprintf("config %v is not a known setting (misspelt?); the %v table takes %v", [key, table, known]),
		"key": key,
	}
}

# The config value at a dotted key; an absent key reads as null.
setting(key) := object.get(config, split(key, "."), null)

has_shape("table", value) if is_object(value)

has_shape("licence keys", value) if {
	is_array(value)
	every entry in value {
		is_string(entry)
		trim_space(entry) != ""
	}
}

has_shape("boolean", value) if is_boolean(value)

has_shape("amount", value) if value == null

has_shape("amount", value) if {
	is_number(value)
	value >= 0
}

has_shape("level", value) if value in valid_levels

has_shape("optional level", value) if value == null

has_shape("optional level", value) if value in valid_levels

has_shape("territory", value) if value == null

has_shape("territory", value) if country_code(value)

has_shape("territory", value) if country_codes(value)

has_shape("country codes", value) if country_codes(value)

country_codes(value) if {
	is_array(value)
	every entry in value {
		country_code(entry)
	}
}

# Two letters, either case ("EU" passes too: deployment_territory may name it).
country_code(value) if {
	is_string(value)
	regex.match(`^[A-Za-z]{2}$`, value)
}
