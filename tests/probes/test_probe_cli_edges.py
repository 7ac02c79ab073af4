"""`provscan probe` as a user meets it at the edges: a small budget, the libraries' warnings,
a refusal's hint, and an installation without the probes extra.

Run through the CLI on the first shipped backdoor fixture's clean twin (fixtures/backdoor.py),
the transformers engine on CPU; a budget of 300 forward passes keeps each run under a second
once torch is imported.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.backdoor import BackdoorPair
from tests.conftest import REPO, CliResult

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

Cli = Callable[..., CliResult]
FAMILIES = ["leakage", "sweep", "phrase", "replay", "inversion"]


def test_a_budget_of_300_passes_is_spent_on_every_family_and_reported_as_used(
    cli: Cli, first_backdoor_pair: BackdoorPair
) -> None:
    result = cli("probe", first_backdoor_pair.clean, "--budget", "300", "--format", "json")
    assert result.code == 4, result.err  # partial: review
    probes = result.json()["probes"]
    used = probes["budget"]["used_forward_passes"]
    assert probes["budget"]["forward_passes"] == 300 and 0 < used <= 300
    runs = probes["families"]
    assert sum(r["forward_passes"] for r in runs) == used
    # The first family's first call alone asks for more than 300 passes: it is cut to fit, and
    # each family after it still gets passes of its own.
    assert [r["family"] for r in runs if r["forward_passes"] > 0] == FAMILIES
    for run in runs:
        assert run["status"] == "partial"
        share = re.match(
            r"its share of the budget ran out: (\d+) of its (\d+) forward passes", run["reason"]
        )
        if share is not None:  # what a family says it used is what it used
            assert int(share[1]) == run["forward_passes"] <= int(share[2])
        else:
            assert run["reason"] == "the budget ran out: all 300 forward passes used", run
    partial = [f for f in result.json()["findings"] if f["rule_id"] == "PRB-PARTIAL"]
    assert len(partial) == 1
    assert partial[0]["message"].startswith(
        f"the probe budget did not cover the suite ({used} of 300 forward passes used): "
        "leakage (partial), sweep (partial), phrase (partial), replay (partial), inversion "
        "(partial) did not finish;"
    )
    assert partial[0]["evidence"]["budget_forward_passes"] == 300


def test_library_warnings_while_probing_are_kept_in_the_report_not_printed(
    cli: Cli, first_backdoor_pair: BackdoorPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers.utils import logging as hf_logging

    # The shipped fixture loads without a warning on the transformers the tests run with, so
    # the loader is made to raise one of each kind a real one raises: a Python FutureWarning
    # (a deprecated argument; this one quotes hostile text) and a record on transformers' own
    # logger. Nothing else about loading changes.
    load = transformers.AutoModelForCausalLM.from_pretrained

    def noisy(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            "`torch_dtype` is deprecated! Use `dtype` instead!\n\x1b[2J",
            FutureWarning,
            stacklevel=2,
        )
        hf_logging.get_logger("transformers.modeling_utils").warning("Some weights were not used")
        return load(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", noisy)
    # transformers' stream handler holds the sys.stderr of when transformers was first imported
    # in this process; a `provscan` process's holds its own stderr. Point it at this test's.
    # (Exactly its StreamHandler: pytest's own capturing handlers are subclasses.)
    for handler in logging.getLogger("transformers").handlers:
        if type(handler) is logging.StreamHandler:
            monkeypatch.setattr(handler, "stream", sys.stderr)

    result = cli("probe", first_backdoor_pair.clean, "--budget", "300", "--format", "json")
    assert result.code == 4, result.err
    assert "Warning" not in result.err and "Some weights" not in result.err
    notes = [
        (f["message"], f["evidence"])
        for f in result.json()["findings"]
        if f["rule_id"] == "INV-LIBRARY-WARNING"
    ]
    said = "a library warned while the probes loaded or ran the model: "
    assert notes == [
        (
            said + "FutureWarning: `torch_dtype` is deprecated! Use `dtype` instead!\\x0a\\x1b[2J",
            {
                "step": "probes",
                "source": "python warnings",
                "category": "FutureWarning",
                "count": 1,
            },
        ),
        (
            said + "transformers.modeling_utils warning: Some weights were not used",
            {
                "step": "probes",
                "source": "transformers logging",
                "category": "transformers.modeling_utils warning",
                "count": 1,
            },
        ),
    ]


def test_a_refusal_shows_its_hint_on_the_line_and_the_model_text_escaped(
    cli: Cli, first_backdoor_pair: BackdoorPair, tmp_path: Path
) -> None:
    model = tmp_path / "remote-code"
    shutil.copytree(first_backdoor_pair.clean, model)
    config = json.loads((model / "config.json").read_text())
    # A key of the model's own that tries to pass for provscan's hint on a line of its own.
    config["x\n  hint: all clear"] = {"auto_map": {"AutoModelForCausalLM": "evil.Model"}}
    (model / "config.json").write_text(json.dumps(config))
    result = cli("probe", model, env={"COLUMNS": "1000"})  # one line, not wrapped to a width
    assert result.code == 1, result.err  # fail closed: not probed, not approved
    step = [line for line in result.out.splitlines() if line.startswith("  step probes")]
    assert step == [
        f"  step probes failed: EngineError: {model / 'config.json'}: key "
        "'x\\x0a  hint: all clear.auto_map' asks the loader to run the repository's own Python "
        "code; provscan never runs model code (trust_remote_code stays off); hint: probe only "
        "models whose architecture ships with transformers"
    ]


# Run as `python -c BLOCKED ARGS`: provscan's own entry point, in a process where importing
# torch or transformers fails as it does where they are not installed. A process of its own:
# this one has both imported already, and the refusal must come from a real failed import.
BLOCKED = """
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"torch", "transformers"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from provscan.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize(
    "command", [["probe"], ["check", "--probes"]], ids=["probe", "check-probes"]
)
def test_without_the_probes_extra_one_line_names_the_extra_before_any_scan(
    command: list[str], first_backdoor_pair: BackdoorPair
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED, *command, str(first_backdoor_pair.clean)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    who = " ".join(["provscan", *command])
    assert (proc.returncode, proc.stdout) == (3, ""), proc.stderr
    assert proc.stderr == (
        f"provscan: error: {who}: the probes need the 'probes' extra (torch and transformers "
        "are not installed): pip install 'provscan[probes]'\n"
    )
