"""Render a chat template in Jinja's sandbox, in a bounded child process, and report what it refused.

The lint in lint.py reads the template; this check runs it. A name assembled at
render time (`'__cla' ~ 'ss__'`, `|join`, `|format`, `|reverse`, a macro argument) is plain
text to a parser, but it reaches the renderer as the attribute it spells. transformers and
vLLM render chat templates in Jinja's ImmutableSandboxedEnvironment, so a template that works
for their users never touches an attribute that sandbox refuses: a refused attribute or call
is a payload. (A refused mutation, a list's `append`, reaches nothing; it only stops the
render there.) The sandbox is subclassed here so that each refusal is recorded and reported,
not merely raised and lost in a render error.

The template is rendered with a realistic conversation (system, user, assistant, tool turns,
tool definitions, special tokens, `raise_exception` and `strftime_now` as transformers
provides them). The renderer is this file run as a script in a fresh, isolated interpreter
(`python -I -B`, standard library and jinja2 only): the template goes in on stdin, one JSON
object per line comes back on stdout, and the child caps its own CPU time, address space,
file size, core dumps and process count before it reads the template. The parent bounds
the wall-clock time. A template the sandbox cannot finish is reported as not fully checked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

RENDER_SECONDS = 10.0  # wall clock for the whole child, start-up included
RENDER_CPU_SECONDS = 5  # the child's own CPU limit (SIGXCPU past it)
RENDER_MEMORY = 1024 * 1024 * 1024  # address space of the child
RENDER_MAX_CHARS = 256 * 1024  # per conversation; a real prompt here is a few kilobytes
REFUSALS_MAX = 20  # distinct refusals reported; one is enough for a verdict
NAME_MAX = 100  # characters kept of a refused name or an error message
STDOUT_MAX = 64 * 1024  # the child prints at most REFUSALS_MAX short lines
_CHILD_ENV = {"PATH", "SYSTEMROOT", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "TMPDIR", "TEMP", "TMP"}


@dataclass(frozen=True)
class Refusal:
    """One access the sandbox refused: an attribute, a call, or a SecurityError it raised."""

    kind: str  # "attribute", "mutation", "callable" or "security-error"
    name: str  # the attribute or callable's name, or the error message
    owner: str  # what it was read from or called on: "str object", "Cycler class"

    def describe(self) -> str:
        if self.kind == "attribute":
            return f"refused attribute {self.name!r} of a {self.owner}"
        if self.kind == "mutation":
            return f"refused {self.name!r}, which changes a {self.owner} in place"
        if self.kind == "callable":
            return f"refused call of {self.name!r} (a {self.owner})"
        return f"SecurityError: {self.name}"


def _owner(obj: Any) -> str:
    """How a refusal names the object: its class, or the class itself (`cycler.__init__`)."""
    if isinstance(obj, type):
        return f"{obj.__name__} class"
    return f"{type(obj).__name__} object"


@dataclass(frozen=True)
class SandboxResult:
    refusals: tuple[Refusal, ...]
    unchecked: str | None = None  # why the renders did not all finish, when they did not


def render_check(template: str) -> SandboxResult:
    """Render `template` in the recording sandbox in a child process; what it refused."""
    env = {k: v for k, v in os.environ.items() if k in _CHILD_ENV}
    try:
        with tempfile.TemporaryDirectory() as work:
            proc = subprocess.run(  # noqa: S603 - our own interpreter running this file
                [sys.executable, "-I", "-B", os.path.abspath(__file__)],
                input=template.encode("utf-8", errors="surrogatepass"),
                capture_output=True,
                timeout=RENDER_SECONDS,
                cwd=work,
                env=env,
                check=False,
            )
    except subprocess.TimeoutExpired as exc:
        refusals, _, _ = _parse(exc.stdout)
        return SandboxResult(refusals, f"the sandboxed render ran past {RENDER_SECONDS:g} s")
    except OSError as exc:
        return SandboxResult((), f"the sandboxed renderer could not start: {exc}")
    refusals, done, stopped = _parse(proc.stdout)
    if done:
        return SandboxResult(refusals, stopped)
    return SandboxResult(refusals, f"the sandboxed render did not finish: {_why(proc)}")


def _parse(stdout: bytes | None) -> tuple[tuple[Refusal, ...], bool, str | None]:
    """The child's JSON lines: refusals, whether it finished, and why output was cut short."""
    refusals: dict[Refusal, None] = {}
    done, stopped = False, None
    for line in (stdout or b"")[:STDOUT_MAX].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        refused = event.get("refused")
        if isinstance(refused, dict):
            fields = [str(refused.get(key, ""))[:NAME_MAX] for key in ("kind", "name", "owner")]
            refusals[Refusal(*fields)] = None
        if isinstance(event.get("stopped"), str):
            stopped = event["stopped"][:NAME_MAX]
        done = done or event.get("done") is True
    return tuple(refusals)[:REFUSALS_MAX], done, stopped


def _why(proc: subprocess.CompletedProcess[bytes]) -> str:
    if proc.returncode < 0:
        try:
            return f"stopped by {signal.Signals(-proc.returncode).name}"
        except ValueError:
            return f"stopped by signal {-proc.returncode}"
    lines = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()
    return (lines[-1] if lines else f"exit status {proc.returncode}")[:NAME_MAX]


def generation_extension() -> type[Any]:
    """transformers' `{% generation %}` tag (its AssistantTracker marks assistant text with it):
    its body is parsed, and rendered as is. Shared by the lint, this renderer and the probes'."""
    from jinja2 import nodes
    from jinja2.ext import Extension

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    return Generation


# --------------------------------------------------------------------------- the child


def _conversations() -> list[dict[str, Any]]:
    """The variables transformers passes (messages, tools, documents, add_generation_prompt,
    the special tokens), for a plain chat and for a tool-calling one. Tool-call ids are nine
    alphanumerics and arguments come both as a mapping and as JSON text, as templates expect."""
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>"}
    parameters = {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city."}},
        "required": ["city"],
    }
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather in a city.",
                "parameters": parameters,
            },
        }
    ]

    def tool_chat(arguments: Any) -> list[dict[str, Any]]:
        function = {"name": "get_weather", "arguments": arguments}
        call = {"id": "call00001", "type": "function", "function": function}
        return [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "21 C"},
            {"role": "assistant", "content": "It is 21 C in Paris."},
            {"role": "user", "content": "Thanks."},
        ]

    chat = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello."},
        {"role": "assistant", "content": "<think>A greeting.</think>Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ]
    conversations: list[tuple[list[dict[str, Any]], Any]] = [
        ([{"role": "user", "content": "Hello."}], None),
        (chat, None),
        (tool_chat({"city": "Paris"}), tools),
        (tool_chat('{"city": "Paris"}'), tools),
    ]
    return [
        {**specials, "messages": messages, "tools": tools_, "documents": None,
         "add_generation_prompt": True}
        for messages, tools_ in conversations
    ]  # fmt: skip


def _emit(event: dict[str, Any]) -> None:
    """One JSON line, flushed at once: what was recorded survives a later kill."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _limit_self() -> None:
    """Cap this process before it reads the template (lowering a limit needs no privilege)."""
    try:
        import resource
    except ImportError:
        return  # not POSIX: the parent's timeout still bounds the child

    caps = (
        (resource.RLIMIT_CPU, RENDER_CPU_SECONDS, RENDER_CPU_SECONDS + 1),
        (resource.RLIMIT_AS, RENDER_MEMORY, RENDER_MEMORY),
        (resource.RLIMIT_FSIZE, 0, 0),  # writes no file
        (resource.RLIMIT_CORE, 0, 0),  # SIGXCPU dumps core by default
        (resource.RLIMIT_NPROC, 0, 0),  # starts no process (not enforced for root)
    )
    for limit, soft, hard in caps:
        try:
            _, current = resource.getrlimit(limit)
            if current != resource.RLIM_INFINITY:
                soft, hard = min(soft, current), min(hard, current)
            resource.setrlimit(limit, (soft, hard))
        except (ValueError, OSError):
            pass  # a platform without this limit: the parent's timeout still bounds the child


def _recording_sandbox(record: Any) -> Any:
    """transformers' chat-template environment, with each refusal passed to `record`."""
    from datetime import datetime

    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

    class RecordingSandbox(ImmutableSandboxedEnvironment):
        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            if not SandboxedEnvironment.is_safe_attribute(self, obj, attr, value):
                record("attribute", str(attr), _owner(obj))
                return False
            if not super().is_safe_attribute(obj, attr, value):
                # Only the immutable sandbox refuses it: a list's append, a dict's update.
                record("mutation", str(attr), type(obj).__name__)
                return False
            return True

        def is_safe_callable(self, obj: Any) -> bool:
            safe = bool(super().is_safe_callable(obj))
            if not safe:
                record("callable", str(getattr(obj, "__name__", "?")), _owner(obj))
            return safe

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: Any = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )  # fmt: skip

    env = RecordingSandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=[generation_extension(), loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(str(fmt))
    return env


def _child_main() -> None:
    """Render the template on stdin once per conversation; print refusals as JSON lines."""
    _limit_self()
    template = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    seen: set[tuple[str, str, str]] = set()
    refused = [0]  # refusals so far, repeats included

    def record(kind: str, name: str, owner: str) -> None:
        refused[0] += 1
        key = (kind, name[:NAME_MAX], owner[:NAME_MAX])
        if key not in seen and len(seen) < REFUSALS_MAX:
            seen.add(key)
            _emit({"refused": dict(zip(("kind", "name", "owner"), key, strict=True))})

    try:
        from jinja2.exceptions import SecurityError

        compiled = _recording_sandbox(record).from_string(template)
    except ImportError:
        _emit({"stopped": "jinja2 is not installed"})
        _emit({"done": True})
        return
    except Exception:  # a template Jinja cannot compile cannot be rendered by anyone
        _emit({"done": True})
        return
    for variables in _conversations():
        before = refused[0]
        try:
            size = 0
            for chunk in compiled.generate(**variables):
                size += len(chunk)
                if size > RENDER_MAX_CHARS:
                    _emit({"stopped": f"a render passed {RENDER_MAX_CHARS} characters"})
                    break
        except SecurityError as exc:
            if refused[0] == before:  # not already recorded as the refusal that raised it
                record("security-error", str(exc), type(exc).__name__)
        except Exception:  # noqa: S110 - raise_exception, a TypeError: this conversation ends
            pass
    _emit({"done": True})


if __name__ == "__main__":
    _child_main()
