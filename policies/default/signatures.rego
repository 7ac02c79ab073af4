# provscan default policy, signature rules: whether the files are provably the signer's
# (report.signatures), against config.signatures and config.trust. Rule ids and config
# keys: README.md in this folder. Pitfalls: top of main.rego.
#
# What the report's facts mean: a signature is "verified" only against an anchor the user
# gave (a public key or CA certificate: provscan checks with nothing else) or, for
# Sigstore keyless signatures, against the Sigstore trusted root. Anyone can get a
# Sigstore certificate, so a Sigstore signature counts only when its identity and OIDC
# issuer are in config.trust.identities. Failing signatures and changed, missing or extra
# files are critical findings (SIG-*), which deny through severity_levels.
package provscan.main

import rego.v1

trust_identities := [entry | some entry in object.get(config, ["trust", "identities"], []); is_object(entry)]

# A signature whose files match it and whose signer we trust.
trusted_signature(sig) if {
	sig.status == "verified"
	sig.integrity == "match"
	sig.signer.method in {"key", "certificate"}
}

trusted_signature(sig) if {
	sig.status == "verified"
	sig.integrity == "match"
	sig.signer.method == "sigstore"
	some entry in trust_identities
	identity_matches(entry, sig.signer)
}

identity_matches(entry, signer) if {
	entry.issuer == signer.oidc_issuer
	entry.identity == signer.identity
}

# identity_pattern is a regular expression matched against the whole identity.
identity_matches(entry, signer) if {
	entry.issuer == signer.oidc_issuer
	is_string(entry.identity_pattern)
	is_string(signer.identity)
	regex.match(concat("", ["^(?:", entry.identity_pattern, ")$"]), signer.identity)
}

has_trusted_signature if {
	some sig in input.signatures.signatures
	trusted_signature(sig)
}

# POL-SIG-UNSIGNED (level: signatures.unsigned): no signature at all. A fact, not an error:
# most open-weight releases are still unsigned. When the Hub's own record covers every file
# (hub_record_complete, hub.rego) and hub.unsigned_matched is set, that level applies instead.
leveled contains {"level": unsigned_level, "item": item} if {
	is_object(input.signatures)
	count(input.signatures.signatures) == 0
	item := {"rule": "POL-SIG-UNSIGNED", "msg": unsigned_msg}
}

unsigned_level := config.hub.unsigned_matched if unsigned_matched_applies

unsigned_level := config.signatures.unsigned if not unsigned_matched_applies

unsigned_matched_applies if {
	hub_record_complete
	is_string(config.hub.unsigned_matched)
}

unsigned_msg := "the model carries no signature (no model.sig, no --signature): nothing proves these are the publisher's files; ask the publisher for an OpenSSF model signature, or countersign what you admitted with `provscan sign`" if not hub_record_complete

unsigned_msg := sprintf(
	"the model carries no signature (no model.sig, no --signature); every file was downloaded and matches the Hub's own record of commit %v (model_info, fetched over HTTPS in this run), so these are the files the Hub holds for that commit, but nothing says who made them; ask the publisher for an OpenSSF model signature, or countersign what you admitted with `provscan sign`",
	[input.target.revision],
) if hub_record_complete

# POL-SIG-UNTRUSTED (level: signatures.untrusted): signed, but no signature comes from a
# signer we trust. One result per such signature, saying who signed it.
leveled contains {"level": config.signatures.untrusted, "item": item} if {
	is_object(input.signatures)
	not has_trusted_signature
	some sig in input.signatures.signatures
	sig.status in {"verified", "unverified"}
	sig.integrity != "mismatch"
	item := {
		"rule": "POL-SIG-UNTRUSTED",
		"msg": sprintf("%v: %v", [sig.path, untrusted_reason(sig)]),
		"signature": sig.path,
		"method": sig.signer.method,
		"identity": sig.signer.identity,
		"issuer": sig.signer.oidc_issuer,
		"key": sig.signer.key_fingerprint,
	}
}

untrusted_reason(sig) := sprintf("%v; trust the signer (--trusted-key, --trusted-ca, or --trusted-identity with --trusted-issuer) once you know who it is", [sig.reason]) if {
	sig.status == "unverified"
}

untrusted_reason(sig) := sprintf(
	"a valid Sigstore signature by %v (OIDC issuer %v, transparency log index %v), an identity not in config trust.identities; add it there (or --trusted-identity / --trusted-issuer) if you trust this signer",
	[sig.signer.identity, sig.signer.oidc_issuer, sig.signer.tlog.log_index],
) if {
	sig.status == "verified"
	sig.signer.method == "sigstore"
	sig.integrity == "match"
}

untrusted_reason(sig) := sprintf("verified, but the files were not compared with it: %v", [sig.integrity_reason]) if {
	sig.status == "verified"
	sig.integrity == "not_checked"
}

# A file the trusted signatures prove: some trusted signature (verified, files matching)
# covers it. Judged from the trusted signatures alone: an unverified signature in the
# folder changes nothing here.
covered_by_trusted(path) if {
	some index, sig in input.signatures.signatures
	trusted_signature(sig)
	not left_uncovered(index, sig, path)
}

# The paths each signature leaves uncovered, as a set (one look-up per path, not a scan).
uncovered_paths[index] := {entry.path | some entry in sig.not_covered} if {
	some index, sig in input.signatures.signatures
}

left_uncovered(index, _, path) if path in uncovered_paths[index]

# The policy input lists at most limits.policy_max_list of a signature's uncovered files:
# past that, which files it leaves out is unknown here, so it is taken to cover none.
left_uncovered(_, sig, _) if sig.not_covered_count > count(sig.not_covered)

# POL-SIG-NOT-COVERED (level: signatures.not_covered): a file a loader reads (weights,
# tokenizer, configuration, chat template, code, the card the licence step reads, or a
# file provscan cannot rule out) that no trusted signature covers: left out by the
# signer's ignore list, or empty under shard serialization. Whoever hands over the model
# can change or add it while the signature still matches.
leveled contains {"level": config.signatures.not_covered, "item": item} if {
	is_object(input.signatures)
	some sig in input.signatures.signatures
	trusted_signature(sig)
	some entry in sig.not_covered
	entry.loader_read
	not covered_by_trusted(entry.path)
	item := {
		"rule": "POL-SIG-NOT-COVERED",
		"msg": concat("", [
			sprintf(
				"%v: no trusted signature covers it (%v: %v), so it can be changed or added while the signature still matches; read by: ",
				[entry.path, sig.path, not_covered_reason[entry.reason]],
			),
			concat("; ", entry.read_by),
		]),
		"path": entry.path,
		"reason": entry.reason,
	}
}

# The same, for the files a loader reads past those listed one by one (listed first).
leveled contains {"level": config.signatures.not_covered, "item": item} if {
	is_object(input.signatures)
	some sig in input.signatures.signatures
	trusted_signature(sig)
	listed := count([entry | some entry in sig.not_covered; entry.loader_read])
	unlisted := sig.not_covered_loader_read_count - listed
	unlisted > 0
	item := {
		"rule": "POL-SIG-NOT-COVERED",
		"msg": sprintf(
			"%v more files a loader reads are not covered by %v (past the %v listed to the policy; the report names each), so they can be changed or added while the signature still matches",
			[unlisted, sig.path, listed],
		),
		"files": unlisted,
	}
}

not_covered_reason := {
	"ignored": "its ignore_paths leave it out",
	"empty": "an empty file, of which shard serialization records nothing",
	"unnamed": "a name no manifest can hold",
}

# POL-SIG-UNCOVERED-FACTS (level: signatures.uncovered_facts): the model is signed by a
# trusted signer, but a licence, lineage, card or family fact in the report was read
# from a file that no trusted signature covers, so the signature does not vouch for it.
leveled contains {"level": config.signatures.uncovered_facts, "item": item} if {
	has_trusted_signature
	some source in input.fact_sources
	not source_signed_by_trusted(source)
	item := {
		"rule": "POL-SIG-UNCOVERED-FACTS",
		"msg": sprintf(
			"the %v fact (%v) comes from %v, which no trusted signature covers; the signature does not vouch for it",
			[source.fact, source.detail, source.path],
		),
		"path": source.path,
		"fact": source.fact,
	}
}

source_signed_by_trusted(source) if {
	some name in source.signed_by
	some sig in input.signatures.signatures
	sig.path == name
	trusted_signature(sig)
}
