# provscan default policy, Hub rule: files judged without their bytes (report.files).
# Rule ids and config keys: README.md in this folder. Pitfalls: top of main.rego.
#
# A metadata-only scan of hf://ORG/NAME@REV (the default for hf:// targets) downloads the
# small files and reads the rest by HTTP range: a safetensors header, else the first bytes.
# Such a file's SHA-256 is the Hub's record (files[].sha256_source == "hub-recorded"): the
# publisher's claim, not checked against the bytes you will run. Whatever else the scan
# found, these files need `--download` (or a scan of the downloaded copy) to be verified.
package provscan.main

import rego.v1

# input.files lists at most limits.policy_max_files entries, these files first;
# input.file_summary counts them all.
not_downloaded := [file | some file in input.files; file.sha256_source == "hub-recorded"]

# POL-HUB-NOT-DOWNLOADED (level: hub.not_downloaded)
leveled contains {"level": config.hub.not_downloaded, "item": item} if {
	recorded := input.file_summary.hub_recorded
	recorded.count > 0
	shown := array.slice([file.path | some file in not_downloaded], 0, 5)
	more := recorded.count - count(shown)
	item := {
		"rule": "POL-HUB-NOT-DOWNLOADED",
		"msg": concat("", [
			sprintf("%v file(s), %v bytes, were read as metadata only, not downloaded (", [recorded.count, recorded.bytes]),
			concat(", ", shown),
			more_text(more),
			"): their SHA-256 is the Hub's record, not verified against the bytes; scan with --download before admitting them",
		]),
		"files": recorded.count,
	}
}

# (concat, not sprintf, joins these: see the sprintf pitfall in main.rego)
more_text(n) := "" if n == 0

more_text(n) := sprintf(" and %v more", [n]) if n > 0

# The Hub's own record covers the whole target: an hf:// metadata-only scan that downloaded
# every file, each matching the hash the Hub's model_info lists for it (report.records,
# source hub-model-info, fetched over HTTPS in this run: authenticated). Local records (a
# cache snapshot's blob names, --local-dir download metadata, cached tree listings) never
# count: they sit in the model folder, and whoever can write it can rewrite them to match.
# Used by POL-SIG-UNSIGNED (hub.unsigned_matched) and the production pack's POL-SIG-REQUIRED.
hub_record_complete if {
	input.target.kind == "hub-metadata"
	files := input.file_summary.count
	files > 0
	object.get(input.file_summary.by_read, "whole", 0) == files
	input.target.hub.files == files
	some record in object.get(input, "records", [])
	record.source == "hub-model-info"
	record.authenticated == true
	record.commit == input.target.revision
	record.mismatched_count == 0
	record.not_compared_count == 0
	record.files_compared == files

	# Consistent paths are files of the target, each named once: as many as there are
	# files is all of them (input.records lists at most limits.policy_max_list paths).
	record.consistent_count == files
}
