# provscan default policy, origin rules: which countries the weights come from
# (report.origin.jurisdictions: the publisher's, the lineage roots' and the inferred model
# family's), against config.origin. Rule ids and config keys: README.md in this folder.
# Pitfalls: top of main.rego.
package provscan.main

import rego.v1

# The configured country lists, upper-cased for comparison (print the report's own codes).
origin_denied_countries := {upper(code) | some code in config.origin.denied_jurisdictions; is_string(code)}

origin_review_countries := {upper(code) | some code in config.origin.review_jurisdictions; is_string(code)}

# POL-ORIGIN-DENIED: the weights come from a country on our denied list, through their
# publisher, a base model or their family.
deny contains item if {
	some jurisdiction in input.origin.jurisdictions
	upper(jurisdiction.country) in origin_denied_countries
	item := jurisdiction_item("POL-ORIGIN-DENIED", jurisdiction, sprintf(
		"%v is in config origin.denied_jurisdictions: use another model, or take the country off the list once this origin is approved",
		[jurisdiction.country],
	))
}

# POL-ORIGIN-REVIEW: a country on our review list. A denied country is not also reviewed.
review contains item if {
	some jurisdiction in input.origin.jurisdictions
	country := upper(jurisdiction.country)
	country in origin_review_countries
	not country in origin_denied_countries
	item := jurisdiction_item("POL-ORIGIN-REVIEW", jurisdiction, sprintf(
		"%v is in config origin.review_jurisdictions: have this origin reviewed before using the model",
		[jurisdiction.country],
	))
}

jurisdiction_item(rule, jurisdiction, action) := {
	"rule": rule,
	"msg": sprintf(
		"the weights come from %v: %v is %v (%v confidence; evidence: %v); %v",
		[
			jurisdiction.country, jurisdiction.org, origin_role(jurisdiction.role),
			jurisdiction.confidence, jurisdiction.evidence, action,
		],
	),
	"country": jurisdiction.country,
	"org": jurisdiction.org,
	"role": jurisdiction.role,
	"confidence": jurisdiction.confidence,
	"evidence": jurisdiction.evidence,
}

origin_role("publisher") := "the publisher of this model"

origin_role("root") := "the publisher of a base model at the root of its lineage"

origin_role("family") := "the developer of the model family provscan identified"

origin_role(role) := role if not role in {"publisher", "root", "family"}

# POL-ORIGIN-UNKNOWN (level: origin.unknown): the origin step ran but could tie neither the
# publisher, the base models nor the family to a country. (A null origin section means the
# step did not complete; POL-STEP-INCOMPLETE covers that.) While any jurisdiction is denied,
# an unknown origin may be one of them: it asks for review at least.
unknown_origin_level := "review" if {
	count(origin_denied_countries) > 0
	config.origin.unknown in {"warn", "none"}
}

unknown_origin_level := config.origin.unknown if {
	not count(origin_denied_countries) > 0
}

unknown_origin_level := config.origin.unknown if {
	not config.origin.unknown in {"warn", "none"}
}

leveled contains {"level": unknown_origin_level, "item": item} if {
	is_object(input.origin)
	count(input.origin.jurisdictions) == 0
	item := {
		"rule": "POL-ORIGIN-UNKNOWN",
		"msg": sprintf(
			"no country is known for this model's weights (publisher: %v; lineage roots: %v; family: %v); find out who trained it before using it%v",
			[origin_publisher(input.origin), or_none(input.origin.root_models), or_unknown(input.origin.family), denied_note],
		),
		"publisher": origin_publisher(input.origin),
		"root_models": input.origin.root_models,
		"family": input.origin.family,
	}
}

origin_publisher(origin) := origin.publisher.org if is_object(origin.publisher)

origin_publisher(origin) := "unknown" if not is_object(origin.publisher)

or_none(list) := list if count(list) > 0

or_none(list) := "none" if count(list) == 0

or_unknown(value) := value if value != null

or_unknown(value) := "unknown" if value == null

# (an object member, not a bound literal: see the sprintf pitfall in main.rego)
denied_note := notes.denied if count(origin_denied_countries) > 0

denied_note := notes.none if not count(origin_denied_countries) > 0

notes := {
	"denied": " (config origin.denied_jurisdictions is set, so it may be a denied one)",
	"none": "",
}
