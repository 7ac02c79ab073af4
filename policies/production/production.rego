# provscan production pack: admits a model only with a trusted signature whose files match
# it (see has_trusted_signature in the default pack's signatures.rego, loaded first).
package provscan.main

import rego.v1

# POL-SIG-REQUIRED: no signature from a trusted signer matches these files.
deny contains item if {
	is_object(input.signatures)
	not has_trusted_signature
	item := {
		"rule": "POL-SIG-REQUIRED",
		"msg": sprintf(
			"the production policy admits only a model whose files match a signature by a trusted signer; this one has %v signature(s), none trusted and matching",
			[count(input.signatures.signatures)],
		),
		"signatures": count(input.signatures.signatures),
	}
}
