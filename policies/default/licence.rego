# provscan default policy, licence rules: what the licences that govern the model
# (report.licence: the model's own `concluded` keys, the `inherited` ones that reach it
# through its base models, and the machine-checkable `terms` of each) mean for the way we
# use it, as config.licence, config.deployment_territory and config.eu_member_states say.
# Rule ids and config keys: README.md in this folder. Pitfalls: top of main.rego.
package provscan.main

import rego.v1

# ---------------------------------------------------------------- governing licences

# Each licence key that governs the model, once per way it reaches it:
# {"key", "inherited", "via"}. The model's own (concluded) licences are not inherited;
# an inherited one names the ancestor it comes from in `via` (from its terms entry; null
# when no terms entry names one).
governing_licences contains {"key": key, "inherited": false, "via": null} if {
	some key in input.licence.concluded
}

governing_licences contains {"key": key, "inherited": true, "via": terms.via} if {
	some key in input.licence.inherited
	some terms in input.licence.terms
	terms.key == key
	is_string(terms.via)
}

governing_licences contains {"key": key, "inherited": true, "via": null} if {
	some key in input.licence.inherited
	not inherited_with_ancestor(key)
}

inherited_with_ancestor(key) if {
	some terms in input.licence.terms
	terms.key == key
	is_string(terms.via)
}

# Is a licence key in a config list? SPDX-style keys are compared case-insensitively.
key_listed(key, keys) if {
	is_array(keys)
	some listed in keys
	is_string(listed)
	lower(listed) == lower(key)
}

# "licence <name> (<key>)", and where it is inherited from.
governing_phrase(licence) := sprintf("licence %v", [licence_label(licence.key)]) if {
	licence.inherited == false
}

governing_phrase(licence) := sprintf("licence %v, inherited via %v,", [licence_label(licence.key), licence.via]) if {
	licence.inherited == true
	is_string(licence.via)
}

governing_phrase(licence) := sprintf("licence %v, inherited from a base model,", [licence_label(licence.key)]) if {
	licence.inherited == true
	licence.via == null
}

licence_label(key) := sprintf("%v (%v)", [names[0], key]) if {
	names := [terms.name | some terms in input.licence.terms; terms.key == key]
	count(names) > 0
}

licence_label(key) := key if {
	not key_has_terms(key)
}

key_has_terms(key) if {
	some terms in input.licence.terms
	terms.key == key
}

governing_item(rule, licence, msg) := object.union(
	{"rule": rule, "msg": msg, "licence": licence.key, "inherited": licence.inherited},
	via_details(licence.via),
)

# ---------------------------------------------------------------- terms entries

# A terms entry names its licence, and its ancestor when it is inherited.
terms_label(terms) := terms.name if terms.via == null

terms_label(terms) := sprintf("%v (via %v)", [terms.name, terms.via]) if is_string(terms.via)

terms_item(rule, terms, msg, details) := object.union_n([
	{"rule": rule, "msg": msg, "licence": terms.key},
	via_details(terms.via),
	details,
])

via_details(via) := {"via": via} if is_string(via)

via_details(via) := {} if not is_string(via)

# ---------------------------------------------------------------- denied / allowed

# POL-LICENCE-DENIED: a licence on our denied list governs the model, its own or inherited
# (a finetune does not shed its base model's licence).
deny contains item if {
	some licence in governing_licences
	key_listed(licence.key, config.licence.denied)
	item := governing_item("POL-LICENCE-DENIED", licence, sprintf(
		"%v is denied by config licence.denied: use another model, or take the licence off the list once legal has approved it",
		[governing_phrase(licence)],
	))
}

# POL-LICENCE-NOT-ALLOWED: with an allow-list, every governing licence must be on it.
deny contains item if {
	is_array(config.licence.allowed)
	count(config.licence.allowed) > 0
	some licence in governing_licences
	not key_listed(licence.key, config.licence.allowed)
	item := governing_item("POL-LICENCE-NOT-ALLOWED", licence, sprintf(
		"%v is not in config licence.allowed %v: have it approved and added to the list, or use another model",
		[governing_phrase(licence), config.licence.allowed],
	))
}

# ---------------------------------------------------------------- commercial use

# POL-LICENCE-NONCOMMERCIAL: we use the model commercially (licence.commercial_use, true by
# default), so a licence that forbids it is at level licence.noncommercial (review; deny
# in the production pack), and one whose permission is conditional or unknown asks for
# review. Only kind "licence": AUPs and notices grant nothing.
leveled contains {"level": config.licence.noncommercial, "item": item} if {
	some terms in commercial_use_terms
	terms.commercial == "no"
	item := terms_item("POL-LICENCE-NONCOMMERCIAL", terms, sprintf(
		"%v does not permit commercial use, and config licence.commercial_use is true%v",
		[terms_label(terms), commercial_note(terms)],
	), {"commercial": "no"})
}

# With licence.commercial_use false (a research team's setting) the same licence is a
# warning that says why it did not count: an approval never hides "commercial use: no".
warn contains item if {
	config.licence.commercial_use == false
	some terms in input.licence.terms
	terms.kind == "licence"
	terms.commercial == "no"
	item := terms_item("POL-LICENCE-NONCOMMERCIAL", terms, sprintf(
		"%v does not permit commercial use; not counted because config licence.commercial_use is false (no commercial use): set it to true if that changes%v",
		[terms_label(terms), commercial_note(terms)],
	), {"commercial": "no"})
}

review contains item if {
	some terms in commercial_use_terms
	terms.commercial == "conditional"
	item := terms_item("POL-LICENCE-NONCOMMERCIAL", terms, sprintf(
		"%v permits commercial use only under conditions; check that our use meets them%v",
		[terms_label(terms), commercial_note(terms)],
	), {"commercial": "conditional"})
}

review contains item if {
	some terms in commercial_use_terms
	terms.commercial == "unknown"
	item := terms_item("POL-LICENCE-NONCOMMERCIAL", terms, sprintf(
		"provscan cannot tell whether %v permits commercial use; read the licence before using the model commercially%v",
		[terms_label(terms), commercial_note(terms)],
	), {"commercial": "unknown"})
}

commercial_use_terms contains terms if {
	config.licence.commercial_use == true
	some terms in input.licence.terms
	terms.kind == "licence"
}

commercial_note(terms) := sprintf(": \"%v\"", [terms.commercial_note]) if is_string(terms.commercial_note)

commercial_note(terms) := "" if not is_string(terms.commercial_note)

# ---------------------------------------------------------------- size thresholds

# POL-LICENCE-THRESHOLD: the licence's terms change at a size (Llama: 700 million monthly
# active users) and ours, as config.licence says, is above it. A grant that stops
# (effect separate_licence) or a licence that ends (terminates) denies; a duty to display
# the model's name (display, e.g. Kimi K2) is a warning carrying the clause. A size we did
# not give is never compared.
deny contains item if {
	some terms in input.licence.terms
	some threshold in terms.thresholds
	threshold_effect(threshold) != "display"
	ours := our_size(threshold.metric)
	ours.value > threshold.value
	item := terms_item("POL-LICENCE-THRESHOLD", terms, sprintf(
		"%v: our %v is %v, over the licence's limit of %v, so it grants us no rights; a separate licence from the licensor is needed: \"%v\"",
		[terms_label(terms), ours.what, ours.value, threshold.value, threshold.clause],
	), {"metric": threshold.metric, "threshold": threshold.value, "ours": ours.value, "effect": threshold_effect(threshold)})
}

warn contains item if {
	some terms in input.licence.terms
	some threshold in terms.thresholds
	threshold_effect(threshold) == "display"
	ours := our_size(threshold.metric)
	ours.value > threshold.value
	item := terms_item("POL-LICENCE-THRESHOLD", terms, sprintf(
		"%v: our %v is %v, over %v, so the licence requires a display duty: \"%v\"",
		[terms_label(terms), ours.what, ours.value, threshold.value, threshold.clause],
	), {"metric": threshold.metric, "threshold": threshold.value, "ours": ours.value, "effect": "display"})
}

# Reports made before thresholds carried an effect: the grant stops (the common case).
threshold_effect(threshold) := threshold.effect if is_string(threshold.effect)

threshold_effect(threshold) := "separate_licence" if not is_string(threshold.effect)

our_size("monthly_active_users") := {"value": users, "what": "monthly active users"} if {
	users := config.licence.monthly_active_users
	is_number(users)
}

our_size("annual_revenue_usd") := {"value": revenue, "what": "annual revenue (USD)"} if {
	revenue := config.licence.annual_revenue_usd
	is_number(revenue)
}

our_size("monthly_revenue_usd") := {"value": revenue / 12, "what": "monthly revenue (USD, annual_revenue_usd / 12)"} if {
	revenue := config.licence.annual_revenue_usd
	is_number(revenue)
}

# ---------------------------------------------------------------- territory

# POL-LICENCE-TERRITORY: the licence grants no rights where we are domiciled
# (config.deployment_territory), e.g. Llama 3.2's exclusion of EU-domiciled licensees from
# its multimodal models. Denies when the restriction covers this model (applies true), asks
# for review when provscan cannot tell (applies null), says nothing when it does not.
deny contains item if {
	some exclusion in territorial_exclusions
	exclusion.restriction.applies == true
	item := territory_item(exclusion, sprintf(
		"%v: deployment territory %v is excluded: \"%v\"",
		[terms_label(exclusion.terms), exclusion.territory, exclusion.restriction.clause],
	))
}

review contains item if {
	some exclusion in territorial_exclusions
	exclusion.restriction.applies == null
	item := territory_item(exclusion, sprintf(
		"%v: deployment territory %v is excluded for %v models, and provscan cannot tell whether this model is one; check before deploying: \"%v\"",
		[terms_label(exclusion.terms), exclusion.territory, exclusion.restriction.scope, exclusion.restriction.clause],
	))
}

# Each (terms entry, restriction, our territory) where the restriction covers our territory.
territorial_exclusions contains {"terms": terms, "restriction": restriction, "territory": territory} if {
	some terms in input.licence.terms
	some restriction in terms.territorial
	not restated_from_licence(terms, restriction)
	some territory in deployment_territories
	some restricted in restriction.territories
	territory_covered(restricted, territory)
}

# An AUP that repeats its licence's restriction word for word (Llama 3.2's EU clause sits
# in both) is reported once, under the licence.
restated_from_licence(terms, restriction) if {
	terms.kind != "licence"
	some licence_terms in input.licence.terms
	licence_terms.kind == "licence"
	licence_terms.via == terms.via
	some same in licence_terms.territorial
	same.clause == restriction.clause
}

# config.deployment_territory: one code, or a list of them.
deployment_territories contains territory if {
	territory := config.deployment_territory
	is_string(territory)
}

deployment_territories contains territory if {
	is_array(config.deployment_territory)
	some territory in config.deployment_territory
	is_string(territory)
}

# A restriction's code covers our territory when they are the same code (either case);
# "EU" also covers each of eu_member_states.
territory_covered(restricted, territory) if upper(restricted) == upper(territory)

territory_covered(restricted, territory) if {
	upper(restricted) == "EU"
	is_array(config.eu_member_states)
	some member in config.eu_member_states
	is_string(member)
	upper(member) == upper(territory)
}

territory_item(exclusion, msg) := terms_item("POL-LICENCE-TERRITORY", exclusion.terms, msg, {
	"territory": exclusion.territory,
	"scope": exclusion.restriction.scope,
	"applies": exclusion.restriction.applies,
	"clause": exclusion.restriction.clause,
})

# ---------------------------------------------------------------- unknown licence

# POL-LICENCE-UNKNOWN (level: licence.unknown): the licence step ran but concluded no
# licence, so nothing says we may use the model. (A null licence section means the step
# did not complete; POL-STEP-INCOMPLETE covers that.)
leveled contains {"level": config.licence.unknown, "item": item} if {
	is_object(input.licence)
	count(input.licence.concluded) == 0
	signals := [sprintf("%v=%v", [signal.source, signal.value]) | some signal in input.licence.evidence]
	item := {
		"rule": "POL-LICENCE-UNKNOWN",
		"msg": sprintf(
			"no licence could be concluded for this model (licence signals found: %v); find out which licence it is released under before using it",
			[signals],
		),
		"signals": signals,
	}
}

# ---------------------------------------------------------------- attribution

# POL-LICENCE-ATTRIBUTION (level: licence.attribution): duties that come with using or
# redistributing the model, one result per terms entry, quoting the exact text to show or
# ship and the naming rule, so they can be copied into the product.
leveled contains {"level": config.licence.attribution, "item": item} if {
	some terms in input.licence.terms
	duties := attribution_duties(terms)
	count(duties) > 0
	# concat, not sprintf: regopy quotes a concat result that sprintf formats.
	msg := concat("", [sprintf("%v requires: ", [terms_label(terms)]), concat("; ", duties)])
	item := terms_item("POL-LICENCE-ATTRIBUTION", terms, msg, {
		"display": terms.attribution_display,
		"notice": terms.attribution_notice,
		"naming_prefix": terms.naming_prefix,
	})
}

attribution_duties(terms) := [duty |
	some field in ["attribution_display", "attribution_notice", "naming_prefix"]
	is_string(terms[field])
	duty := attribution_duty(field, terms[field])
]

attribution_duty("attribution_display", text) := sprintf("display \"%v\"", [text])

attribution_duty("attribution_notice", text) := sprintf("ship the notice \"%v\"", [text])

attribution_duty("naming_prefix", text) := sprintf("derivative model names must begin with \"%v\"", [text])
