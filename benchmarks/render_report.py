"""Does the HTML audit report open cleanly in a real browser? Render it, screenshot it in headless Chromium.

Renders the audit report of a model (default: a scan of fixtures/demo/tiny-llama judged by
the default policy pack; or --report FILE.json) with provscan.emit.html, then:

  1. screenshot: `chromium --headless --no-sandbox --disable-gpu --enable-logging=stderr
     --v=0 --screenshot=OUT.png --window-size=W,H file://REPORT.html`; the PNG must exist
     and be a real one (signature, IHDR chunk, the window's dimensions, not a blank few KB);
  2. console: Chromium logs every console message, a CSP violation included, on stderr as
     `INFO:CONSOLE:<line>] "..."` (older builds: `CONSOLE(<line>)`), and an uncaught script
     error as `"Uncaught ..."`. The page has no script and loads nothing, so any console line,
     "Refused to", "Uncaught", "Content Security Policy" or "net::ERR_" is a failure;
  3. DOM: `chromium --headless --dump-dom` must hold the verdict section with the decision,
     no <script>, and no src/href that leaves the page (failed loads are not always logged).

Prints the paths, the PNG's size and dimensions, and the timings. Exit 0 when every check
passes, 1 otherwise, 2 when Chromium is not installed. The PNG goes to --out (default: a
temporary directory), never into the repository.

    python benchmarks/render_report.py [--report FILE.json | --model DIR] [--out OUT.png]
        [--chromium chromium] [--window 1280,2400] [--timeout 120]
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provscan.emit.html import render_html  # noqa: E402
from provscan.report import Report  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 10_000  # a blank page at 1280x2400 compresses to a few KB
PROBLEMS = re.compile(
    r":CONSOLE[:(]|CONSOLE\(\d+\)|Refused to|Uncaught|Content Security Policy|net::ERR_|\bERR_[A-Z_]+"
)


class _Elements(HTMLParser):
    """Every start tag of a document, with its attributes (text content is ignored)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def scan_demo(model: Path) -> Report:
    """Scan and judge a model the way `provscan check` does (default pack, no config)."""
    from provscan.pipeline import ScanOptions, scan
    from provscan.policy.engine import evaluate
    from provscan.resources import default_policy_dir

    report = scan(str(model), ScanOptions(hash_workers=2))
    return report.model_copy(update={"verdict": evaluate(report, [default_policy_dir()], {})})


def png_facts(path: Path) -> tuple[int, int, int]:
    """(bytes, width, height) of a PNG; raises ValueError when it is not one."""
    data = path.read_bytes()
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG (no signature or IHDR chunk)")
    width, height = struct.unpack(">II", data[16:24])
    return len(data), width, height


def chromium(
    binary: str, args: list[str], timeout: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", *args]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - start


def problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if PROBLEMS.search(line)]


def check_dom(dom: str, decision: str | None) -> list[str]:
    """What is wrong with the DOM Chromium built from the page (empty: nothing)."""
    errors = []
    wanted = f'data-decision="{decision or "none"}"'
    if 'id="verdict"' not in dom or wanted not in dom:
        errors.append(f"the DOM has no verdict section with {wanted}")
    label = decision.upper() if decision else "NO POLICY EVALUATED"
    if label not in dom:
        errors.append(f"the DOM does not show {label}")
    elements = _Elements()
    elements.feed(dom)
    for tag, attrs in elements.tags:
        if tag == "script":
            errors.append("the DOM holds a <script> element")
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action") and not (value or "").startswith("#"):
                errors.append(f"the DOM refers outside the page: <{tag} {name}={value!r}>")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--report", type=Path, help="a provscan JSON report to render")
    source.add_argument("--model", type=Path, default=REPO / "fixtures" / "demo" / "tiny-llama")
    parser.add_argument("--out", type=Path, help="where to write the PNG (default: a temp dir)")
    parser.add_argument("--chromium", default="chromium")
    parser.add_argument("--window", default="1280,2400")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)

    binary = shutil.which(args.chromium)
    if binary is None:
        print(f"{args.chromium} not found: install Chromium (Debian: apt-get install chromium)")
        return 2
    start = time.perf_counter()
    report = (
        Report.model_validate_json(args.report.read_text())
        if args.report
        else scan_demo(args.model)
    )
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    page = render_html(report)
    rendered = time.perf_counter() - start

    out = args.out or Path(tempfile.mkdtemp(prefix="provscan-report-")) / "report.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    html_path = out.with_suffix(".html").resolve()
    html_path.write_text(page, encoding="utf-8")
    out.unlink(missing_ok=True)
    url = html_path.as_uri()

    logging = ["--enable-logging=stderr", "--v=0"]
    window = f"--window-size={args.window}"
    shot, shot_s = chromium(
        binary, [*logging, f"--screenshot={out.resolve()}", window, url], args.timeout
    )
    dom, dom_s = chromium(binary, ["--dump-dom", url], args.timeout)

    errors = [f"chromium printed: {line}" for line in problems(shot.stderr + dom.stderr)]
    if shot.returncode != 0 or dom.returncode != 0:
        errors.append(
            f"chromium exited {shot.returncode} (screenshot), {dom.returncode} (dump-dom)"
        )
    decision = report.verdict.decision.value if report.verdict else None
    errors += check_dom(dom.stdout, decision)
    if not out.exists():
        errors.append(f"no screenshot at {out}")
    else:
        try:
            size, width, height = png_facts(out)
        except ValueError as error:
            errors.append(str(error))
        else:
            expected = tuple(int(n) for n in args.window.split(","))
            if (width, height) != expected:
                errors.append(
                    f"screenshot is {width}x{height}, expected {expected[0]}x{expected[1]}"
                )
            if size < MIN_PNG_BYTES:
                errors.append(f"screenshot is only {size} bytes: a blank page?")
            print(f"screenshot  {out} ({size:,} bytes, {width}x{height})")
    print(f"html        {html_path} ({len(page.encode()):,} bytes)")
    print(f"report      {'loaded' if args.report else 'scanned and judged'} in {loaded:.2f} s; "
          f"rendered in {rendered * 1000:.1f} ms")  # fmt: skip
    print(f"chromium    screenshot {shot_s:.2f} s, dump-dom {dom_s:.2f} s")
    for error in errors:
        print(f"FAIL        {error}")
    print("ok" if not errors else f"{len(errors)} problem(s)")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
