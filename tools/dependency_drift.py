"""Would the tests still pass on today's newest releases? Install them fresh and run the suite.

CI installs the test extras under constraints.txt, which pins every package of the test
environment, so CI tests exactly what was tested when the pins were written. This script shows
drift before it breaks CI: it builds a fresh virtualenv, installs `.[test,dev]` (constraints.txt
pins both) with only torch pinned (its CPU build; an unpinned torch pulls several GB of CUDA
packages) plus any `--pin` given, prints every package whose resolved version differs from
constraints.txt, and runs pytest there. `--write` then rewrites constraints.txt from that environment (after the tests
passed), so that a new set of pins is always one that was tested.

    python tools/dependency_drift.py                         # newest releases, whole suite
    python tools/dependency_drift.py -- tests/probes         # newest releases, probe tests
    python tools/dependency_drift.py --pin transformers==5.18.0 -- tests/probes   # the oldest
    python tools/dependency_drift.py --write                 # re-pin after a green run

Exit status: pytest's (1 when the install failed). Needs the package index (PyPI).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "constraints.txt"
TORCH = "torch==2.13.0"  # the CPU wheel on these machines; see constraints.txt
HEADER = """\
# Pins for the test install: `pip install -c constraints.txt -e '.[test]'`.
# Every package of the tested environment is pinned, so CI tests what was tested:
# transformers, tokenizers, numpy, huggingface-hub and the rest each change results.
# torch 2.13.0 resolves to the CPU wheel on the CI machines; an unpinned torch would pull
# several GB of CUDA packages. Regenerate with `python tools/dependency_drift.py --write`
# (it installs the newest releases, runs the tests, and writes the pins only if they pass).
"""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """{normalised name: version} of the `name==version` lines of a constraints file."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[normalise(name)] = version.strip()
    return pins


def freeze(python: Path) -> dict[str, str]:
    """{normalised name: version} installed in the environment of `python`, provscan left out."""
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            if normalise(name) not in {"provscan", "pip", "setuptools", "wheel"}:
                found[normalise(name)] = version.split("+", 1)[0]  # torch 2.13.0+cpu -> 2.13.0
    return found


def drift(pinned: dict[str, str], found: dict[str, str]) -> list[str]:
    """One line per package whose version differs from its pin, or that is new or gone."""
    lines = []
    for name in sorted(set(pinned) | set(found)):
        old, new = pinned.get(name), found.get(name)
        if old != new:
            lines.append(f"  {name:<32} {old or '(not pinned)':>16} -> {new or '(gone)'}")
    return lines


def write_constraints(found: dict[str, str]) -> None:
    body = "".join(f"{name}=={version}\n" for name, version in sorted(found.items()))
    CONSTRAINTS.write_text(HEADER + body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pin", action="append", default=[], help="PKG==VERSION to hold")
    parser.add_argument("--venv", type=Path, help="where to build the virtualenv (default: temp)")
    parser.add_argument("--write", action="store_true", help="re-pin constraints.txt if green")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="provscan-drift-") as scratch:
        env_dir = args.venv or Path(scratch) / "venv"
        venv.create(env_dir, with_pip=True, clear=True)
        python = env_dir / "bin" / "python"
        loose = Path(scratch) / "constraints-newest.txt"
        loose.write_text("\n".join([TORCH, *args.pin]) + "\n", encoding="utf-8")
        install = [str(python), "-m", "pip", "install", "-q", "-c", str(loose), "-e", ".[test,dev]"]
        print("$", " ".join(install), flush=True)
        if subprocess.run(install, cwd=REPO).returncode != 0:
            print("install failed: the newest releases do not resolve together", file=sys.stderr)
            return 1
        found = freeze(python)
        changed = drift(read_pins(CONSTRAINTS), found)
        print(f"packages that differ from {CONSTRAINTS.name} ({len(changed)}):")
        print("\n".join(changed) if changed else "  none")
        test = [str(python), "-m", "pytest", *args.pytest_args]
        print("$", " ".join(test), flush=True)
        code = subprocess.run(test, cwd=REPO).returncode
        held = f" (held: {', '.join(args.pin)})" if args.pin else ""
        print(f"pytest exit status {code} on the newest releases{held}")
        if args.write:
            if code != 0:
                print("constraints.txt left as it is: the tests did not pass", file=sys.stderr)
            else:
                write_constraints(found)
                print(f"wrote {len(found)} pins to {CONSTRAINTS}")
        return code


if __name__ == "__main__":
    raise SystemExit(main())
