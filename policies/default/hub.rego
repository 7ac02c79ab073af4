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

not_downloaded := [file | some file in input.files; file.sha256_source == "hub-recorded"]

# POL-HUB-NOT-DOWNLOADED (level: hub.not_downloaded)
leveled contains {"level": config.hub.not_downloaded, "item": item} if {
	count(not_downloaded) > 0
	names := [file.path | some file in not_downloaded]
	shown := array.slice(names, 0, 5)
	more := count(names) - count(shown)
	item := {
		"rule": "POL-HUB-NOT-DOWNLOADED",
		"msg": concat("", [
			sprintf("%v file(s), %v bytes, were read as metadata only, not downloaded (", [count(names), sum([file.size | some file in not_downloaded])]),
			concat(", ", shown),
			more_text(more),
			"): their SHA-256 is the Hub's record, not verified against the bytes; scan with --download before admitting them",
		]),
		"files": count(names),
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
	count(input.files) > 0
	every file in input.files {
		file.read == "whole"
	}
	input.target.hub.files == count(input.files)
	some record in object.get(input, "records", [])
	record.source == "hub-model-info"
	record.authenticated == true
	record.commit == input.target.revision
	count(record.mismatched) == 0
	count(record.not_compared) == 0
	record.files_compared == count(input.files)
	{path | some path in record.consistent} == {file.path | some file in input.files}
}
