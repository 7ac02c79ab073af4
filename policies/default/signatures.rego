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
# most open-weight releases are still unsigned.
leveled contains {"level": config.signatures.unsigned, "item": item} if {
	is_object(input.signatures)
	count(input.signatures.signatures) == 0
	item := {
		"rule": "POL-SIG-UNSIGNED",
		"msg": "the model carries no signature (no model.sig, no --signature): nothing proves these are the publisher's files; ask the publisher for an OpenSSF model signature, or countersign what you admitted with `provscan sign`",
	}
}

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
