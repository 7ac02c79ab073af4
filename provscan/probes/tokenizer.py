"""How does this model turn a user message into token ids, and which tokens can be candidates?

The tokenizer is read from its files only: `tokenizer.json` through the `tokenizers` library
(a data format: no code runs, never `trust_remote_code`) and `tokenizer_config.json` (or
`chat_template.jinja`) for the chat template and special tokens. The chat template is a
Jinja program written by whoever published the model, so it is rendered only in Jinja's
ImmutableSandboxedEnvironment, in a child process with a time limit, a memory limit and a
bound on its output (a hostile template can at worst fail, and then the probes fall back to
the bare user content and say so).

Prompts are assembled at the token level: the template is rendered once around a placeholder,
the text before and after it is encoded on its own, and user content ids are spliced in
between. A candidate token inserted into the content therefore stays exactly one id: it is
never re-tokenised or merged with its neighbours.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan.limits import DEFAULT_LIMITS
from provscan.parsing import parse_json
from provscan.probes.engine import ProbeError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOKENIZER_JSON_MAX = 256 * 1024 * 1024  # Gemma-3's tokenizer.json is ~33 MB
TEMPLATE_MAX = 1024 * 1024  # the same bound the chat-template lint uses
RENDER_MAX_CHARS = 64 * 1024  # a rendered one-message prompt is a few hundred characters
RENDER_SECONDS = 10.0
RENDER_MEMORY = 1024 * 1024 * 1024  # address space of the rendering child
USER_MARK = "PROVSCANUSERCONTENTMARK"
SYSTEM_MARK = "PROVSCANSYSTEMCONTENTMARK"
_CHILD_ENV = {"PATH", "SYSTEMROOT", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "TMPDIR", "TEMP", "TMP"}
_BYTE_FALLBACK = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
_INLINE_LEAD = "the"  # a word put before a trigger to encode it as it appears mid-sentence


class TokenizerError(ProbeError):
    """The model's tokenizer cannot be read from its files."""


@dataclass(frozen=True)
class Content:
    """One user message as token ids, and the ids' positions where a new word starts."""

    text: str
    ids: tuple[int, ...]
    word_starts: tuple[int, ...]  # insertion points: 0, each word-initial token, len(ids)


@dataclass(frozen=True)
class _Layout:
    prefix: tuple[int, ...]  # template ids before the user content
    suffix: tuple[int, ...]  # template ids after it, through the generation prompt
    system: tuple[tuple[int, ...], tuple[int, ...]] | None  # (before, between) system & user


class ProbeTokenizer:
    """A model's tokenizer and chat template, as the probes need them."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        config: dict[str, Any],
        template: str | None,
        extra_stop_ids: Sequence[int] = (),
    ) -> None:
        self.tokenizer = tokenizer
        self.specials = {
            name: _token_text(config.get(name))
            for name in ("bos_token", "eos_token", "pad_token", "unk_token")
        }
        ids = {name: self._id(text) for name, text in self.specials.items()}
        self.bos_id, self.eos_id = ids["bos_token"], ids["eos_token"]
        self.unk_id = ids["unk_token"]  # what a word outside a word-level vocabulary becomes
        added = tokenizer.get_added_tokens_decoder()
        self.special_ids = frozenset(
            {i for i, tok in added.items() if tok.special}
            | {i for i in ids.values() if i is not None}
        )
        stops = [self.eos_id, *extra_stop_ids]
        self.stop_ids = tuple(dict.fromkeys(i for i in stops if i is not None))
        self.template_note: str | None = None  # why the chat template was not used
        self._layout = self._build_layout(template)

    @classmethod
    def from_dir(cls, model_dir: Path) -> ProbeTokenizer:
        from tokenizers import Tokenizer  # heavy, and optional: the `probes` extra

        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise TokenizerError(
                f"{model_dir} has no tokenizer.json: the probes read the tokenizer from that file only",
                "convert the tokenizer with transformers (save_pretrained writes tokenizer.json); "
                "provscan never runs tokenizer code or trust_remote_code",
            )
        if path.stat().st_size > TOKENIZER_JSON_MAX:
            raise TokenizerError(f"{path} is larger than {TOKENIZER_JSON_MAX} bytes")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust parser raises plain Exception subclasses
            raise TokenizerError(f"{path} is not a readable tokenizers file: {exc}") from exc
        config = _read_json(model_dir / "tokenizer_config.json")
        template = _read_template(model_dir, config)
        generation = _read_json(model_dir / "generation_config.json").get("eos_token_id")
        stops = generation if isinstance(generation, list) else [generation]
        return cls(tokenizer, config, template, [i for i in stops if isinstance(i, int)])

    # ------------------------------------------------------------------ encoding

    def _id(self, text: str | None) -> int | None:
        return None if text is None else self.tokenizer.token_to_id(text)

    @property
    def template_used(self) -> bool:
        return self.template_note is None

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def content(self, text: str) -> Content:
        """A user message's ids and its word-start positions (from the encoder's offsets)."""
        enc = self.tokenizer.encode(text, add_special_tokens=False)
        starts = [0]
        for i in range(1, len(enc.ids)):
            begin, prev_end = enc.offsets[i][0], enc.offsets[i - 1][1]
            # A gap (whitespace the pre-tokeniser dropped) or a token that carries its own
            # leading space (byte-level "Ġx", metaspace "▁x") begins a word.
            if begin > prev_end or text[begin : begin + 1].isspace():
                starts.append(i)
        starts.append(len(enc.ids))
        return Content(text, tuple(enc.ids), tuple(dict.fromkeys(starts)))

    def encode_inline(self, text: str) -> tuple[int, ...]:
        """The ids of `text` as it is tokenised after a word (how a trigger appears in a prompt)."""
        lead = _INLINE_LEAD + " "
        enc = self.tokenizer.encode(lead + text, add_special_tokens=False)
        ids = tuple(
            i for i, (_, end) in zip(enc.ids, enc.offsets, strict=True) if end > len(_INLINE_LEAD)
        )
        return ids or tuple(self.encode(text))

    def decode(self, ids: Sequence[int], *, skip_special: bool = False) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=skip_special))

    # ------------------------------------------------------------------ prompts

    def render_ids(self, content_ids: Sequence[int]) -> list[int]:
        """The full prompt (through the assistant header) around these user-content ids."""
        return [*self._layout.prefix, *content_ids, *self._layout.suffix]

    def render_user(self, content: str) -> list[int]:
        return self.render_ids(self.encode(content))

    @property
    def has_system(self) -> bool:
        """Whether the chat template renders a system message (in a turn of its own, or
        folded into the user's)."""
        return self._layout.system is not None

    def render_with_system(
        self, system: Sequence[int], content_ids: Sequence[int]
    ) -> list[int] | None:
        """The prompt with a system message, or None when the template has no system turn."""
        if self._layout.system is None:
            return None
        before, between = self._layout.system
        return [*before, *system, *between, *content_ids, *self._layout.suffix]

    def user_prefix(self) -> list[int]:
        """The template up to where the user's words start (what leakage sampling starts from)."""
        return list(self._layout.prefix)

    def assistant_header(self) -> list[int]:
        """The template between the user's words and the reply."""
        return list(self._layout.suffix)

    def candidate_vocab(
        self, limit: int | None = None, slice: tuple[int, int] | None = None
    ) -> list[int]:
        """Token ids worth trying as triggers: printable, not special, not byte-fallback, and
        not the template's own scaffolding (inserting a role marker forges a turn, which is no
        trigger). `slice` bounds the id range and `limit` the count for big vocabularies."""
        scaffold = set(self._layout.prefix) | set(self._layout.suffix)
        start, stop = slice if slice is not None else (0, self.tokenizer.get_vocab_size(True))
        chosen: list[int] = []
        for token in range(max(start, 0), min(stop, self.tokenizer.get_vocab_size(True))):
            if token in self.special_ids or token in scaffold:
                continue
            piece = self.tokenizer.id_to_token(token)
            if piece is None or _BYTE_FALLBACK.match(piece):
                continue
            text = self.decode([token]).strip()
            if not text or "\ufffd" in text or not text.isprintable():
                continue
            chosen.append(token)
            if limit is not None and len(chosen) >= limit:
                break
        return chosen

    # ------------------------------------------------------------------ template

    def _build_layout(self, template: str | None) -> _Layout:
        plain = _Layout(
            prefix=(self.bos_id,) if self.bos_id is not None else (), suffix=(), system=None
        )
        if template is None:
            self.template_note = "the model has no chat template: prompts are the bare user content"
            return plain
        jobs = [[USER_MARK], [SYSTEM_MARK, USER_MARK]]
        results = render_sandboxed(template, jobs, self.specials)
        user = results[0]
        if "error" in user:
            self.template_note = f"the chat template failed to render ({user['error']}): prompts are the bare user content"
            return plain
        parts = user["text"].split(USER_MARK)
        if len(parts) != 2:
            self.template_note = "the chat template does not show the user message exactly once: prompts are the bare user content"
            return plain
        system = None
        sys_parts = results[1].get("text", "").split(SYSTEM_MARK)
        if len(sys_parts) == 2 and sys_parts[1].count(USER_MARK) == 1:
            between = sys_parts[1].split(USER_MARK)[0]
            system = (tuple(self.encode(sys_parts[0])), tuple(self.encode(between)))
        return _Layout(tuple(self.encode(parts[0])), tuple(self.encode(parts[1])), system)


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):  # an AddedToken as saved by transformers
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    if path.stat().st_size > DEFAULT_LIMITS.json_file_max:
        raise TokenizerError(f"{path} is larger than {DEFAULT_LIMITS.json_file_max} bytes")
    try:
        data = parse_json(path.read_text(encoding="utf-8"))  # HostileData is a ValueError
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"{path} is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _read_template(model_dir: Path, config: dict[str, Any]) -> str | None:
    """The chat template: chat_template.jinja (transformers 5) or tokenizer_config.json."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file() and jinja.stat().st_size <= TEMPLATE_MAX:
        return jinja.read_text(encoding="utf-8", errors="replace")
    value = config.get("chat_template")
    if isinstance(value, list):  # named templates: the "default" one is what chat uses
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        value = named.get("default")
    return value if isinstance(value, str) and len(value) <= TEMPLATE_MAX else None


def render_sandboxed(
    template: str, jobs: list[list[str]], specials: dict[str, str | None]
) -> list[dict[str, str]]:
    """Render the template for each job (a list of message contents: [user] or [system, user])
    in a sandboxed child process; each result is {"text": ...} or {"error": ...}."""
    request = json.dumps({"template": template, "jobs": jobs, "specials": specials})
    # A small environment: what an interpreter needs to start, and where provscan lives.
    env = {k: v for k, v in os.environ.items() if k in _CHILD_ENV}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    try:
        proc = subprocess.run(  # noqa: S603 - our own interpreter running our own module
            [
                sys.executable,
                "-s",
                "-c",
                "from provscan.probes.tokenizer import _render_main; _render_main()",
            ],
            input=request,
            capture_output=True,
            text=True,
            timeout=RENDER_SECONDS,
            env=env,
            check=False,
        )
        results = json.loads(proc.stdout) if proc.returncode == 0 else None
    except subprocess.TimeoutExpired:
        return [{"error": f"rendering took longer than {RENDER_SECONDS:g} s"}] * len(jobs)
    except ValueError:
        results = None
    if not isinstance(results, list) or len(results) != len(jobs):
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return [{"error": f"the rendering process failed: {reason}"}] * len(jobs)
    return results


def _render_main() -> None:
    """The child: render each job in Jinja's immutable sandbox, bounded, and print JSON."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (RENDER_MEMORY, RENDER_MEMORY))
    except (ImportError, ValueError, OSError):
        pass  # not POSIX: the parent's timeout still bounds the render
    # Imported only now, in the child and under its memory limit: what renders the template.
    from datetime import datetime

    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from provscan.collectors.serialization.chat_template.sandbox import generation_extension

    request = json.loads(sys.stdin.read())

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, generation_extension()]
    )
    env.globals["raise_exception"] = raise_exception
    # A fixed date, so that a prompt renders the same tomorrow (templates print "today").
    env.globals["strftime_now"] = lambda fmt: datetime(2026, 1, 1).strftime(str(fmt))
    env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(
        x, ensure_ascii=False, indent=indent
    )
    results: list[dict[str, str]] = []
    for contents in request["jobs"]:
        roles = ["system", "user"][-len(contents) :]
        messages = [{"role": r, "content": c} for r, c in zip(roles, contents, strict=True)]
        try:
            text = ""
            stream = env.from_string(request["template"]).generate(
                messages=messages, add_generation_prompt=True, **request["specials"]
            )
            for chunk in stream:
                text += chunk
                if len(text) > RENDER_MAX_CHARS:
                    raise ValueError(f"output longer than {RENDER_MAX_CHARS} characters")
            results.append({"text": text})
        except Exception as exc:  # any failure of a hostile template is a result, not a crash
            results.append({"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    sys.stdout.write(json.dumps(results))
