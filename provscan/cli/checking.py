"""One target from flags to a decided report and its output files (check, inspect, probe).

The command line parses flags into a plain dict (``kw``); everything here takes that dict, so
that a many-target run can hand the same values to a worker process. Heavy modules are
imported inside the functions: `provscan --help` must not pay for them.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan.atomic import STDOUT, claim_stdout, write_output
from provscan.cli import term
from provscan.errors import ExitCode
from provscan.library_warnings import recorded

if TYPE_CHECKING:
    from provscan.probes.collect import ProbeOptions
    from provscan.report import Decision, Report
    from provscan.signing.trust import TrustSettings


def exit_code(decision: Decision) -> int:
    return int(ExitCode.of(decision.value))


def with_identities(
    config: dict[str, Any], identities: Sequence[str], issuers: Sequence[str]
) -> dict[str, Any]:
    """The config with --trusted-identity / --trusted-issuer pairs added to [trust] identities."""
    from provscan.errors import UsageError

    if len(identities) != len(issuers):
        raise UsageError(
            f"{len(identities)} --trusted-identity but {len(issuers)} --trusted-issuer: give one issuer per identity"
        )
    if not identities:
        return config
    trust = dict(config.get("trust") or {}) if isinstance(config.get("trust"), dict) else {}
    existing = trust.get("identities", [])
    added = [{"identity": i, "issuer": u} for i, u in zip(identities, issuers, strict=True)]
    trust["identities"] = [*(existing if isinstance(existing, list) else []), *added]
    return {**config, "trust": trust}


def check_one(target: str, kw: dict[str, Any], *, progress: bool) -> Report:
    """`provscan check TARGET`: scan, then the policy's verdict (the report carries it)."""
    from provscan.cli.policy import backend_from, policy_dirs, server_scope, target_config
    from provscan.cli.probe_options import options_from
    from provscan.policy.engine import evaluate
    from provscan.signing.trust import trust_from_config

    policies: tuple[str, ...] = kw["policies"]
    packs = policy_dirs(policies)
    config_file = target_config(
        kw["config_path"], packs, target, from_target=kw["config_from_target"]
    )
    config = with_identities(config_file.table, kw["trusted_identities"], kw["trusted_issuers"])
    trust = trust_from_config(
        config,
        config_file.path.parent if config_file.path is not None else None,
        keys=kw["trusted_keys"],
        cas=kw["trusted_cas"],
        sigstore_root=kw["sigstore_trusted_root"],
    )
    backend = backend_from(kw)
    packs, policy_config = server_scope(backend, policies, packs, config)
    probes = options_from(kw) if kw["run_probes"] else None
    report = scan_target(target, kw, trust, probes, progress=progress)
    verdict = evaluate(
        report, packs, policy_config, timeout_s=kw["policy_timeout"], backend=backend
    )
    return report.model_copy(update={"verdict": verdict})


def scan_target(
    target: str,
    kw: dict[str, Any],
    trust: TrustSettings,
    probes: ProbeOptions | None = None,
    *,
    probes_only: bool = False,
    progress: bool,
) -> Report:
    """Scan with the flags' options; warnings libraries raise meanwhile become findings."""
    from provscan.hub.ref import HubOptions
    from provscan.pipeline import ScanOptions, available_cpus

    options = ScanOptions(
        hash_workers=kw.get("workers") or available_cpus(),
        serialization=kw.get("serialization", "files"),
        shard_size=kw.get("shard_size", 1_000_000_000),
        signature_paths=tuple(kw.get("signatures", ())),
        trust=trust,
        hub=HubOptions(
            download=kw["download"],
            include=tuple(kw.get("include", ())),
            exclude=tuple(kw.get("exclude", ())),
            offline=kw["offline"],
            progress=progress,
        ),
        probes=probes,
        probes_only=probes_only,
    )
    # A library's warning (a deprecation, a FutureWarning from transformers) printed on
    # stderr would be lost in a CI log and mixed into a terminal's report: the report keeps it.
    with recorded() as notes:
        report = _scan_with_progress(target, options) if progress else _scan(target, options)
    extra = notes.findings("the model was read")
    if not extra:
        return report
    return report.model_copy(update={"findings": (*report.findings, *extra)})


def _scan(target: str, options: Any) -> Report:
    from provscan.pipeline import scan

    return scan(target, options)


def _scan_with_progress(target: str, options: Any) -> Report:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from provscan.pipeline import scan

    # One live display for the whole scan: hashing, then each probe family.
    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    console = Console(file=sys.stderr, no_color=not term.color_enabled(sys.stderr))
    with Progress(*columns, transient=True, console=console) as progress:
        hashing = progress.add_task("hashing", total=None, detail="")
        families: dict[str, Any] = {}

        def hashed(n: int) -> None:
            progress.advance(hashing, n)
            task = progress.tasks[hashing]
            progress.update(hashing, detail=f"{task.completed / 2**20:,.0f} MiB")

        def probed(family: str, done: int, total: int) -> None:
            if family not in families:
                families[family] = progress.add_task(f"probes: {family}", total=total, detail="")
            progress.update(families[family], completed=done, total=total, detail=f"{done}/{total}")

        probes = options.probes
        with_progress = dataclasses.replace(
            options,
            on_hash_start=lambda total: progress.update(hashing, total=total),
            on_hash_progress=hashed,
            probes=dataclasses.replace(probes, progress=probed) if probes is not None else None,
        )
        return scan(target, with_progress)


def show_progress(kw: dict[str, Any]) -> bool:
    return not kw["quiet"] and term.interactive(sys.stderr)


def stdout_output(kw: dict[str, Any]) -> str | None:
    """The one output option given `-` (stdout), if any: a UsageError when several are (or one
    is and --format json prints the report there too)."""
    return claim_stdout(
        [
            ("--format json", STDOUT if kw["fmt"] == "json" else None),
            ("--json", kw["json_out"]),
            ("--bom", kw["bom_out"]),
            ("--sarif", kw["sarif_out"]),
            ("--markdown", kw["markdown_out"]),
            ("--html", kw["html_out"]),
        ]
    )


def render_outputs(
    report: Report, wanted: Mapping[str, Path | str | None]
) -> list[tuple[Path | str, str]]:
    """Each requested output (json, bom, sarif, markdown, html: where to, or None) with its
    text; each renderer is imported only when its output is asked for."""
    outputs: list[tuple[Path | str, str]] = []
    for kind, where in wanted.items():
        if where is not None:
            outputs.append((where, _render(kind, report)))
    return outputs


def _render(kind: str, report: Report) -> str:
    if kind == "json":
        from provscan.emit.json_report import render_json

        return render_json(report)
    if kind == "bom":
        from provscan.collectors.licence_files import read_licence_texts
        from provscan.emit.cyclonedx import render_cyclonedx

        return render_cyclonedx(report, licence_texts=read_licence_texts(report))
    if kind == "sarif":
        from provscan.emit.sarif import render_sarif

        return render_sarif(report, base_dir=Path.cwd())
    if kind == "markdown":
        from provscan.emit.markdown import render_markdown

        return render_markdown(report)
    assert kind == "html", kind
    from provscan.emit.html import render_html

    return render_html(report)


def emit(report: Report, kw: dict[str, Any]) -> None:
    """Render every requested output first, then write them: nothing partial on failure."""
    import click

    from provscan.emit.json_report import render_json
    from provscan.emit.terminal import render_terminal

    wanted = {
        "json": kw["json_out"],
        "bom": kw["bom_out"],
        "sarif": kw["sarif_out"],
        "markdown": kw["markdown_out"],
        "html": kw["html_out"],
    }
    for path, text in render_outputs(report, wanted):
        write_output(path, text)
    if kw["fmt"] == "json":
        click.echo(render_json(report), nl=False)
        return
    # An output given `-` owns stdout: the summary for people goes to stderr.
    stream = sys.stderr if stdout_output(kw) is not None else sys.stdout
    text = render_terminal(
        report,
        color=term.color_enabled(stream, no_color=kw.get("no_color", False)),
        width=term.width(stream),
    )
    click.echo(text, nl=False, file=stream, color=True)
