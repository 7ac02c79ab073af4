"""How much will provscan read or allocate for any one thing? Every tunable bound, in one place.

A hostile file can claim any length or count. Each reader checks the claim against
these bounds *before* reading or allocating, and reports a finding when a claim is
over a bound. The values are recorded in every report (ScanParameters.limits).

Structural bounds that follow from a format's own specification rather than from a
policy choice stay beside their reader, as named constants at the top of the module:
GGUF (collectors/serialization/gguf/reader.py: key, string, array, tensor and metadata
bounds), ONNX (onnx_scan.py: nesting depth, fields visited, string length), HDF5
(keras/hdf5.py: child memory cap and timeout), chat templates (chat_template/lint.py: parse
size) and Keras configs (keras/config.py: JSON nodes walked).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    # safetensors: the reference implementation refuses headers over 100 MB.
    safetensors_header_max: int = 100_000_000
    # JSON metadata files (config.json, tokenizer_config.json ...) parsed whole.
    json_file_max: int = 16 * MiB
    # README.md read for its YAML front matter.
    card_max: int = 4 * MiB
    front_matter_max: int = 256 * KiB
    # A single pickle stream (data.pkl or a plain pickle file) walked opcode by opcode.
    pickle_max: int = 256 * MiB
    pickle_max_opcodes: int = 10_000_000
    # Zip archives: members and central directory entries considered.
    zip_max_members: int = 100_000
    # Bytes read from the start of each file to sniff its format.
    sniff_bytes: int = 4 * KiB
    # Files in one target.
    max_files: int = 1_000_000
    # Directory depth walked.
    max_depth: int = 64
    # Findings kept per (rule, file); the rest are counted in one summary finding.
    findings_per_rule_and_file: int = 50
    # An OMS signature file (a Sigstore bundle JSON): about 200 bytes per signed file.
    signature_max: int = 64 * MiB
    # Resources (files or shards) and ignore paths one signature may list.
    signature_max_resources: int = 1_000_000
    # Buffer per hashing worker (reused, never grows).
    hash_buffer: int = 4 * MiB

    # hf:// metadata-only scans: which files are downloaded whole. Any file up to
    # hub_fetch_any_max (a training_args.bin pickle is ~5 KB: scanning it beats guessing);
    # card, config, tokenizer, licence, code, index and signature files up to
    # hub_fetch_metadata_max; hub_fetch_total_max in all (smallest first). The rest is
    # read by range: a safetensors header, else sniff_bytes.
    hub_fetch_any_max: int = 64 * KiB
    hub_fetch_metadata_max: int = 64 * MiB
    hub_fetch_total_max: int = 1 * GiB
    # hf:// traffic is hostile input (hub.hub_traffic). A body read into memory (model_info,
    # the file listing, base-model look-ups, error pages) is refused past hub_response_max
    # bytes decoded (gzip, deflate, br, zstd inflated a piece at a time). A request
    # (connect, headers, body) must end within hub_request_timeout seconds, a file's body
    # within that plus its size at hub_min_rate bytes per second; all of one scan's Hub
    # traffic within hub_scan_deadline seconds. A file is never read past its listed size.
    hub_response_max: int = 64 * MiB
    hub_request_timeout: int = 60
    hub_min_rate: int = 256 * KiB
    hub_scan_deadline: int = 2 * 3600
    # Files of one commit a metadata-only scan reads (each a request or two); past this, the
    # first in path order are scanned and the scan says how many were not (critical).
    hub_max_files: int = 10_000

    # Containers (tar, 7z, compressed streams, archives inside archives).
    # Archives nested inside archives deeper than this are reported, not opened.
    archive_max_depth: int = 3
    # Members of one tar or 7z archive considered (zip has zip_max_members).
    archive_max_members: int = 100_000
    # One member held in memory to look inside it (a nested zip or 7z needs random access).
    archive_max_member_bytes: int = 256 * MiB
    # Bytes decompressed or read from one archive or compressed stream, in all.
    archive_max_total_bytes: int = 4 * GiB
    # Output/input size ratio past which a compressed stream is called a bomb ...
    decompression_max_ratio: int = 100
    # ... once its output passes this size (small files compress well legitimately).
    decompression_ratio_floor: int = 1 * MiB

    # The document handed to the policy engine (provscan.policy.input): files listed one by
    # one, findings listed one by one (the rest summarised per rule and severity), and entries
    # kept of any other per-file list (its full length given beside it). The report keeps all.
    policy_max_files: int = 1_000
    policy_max_findings: int = 200
    policy_max_list: int = 1_000
    # The regopy policy child's address space (RLIMIT_AS); its CPU time is the policy timeout.
    policy_memory_max: int = 2 * GiB

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


DEFAULT_LIMITS = Limits()
