# provscan production pack: admits a model only with a trusted signature whose files match
# it (see has_trusted_signature in the default pack's signatures.rego, loaded first), or, for
# an hf:// model scanned as metadata, when every file was downloaded and matches the Hub's own
# record (hub_record_complete in the default pack's hub.rego).
package provscan.main

import rego.v1

# POL-SIG-REQUIRED: no signature from a trusted signer matches these files, and the Hub's own
# record, fetched over HTTPS in this run, does not cover them all. Records read from the model
# folder (cache blob names, --local-dir metadata, cached tree listings) never stand in for a
# signature: whoever can write the folder can rewrite them.
deny contains item if {
	is_object(input.signatures)
	not has_trusted_signature
	not hub_record_complete
	item := {
		"rule": "POL-SIG-REQUIRED",
		"msg": concat("", [
			sprintf(
				"the production policy admits a model only when its files match a signature by a trusted signer, or, for an hf:// model scanned as metadata (without --download), when every file was downloaded and matches the Hub's own record (model_info, fetched over HTTPS in this run); this one has %v signature(s), none trusted and matching, and ",
				[count(input.signatures.signatures)],
			),
			hub_record_gap,
		]),
		"signatures": count(input.signatures.signatures),
	}
}

hub_record_gap := "no such Hub record (records read from the model folder, such as a cache snapshot's blob names, --local-dir download metadata or cached tree listings, do not count: whoever can write the folder can rewrite them to match)" if {
	input.target.kind != "hub-metadata"
}

hub_record_gap := "the Hub's record does not cover every file: some were not downloaded, differ from it, or could not be compared with it" if {
	input.target.kind == "hub-metadata"
}
