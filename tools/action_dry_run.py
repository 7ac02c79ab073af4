"""Does the GitHub Action (action.yml) work? Run its steps here, as a runner would, offline.

`act` needs Docker and the network; neither is on a CI machine here. This script reads
action.yml and executes it: each `run:` step in bash exactly as a composite action runs it
(`bash --noprofile --norc -eo pipefail`, the step's env, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY),
`${{ }}` expressions and `if:` conditions evaluated, step outputs passed on. The three
`uses:` steps cannot run without GitHub, so each is stood in for by what it guarantees:

- actions/setup-python: a fresh virtualenv layered over the current environment (its
  packages visible through a .pth file), so the action's own `pip install` step really runs,
  offline (PIP_NO_INDEX, no build isolation);
- github/codeql-action/upload-sarif: the file must exist, be JSON, pass the SARIF 2.1.0
  schema and GitHub's limits; it is copied to OUT/uploaded-sarif/;
- actions/upload-artifact: the paths must exist; they are copied to OUT/artifacts/NAME/.

The action's outputs (its output-dir input, provscan-results in the workspace by default)
go to OUT/provscan-results unless --input output-dir=... says otherwise, so a dry run leaves
the working tree as it found it. OUT is a temporary folder, removed at the end, unless
--out names one (or --keep keeps it).

The Python running this script stands in for the runner's: the action's `pip install` step
installs this checkout from it, offline, so it needs hatchling (the build backend) and
provscan's dependencies, besides PyYAML and jsonschema for the script itself. Without them
the dry run says which are missing and stops (exit status 2); a Python that has provscan
installed, but not hatchling, can dry-run the installed provscan with
--input provscan-spec=provscan.

Usage: python tools/action_dry_run.py --input target=fixtures/demo/tiny-llama [--input k=v]...
       [--out DIR | --keep] [--summary FILE]. Exit status: the action's (the failing step's
       code), 2 when the dry run itself cannot run.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
_TOKEN = re.compile(r"\s*(?:(\|\||&&|==|!=|!|\(|\)|,)|'((?:[^']|'')*)'|([A-Za-z_][\w.-]*))")


class DryRunError(Exception):
    """The action uses something this dry run cannot stand in for, or is malformed."""


# ---------------------------------------------------------------- expressions


class _Expr:
    """A recursive-descent evaluator for the subset of GitHub expressions action.yml uses."""

    def __init__(self, text: str, context: dict[str, Any], status: str) -> None:
        self.tokens = self._lex(text)
        self.pos = 0
        self.context = context
        self.status = status  # "success" or "failure": the job status so far

    @staticmethod
    def _lex(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text.rstrip()):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise DryRunError(f"cannot parse expression {text!r} at {text[pos:]!r}")
            op, literal, name = match.groups()
            if op:
                tokens.append(("op", op))
            elif literal is not None:
                tokens.append(("str", literal.replace("''", "'")))
            else:
                tokens.append(("name", name))
            pos = match.end()
        return tokens

    def value(self) -> Any:
        result = self._or()
        if self.pos != len(self.tokens):
            raise DryRunError(f"unexpected {self.tokens[self.pos][1]!r} in expression")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left or right
        return left

    def _and(self) -> Any:
        left = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            left = left and right
        return left

    def _compare(self) -> Any:
        left = self._unary()
        while self._peek() in ("==", "!="):
            op = self._take()[1]
            right = self._unary()
            same = (
                str(left).lower() == str(right).lower()
            )  # GitHub compares strings case-insensitively
            left = same if op == "==" else not same
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not self._unary()
        if self._peek() == "(":
            self._take()
            inner = self._or()
            if self._take()[1] != ")":
                raise DryRunError("missing ')' in expression")
            return inner
        kind, text = self._take()
        if kind == "str":
            return text
        if self._peek() == "(":
            self._take()
            if self._take()[1] != ")":
                raise DryRunError(f"{text}() takes no arguments here")
            return self._status_function(text)
        return self._lookup(text)

    def _status_function(self, name: str) -> bool:
        functions = {
            "always": True,
            "success": self.status == "success",
            "failure": self.status == "failure",
            "cancelled": False,
        }
        if name not in functions:
            raise DryRunError(f"function {name}() is not supported by the dry run")
        return functions[name]

    def _lookup(self, dotted: str) -> Any:
        if dotted in ("true", "false"):
            return dotted == "true"
        head, *rest = dotted.split(".")
        if head not in self.context:
            raise DryRunError(f"{dotted}: {head} is not a context the dry run knows")
        node: Any = self.context[head]
        for part in rest:  # like GitHub: a missing property (a skipped step's output) is ''
            node = node.get(part, "") if isinstance(node, dict) else ""
        return node


def evaluate(text: str, context: dict[str, Any], status: str = "success") -> str:
    """Replace each ${{ expr }} in ``text`` with its value (as GitHub formats it)."""

    def one(match: re.Match[str]) -> str:
        value = _Expr(match.group(1), context, status).value()
        return str(value).lower() if isinstance(value, bool) else str(value)

    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def condition(text: str | None, context: dict[str, Any], status: str) -> bool:
    """An `if:`; without a status function in it, success() is implied (GitHub's rule)."""
    if text is None:
        return status == "success"
    inner = text.strip()
    if inner.startswith("${{") and inner.endswith("}}"):
        inner = inner[3:-2]
    if not re.search(r"\b(always|success|failure|cancelled)\(", inner):
        inner = f"success() && ({inner})"
    return bool(_Expr(inner, context, status).value())


# ---------------------------------------------------------------- steps


class Runner:
    def __init__(self, out: Path, workspace: Path) -> None:
        self.out = out
        self.workspace = workspace
        self.temp = out / "runner-temp"
        self.temp.mkdir(parents=True, exist_ok=True)
        self.path_prefix: list[str] = []
        self.summary = out / "step-summary.md"
        self.notes: list[str] = []

    def env(self, extra: dict[str, str], output_file: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env.update(
            PATH=os.pathsep.join([*self.path_prefix, env.get("PATH", "")]),
            GITHUB_ACTION_PATH=str(REPO),
            GITHUB_WORKSPACE=str(self.workspace),
            GITHUB_OUTPUT=str(output_file),
            GITHUB_STEP_SUMMARY=str(self.summary),
            RUNNER_TEMP=str(self.temp),
            # The dry run must never reach a package index.
            PIP_NO_INDEX="1",
            # pip reads its negated options' variables inverted: "0" here means
            # --no-build-isolation (hatchling comes from the current environment).
            PIP_NO_BUILD_ISOLATION="0",
            **extra,
        )
        return env

    def run_step(self, script: str, env: dict[str, str], output_file: Path) -> int:
        script_path = self.temp / "step.sh"
        script_path.write_text(script)
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_path)],
            cwd=self.workspace,
            env=self.env(env, output_file),
            check=False,
        )
        return proc.returncode

    def uses(self, action: str, with_: dict[str, str]) -> None:
        name = action.split("@", 1)[0]
        handlers = {
            "actions/setup-python": self._setup_python,
            "github/codeql-action/upload-sarif": self._upload_sarif,
            "actions/upload-artifact": self._upload_artifact,
        }
        if name not in handlers:
            raise DryRunError(f"uses: {action} has no stand-in in the dry run")
        handlers[name](with_)

    def _setup_python(self, with_: dict[str, str]) -> None:
        wanted = with_.get("python-version", "")
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if wanted and wanted != here:
            self.notes.append(f"setup-python asked for {wanted}; the dry run uses {here}")
        env_dir = self.out / "venv"
        venv.EnvBuilder(with_pip=False, clear=True).create(env_dir)
        lib = next((env_dir / "lib").glob("python3*")) / "site-packages"
        # The current environment's packages, visible to the new interpreter: the action's
        # pip install then builds and installs provscan itself without any index.
        paths = [p for p in sys.path if p.endswith("site-packages")] + site.getsitepackages()
        (lib / "_dry_run_parent.pth").write_text("\n".join(dict.fromkeys(paths)) + "\n")
        # Then the current environment's scripts: a package pip finds already installed
        # there (provscan-spec=provscan) keeps its command, as it would on a runner.
        self.path_prefix[0:0] = [str(env_dir / "bin"), str(Path(sys.executable).parent)]

    def _upload_sarif(self, with_: dict[str, str]) -> None:
        import jsonschema

        path = self.workspace / with_["sarif_file"]
        if not path.is_file():
            raise DryRunError(f"upload-sarif: {path} does not exist")
        document = json.loads(path.read_text(encoding="utf-8"))
        schema_path = REPO / "provscan" / "emit" / "schemas" / "sarif-2.1.0-rtm.5.json"
        jsonschema.Draft4Validator(json.loads(schema_path.read_text())).validate(document)
        # GitHub's upload limits (docs: SARIF support for code scanning).
        if len(document["runs"]) > 20:
            raise DryRunError("upload-sarif: more than 20 runs")
        for run in document["runs"]:
            if len(run.get("results", [])) > 25_000:
                raise DryRunError("upload-sarif: more than 25,000 results in a run")
        target = self.out / "uploaded-sarif"
        target.mkdir(exist_ok=True)
        shutil.copy2(path, target / path.name)

    def _upload_artifact(self, with_: dict[str, str]) -> None:
        source = self.workspace / with_["path"]
        target = self.out / "artifacts" / with_["name"]
        if not source.exists():
            if with_.get("if-no-files-found", "warn") == "error":
                raise DryRunError(f"upload-artifact: {source} does not exist")
            self.notes.append(f"upload-artifact: {source} does not exist (warned)")
            return
        shutil.rmtree(target, ignore_errors=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
            shutil.copy2(source, target / source.name)


def _read_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT lines: name=value, or name<<DELIM ... DELIM."""
    outputs: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            i += 1
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            outputs[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
        i += 1
    return outputs


def dry_run(inputs: dict[str, str], out: Path, workspace: Path) -> dict[str, Any]:
    import yaml

    action = yaml.safe_load((REPO / "action.yml").read_text())
    if action.get("runs", {}).get("using") != "composite":
        raise DryRunError("action.yml is not a composite action")
    declared = action.get("inputs", {})
    unknown = set(inputs) - set(declared)
    if unknown:
        raise DryRunError(f"unknown input(s): {', '.join(sorted(unknown))}")
    values = {k: str(spec.get("default", "")) for k, spec in declared.items()}
    values.update(inputs)
    missing = [k for k, spec in declared.items() if spec.get("required") and not values[k]]
    if missing:
        raise DryRunError(f"required input(s) missing: {', '.join(missing)}")
    context: dict[str, Any] = {
        "inputs": values,
        "github": {"action_path": str(REPO), "workspace": str(workspace)},
        "runner": {"temp": str(out / "runner-temp")},
        "steps": {},
    }
    runner = Runner(out, workspace)
    status, exit_code, log = "success", 0, []
    for number, step in enumerate(action["runs"]["steps"], start=1):
        name = step.get("name", f"step {number}")
        if not condition(step.get("if"), context, status):
            log.append({"step": name, "result": "skipped"})
            continue
        output_file = out / f"output-{number}.txt"
        try:
            if "uses" in step:
                with_ = {
                    k: evaluate(str(v), context, status) for k, v in step.get("with", {}).items()
                }
                runner.uses(step["uses"], with_)
                code = 0
            else:
                if step.get("shell") != "bash":
                    raise DryRunError(f"step {name!r}: composite run steps need shell: bash")
                env = {k: evaluate(str(v), context, status) for k, v in step.get("env", {}).items()}
                # `run:` text is evaluated too; action.yml keeps inputs out of it (env only).
                code = runner.run_step(evaluate(step["run"], context, status), env, output_file)
        except (DryRunError, OSError, ValueError) as exc:
            log.append({"step": name, "result": "failed", "error": str(exc)})
            status, exit_code = "failure", exit_code or 1
            continue
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": _read_outputs(output_file)}
        log.append({"step": name, "result": "ok" if code == 0 else f"failed (exit {code})"})
        if code != 0:
            status, exit_code = "failure", exit_code or code
    outputs = {
        k: evaluate(str(spec.get("value", "")), context, status)
        for k, spec in action.get("outputs", {}).items()
    }
    return {"exit_code": exit_code, "steps": log, "outputs": outputs, "notes": runner.notes}


# ---------------------------------------------------------------- this Python


def _requirement_class() -> Any:
    """packaging's Requirement: the installed one, else the copy pip carries, else None."""
    for module in ("packaging.requirements", "pip._vendor.packaging.requirements"):
        try:
            return importlib.import_module(module).Requirement
        except ImportError:
            continue
    return None


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirement_gaps(requirements: Iterable[str]) -> list[str]:
    """The requirements (PEP 508 strings) this Python does not satisfy, as short texts."""
    requirement = _requirement_class()
    gaps: list[str] = []
    for text in requirements:
        if requirement is None:  # no parser: the name must at least be installed
            if ";" in text:
                continue  # an environment marker it cannot evaluate
            name = re.match(r"[A-Za-z0-9._-]*", text.strip())
            if name and name.group(0) and _installed(name.group(0)) is None:
                gaps.append(text.strip())
            continue
        req = requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = _installed(req.name)
        if version is None:
            gaps.append(f"{req.name}{req.specifier}")
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            gaps.append(f"{req.name}{req.specifier} (found {version})")
        for extra in sorted(req.extras):
            for dep_text in importlib.metadata.requires(req.name) or []:
                dep = requirement(dep_text)
                marker = dep.marker
                if marker is None or "extra" not in str(marker):
                    continue
                if marker.evaluate({"extra": extra}) and _installed(dep.name) is None:
                    gaps.append(f"{dep.name}{dep.specifier} (for {req.name}[{extra}])")
    return gaps


def missing_for_dry_run(provscan_spec: str) -> list[str]:
    """What this Python lacks to run the script and, offline, the action's install step.

    With the default provscan-spec (this checkout), pip builds provscan here: the build
    backend and every dependency must already be installed. With another spec, pip resolves
    it against what is installed; that is the action's own business (its step may fail).
    """
    gaps = [
        name
        for name, module in (("pyyaml", "yaml"), ("jsonschema", "jsonschema"), ("pip", "pip"))
        if importlib.util.find_spec(module) is None
    ]
    if provscan_spec:
        return gaps
    toml: Any = None
    for module in ("tomllib", "tomli"):  # tomli on Python 3.10
        try:
            toml = importlib.import_module(module)
            break
        except ImportError:
            continue
    if toml is None:
        return [*gaps, "tomli (to read pyproject.toml)"]
    project = toml.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = [
        *project.get("build-system", {}).get("requires", []),
        *project.get("project", {}).get("dependencies", []),
    ]
    named = {_name_of(gap) for gap in gaps}
    return [*gaps, *(gap for gap in requirement_gaps(wanted) if _name_of(gap) not in named)]


def _name_of(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9._-]*", requirement.strip())
    return (found.group(0) if found else requirement).lower().replace("_", "-")


def _missing_message(missing: list[str]) -> str:
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    hint = "run it with the Python of provscan's development environment (pip install -e '.[test]')"
    if _installed("provscan") is not None and all(m.startswith("hatchling") for m in missing):
        hint = "add --input provscan-spec=provscan to dry-run the provscan installed here"
    return f"action dry run: {sys.executable} cannot install provscan offline, it lacks {shown}: {hint}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary working folder (without --out)"
    )
    parser.add_argument("--workspace", type=Path, default=Path.cwd())
    parser.add_argument("--summary", type=Path, help="also write the result as JSON")
    args = parser.parse_args(argv)
    malformed = [item for item in args.input if "=" not in item]
    if malformed:
        parser.error(f"--input {malformed[0]!r}: expected NAME=VALUE")
    inputs = dict(item.split("=", 1) for item in args.input)
    missing = missing_for_dry_run(inputs.get("provscan-spec", ""))
    if missing:
        print(_missing_message(missing), file=sys.stderr)
        return 2
    out = (args.out or Path(tempfile.mkdtemp(prefix="provscan-action-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # The action writes its reports into the workspace (provscan-results by default): on a
    # runner that is a throwaway checkout, here it would be the developer's working tree.
    inputs.setdefault("output-dir", str(out / "provscan-results"))
    try:
        return _run_and_report(inputs, out, args)
    finally:
        if args.out is None and not args.keep:
            shutil.rmtree(out, ignore_errors=True)


def _run_and_report(inputs: dict[str, str], out: Path, args: argparse.Namespace) -> int:
    try:
        result = dry_run(inputs, out, args.workspace.resolve())
    except DryRunError as exc:
        print(f"action dry run: {exc}", file=sys.stderr)
        return 2
    for entry in result["steps"]:
        print(
            f"  {entry['result']:<18} {entry['step']}"
            + (f": {entry['error']}" if "error" in entry else "")
        )
    for key, value in result["outputs"].items():
        print(f"  output {key} = {value}")
    for note in result["notes"]:
        print(f"  note: {note}")
    kept = args.out is not None or args.keep
    where = f"files under {out}" if kept else "its files removed; --keep or --out DIR keeps them"
    print(f"action exit status {result['exit_code']} ({where})")
    if args.summary:
        args.summary.write_text(json.dumps(result, indent=2) + "\n")
    return int(result["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
