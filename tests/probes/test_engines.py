"""Do the engines give the numbers a direct forward pass gives, and refuse what they must?

A tiny random LlamaForCausalLM (vocab 64, hidden 32, 2 layers, fixed seed) is built into a
temporary directory with safetensors. The transformers engine is checked against plain
transformers; the openai engine, through fixtures/openai_server.py (a vLLM-shaped server
backed by the transformers engine), against the transformers engine itself, number for
number. The vLLM engine cannot run here (vLLM needs a GPU and pins its own torch), so it is
driven through a stand-in `vllm` module shaped like vLLM's LLM / SamplingParams /
RequestOutput, itself backed by the transformers engine.
"""

from __future__ import annotations

import inspect
import math
import socket
import subprocess
import sys
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fixtures.openai_server import OpenAIServer  # noqa: E402
from provscan.errors import UsageError  # noqa: E402
from provscan.probes.engine import Engine, EngineError, SamplingParams  # noqa: E402
from provscan.probes.engines.load import make_engine  # noqa: E402
from provscan.probes.engines.loadable import check_loadable  # noqa: E402
from provscan.probes.engines.openai_engine import OpenAIEngine  # noqa: E402
from provscan.probes.engines.transformers_engine import TransformersEngine  # noqa: E402
from provscan.probes.engines.vllm_engine import (  # noqa: E402
    NOT_INSTALLED,
    VllmEngine,
    continuations,
    first_step,
)

REPO = Path(__file__).resolve().parents[2]
PROMPTS = [[1, 5, 9, 13], [1, 7], [3, 4, 5, 6, 7, 8, 9, 10, 11], [1]]  # lengths differ: padding
EOS = 2


def build_tiny_llama(path: Path) -> Path:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=EOS,
        pad_token_id=0,
        initializer_range=0.2,  # peaked distributions: argmax ties are implausible
        tie_word_embeddings=False,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> TransformersEngine:
    return TransformersEngine(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> Any:
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True)
    return model.eval()


@pytest.fixture(scope="module")
def server(engine: TransformersEngine) -> Any:
    with OpenAIServer(engine, api_key="sk-fixture") as served:
        yield served


@pytest.fixture
def client(server: OpenAIServer) -> OpenAIEngine:
    server.fail_with, server.garbage, server.delay = None, False, 0.0
    server.requests.clear()
    return OpenAIEngine(server.base_url, "fixture-model", api_key="sk-fixture")


def direct_logprobs(reference: Any, prompt: list[int]) -> Any:
    with torch.no_grad():
        logits = reference(torch.tensor([prompt])).logits[0, -1].float()
    return torch.log_softmax(logits, dim=-1)


def assert_close(got: list[Any], want: list[Any], tol: float = 1e-5) -> None:
    """Same top-k ids in the same order, and log-probabilities equal within `tol`."""
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert [t for t, _ in a.top] == [t for t, _ in b.top]
        assert [v for _, v in a.top] == pytest.approx([v for _, v in b.top], abs=tol)
        assert a.chosen == pytest.approx(b.chosen, abs=tol)


def cut_after(tokens: tuple[int, ...], stops: set[int]) -> tuple[int, ...]:
    end = next((i + 1 for i, t in enumerate(tokens) if t in stops), len(tokens))
    return tokens[:end]


# -- transformers engine: the reference ----------------------------------------------------


def test_next_token_matches_a_direct_forward_pass_with_left_padding(engine, reference):
    results = engine.next_token(PROMPTS, top_k=5, token_ids=[EOS, 63])
    assert len(results) == len(PROMPTS)
    for prompt, result in zip(PROMPTS, results, strict=True):
        expected = direct_logprobs(reference, prompt)
        values, ids = expected.topk(5)
        assert [t for t, _ in result.top] == ids.tolist()
        for (_, got), want in zip(result.top, values.tolist(), strict=True):
            assert got == pytest.approx(want, abs=1e-4)
        assert result.chosen == pytest.approx({t: expected[t].item() for t in (EOS, 63)}, abs=1e-4)


def test_numbers_do_not_depend_on_the_batch_size(model_dir, engine):
    one_at_a_time = TransformersEngine(model_dir, batch_size=1)
    assert_close(one_at_a_time.next_token(PROMPTS, top_k=3), engine.next_token(PROMPTS, top_k=3))
    assert engine.greedy(PROMPTS, max_tokens=6) == one_at_a_time.greedy(PROMPTS, max_tokens=6)
    params = SamplingParams(n=3, max_tokens=5, temperature=1.0, top_p=0.95, seed=11)
    assert engine.sample(PROMPTS, params) == one_at_a_time.sample(PROMPTS, params)


def test_greedy_equals_transformers_generate_per_prompt(engine, reference):
    ours = engine.greedy(PROMPTS, max_tokens=10, stop_ids=[EOS])
    for prompt, got in zip(PROMPTS, ours, strict=True):
        ids = torch.tensor([prompt])
        out = reference.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=10,
            eos_token_id=EOS,
            pad_token_id=0,
        )
        assert got == tuple(out[0, len(prompt) :].tolist())  # generate stops after EOS too


def test_greedy_honours_stop_ids_and_max_tokens(engine):
    full = engine.greedy(PROMPTS, max_tokens=8)
    assert all(len(tokens) == 8 for tokens in full)
    stop = full[0][2]
    stopped = engine.greedy(PROMPTS, max_tokens=8, stop_ids=[stop])
    assert stopped[0] == full[0][:3]  # ends after the stop id, which is kept
    assert stopped == [cut_after(tokens, {stop}) for tokens in full]
    assert engine.greedy(PROMPTS, max_tokens=0) == [()] * len(PROMPTS)


def test_sampling_is_reproducible_per_seed(engine):
    def run(seed: int, **kw: Any) -> list[list[tuple[int, ...]]]:
        options = {"n": 4, "max_tokens": 6, "temperature": 1.0, "top_p": 0.95} | kw
        return engine.sample(PROMPTS, SamplingParams(seed=seed, **options))

    first = run(7)
    assert [len(samples) for samples in first] == [4] * len(PROMPTS)
    assert all(len(s) == 6 for samples in first for s in samples)
    assert run(7) == first
    assert run(8) != first
    assert len({s for samples in first for s in samples}) > len(PROMPTS)  # samples differ
    # vLLM's seeding: a prompt's samples depend on the prompt and the seed, not its neighbours
    assert engine.sample(
        [PROMPTS[2]], SamplingParams(n=4, max_tokens=6, temperature=1.0, top_p=0.95, seed=7)
    ) == [first[2]]
    greedy = engine.greedy(PROMPTS, max_tokens=6)
    assert run(7, temperature=0.0) == [[g] * 4 for g in greedy]
    assert run(7, top_p=1e-9) == [[g] * 4 for g in greedy]  # only the argmax is kept


def test_sampling_honours_stop_ids(engine):
    params = SamplingParams(n=4, max_tokens=8, temperature=1.0, top_p=1.0, seed=3)
    samples = engine.sample(PROMPTS, params)
    stop = samples[0][0][1]
    stopped = engine.sample(PROMPTS, replace(params, stop_ids=[stop]))
    assert stopped == [[cut_after(s, {stop}) for s in row] for row in samples]


def test_bad_requests_are_engine_errors(engine):
    with pytest.raises(EngineError, match="outside the vocabulary"):
        engine.next_token([[1, 64]], top_k=3)
    with pytest.raises(EngineError, match="empty"):
        engine.greedy([[]], max_tokens=2)
    with pytest.raises(EngineError, match="top_p"):
        engine.sample(
            PROMPTS, SamplingParams(n=1, max_tokens=2, temperature=1.0, top_p=0.0, seed=0)
        )


def test_info_names_the_engine(engine, model_dir):
    assert isinstance(engine, Engine)
    info = engine.info
    assert (info.name, info.version, info.model) == (
        "transformers",
        transformers.__version__,
        str(model_dir),
    )
    assert (info.device, info.dtype) == ("cpu", "float32")


# -- refusals ------------------------------------------------------------------------------


def write_config(path: Path, **config: Any) -> None:
    import json

    path.mkdir(parents=True, exist_ok=True)
    base = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    (path / "config.json").write_text(json.dumps(base | config))


def test_refuses_a_directory_without_safetensors(tmp_path):
    write_config(tmp_path / "m")
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not loaded")
    with pytest.raises(EngineError, match=r"no \*\.safetensors.*pytorch_model\.bin") as caught:
        TransformersEngine(tmp_path / "m")
    assert str(tmp_path / "m") in str(caught.value)


def test_refuses_auto_map(model_dir, tmp_path):
    import shutil

    copy = Path(shutil.copytree(model_dir, tmp_path / "m"))
    config = (copy / "config.json").read_text()
    (copy / "config.json").write_text(
        config.replace(
            '"model_type"', '"auto_map": {"AutoModelForCausalLM": "evil.Model"}, "model_type"'
        )
    )
    with pytest.raises(EngineError, match=r"config\.json: key 'auto_map'"):
        TransformersEngine(copy)
    write_config(tmp_path / "nested", text_config={"auto_map": {"AutoConfig": "x.Y"}})
    with pytest.raises(EngineError, match=r"'text_config\.auto_map'"):
        check_loadable(tmp_path / "nested")


def test_refuses_a_directory_without_config(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.safetensors").write_bytes(b"")
    with pytest.raises(EngineError, match=r"config\.json: missing"):
        TransformersEngine(tmp_path / "m")


def test_refuses_an_architecture_transformers_does_not_ship(tmp_path):
    write_config(tmp_path / "m", architectures=["EvilForCausalLM"])
    (tmp_path / "m" / "model.safetensors").write_bytes(b"")
    with pytest.raises(
        EngineError, match=r"config\.json: key 'architectures' names 'EvilForCausalLM'"
    ):
        check_loadable(tmp_path / "m")
    write_config(tmp_path / "t", model_type="evil")
    with pytest.raises(EngineError, match=r"key 'model_type' is 'evil'"):
        check_loadable(tmp_path / "t")


def test_refuses_an_adapter_directory(model_dir, tmp_path):
    import shutil

    copy = Path(shutil.copytree(model_dir, tmp_path / "m"))
    (copy / "adapter_config.json").write_text('{"base_model_name_or_path": "org/base"}')
    with pytest.raises(EngineError, match=r"adapter_config\.json: an adapter directory"):
        TransformersEngine(copy)


def test_importing_the_engines_package_imports_no_heavy_library():
    code = (
        "import sys, provscan.probes.engines, provscan.probes.engines.openai_engine\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


# -- openai engine, against a vLLM-shaped server backed by the transformers engine --------


def test_openai_next_token_gives_the_transformers_numbers(client, engine, server):
    direct = engine.next_token(PROMPTS, top_k=5, token_ids=[EOS, 63])
    assert client.next_token(PROMPTS, top_k=5, token_ids=[EOS, 63]) == direct
    sent = server.requests[0]
    assert sent["prompt"] == PROMPTS and sent["logprobs"] == 5
    assert sent["return_tokens_as_token_ids"] is True and sent["ignore_eos"] is True


def test_openai_asks_logprob_token_ids_for_ids_outside_the_top_k(client, engine, server):
    everything = engine.next_token(PROMPTS[:1], top_k=64)[0].top
    outside = [everything[-1][0], everything[-2][0]]  # the two least likely tokens
    direct = engine.next_token(PROMPTS, top_k=2, token_ids=outside)
    assert client.next_token(PROMPTS, top_k=2, token_ids=outside) == direct
    assert [r.get("logprob_token_ids") for r in server.requests] == [None, outside]


def test_openai_reports_minus_inf_when_the_server_lacks_logprob_token_ids(engine):
    with OpenAIServer(engine, logprob_token_ids=False) as old:
        client = OpenAIEngine(old.base_url, "fixture-model")
        top = engine.next_token(PROMPTS[:1], top_k=64)[0].top
        inside, outside = top[0][0], top[-1][0]
        [result] = client.next_token(PROMPTS[:1], top_k=3, token_ids=[inside, outside])
    assert result.chosen[inside] == pytest.approx(top[0][1], abs=1e-6)
    assert result.chosen[outside] == -math.inf


def test_openai_greedy_and_sample_give_the_transformers_tokens(client, engine):
    assert client.greedy(PROMPTS, max_tokens=8, stop_ids=[EOS]) == engine.greedy(
        PROMPTS, max_tokens=8, stop_ids=[EOS]
    )
    full = engine.greedy(PROMPTS, max_tokens=8)
    stop = full[0][2]
    assert client.greedy(PROMPTS, max_tokens=8, stop_ids=[stop]) == [
        cut_after(t, {stop}) for t in full
    ]
    options: dict[str, Any] = {"n": 3, "max_tokens": 6, "temperature": 0.8, "top_p": 0.9, "seed": 5}
    params = SamplingParams(**options)
    assert client.sample(PROMPTS, params) == engine.sample(PROMPTS, params)


def test_openai_batches_requests(server, engine):
    client = OpenAIEngine(server.base_url, "fixture-model", api_key="sk-fixture", batch_size=2)
    server.requests.clear()
    assert client.greedy(PROMPTS, max_tokens=3) == engine.greedy(PROMPTS, max_tokens=3)
    assert [len(r["prompt"]) for r in server.requests] == [2, 2]


def test_openai_info_reads_the_server_version(client, server):
    assert client.info.name == "openai"
    assert client.info.model == "fixture-model"
    assert client.info.version == server.version


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_openai_refused_api_key_is_an_engine_error(server, key):
    with pytest.raises(EngineError, match="HTTP 401: Unauthorized") as caught:
        OpenAIEngine(server.base_url, "fixture-model", api_key=key)
    assert "API key" in str(caught.value)


def test_openai_server_error_is_an_engine_error(client, server):
    server.fail_with = (500, "CUDA error: an illegal memory access was encountered")
    with pytest.raises(EngineError, match="HTTP 500: CUDA error: an illegal memory access"):
        client.next_token(PROMPTS, top_k=3)


def test_openai_timeout_is_an_engine_error(server):
    client = OpenAIEngine(server.base_url, "fixture-model", api_key="sk-fixture", timeout=0.3)
    server.delay = 1.5
    try:
        with pytest.raises(EngineError, match=r"no answer within 0\.3 s"):
            client.greedy(PROMPTS, max_tokens=2)
    finally:
        server.delay = 0.0


def test_openai_garbage_reply_is_an_engine_error(client, server):
    server.garbage = True
    with pytest.raises(EngineError, match="malformed reply.*not JSON"):
        client.greedy(PROMPTS, max_tokens=2)


def test_openai_too_many_logprobs_is_an_engine_error(client):
    with pytest.raises(EngineError, match="HTTP 400: Requested sample logprobs of 21") as caught:
        client.next_token(PROMPTS, top_k=21)
    assert "--max-logprobs" in str(caught.value)


def test_openai_unknown_model_and_unreachable_server(server):
    with pytest.raises(EngineError, match="does not serve 'other'.*fixture-model"):
        OpenAIEngine(server.base_url, "other", api_key="sk-fixture")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EngineError, match="cannot reach"):
        OpenAIEngine(f"http://127.0.0.1:{port}/v1", "m", timeout=5)


def test_make_engine_builds_each_engine(model_dir, server):
    flags: dict[str, Any] = {"device": None, "batch_size": 8, "tensor_parallel_size": 1}
    local = make_engine("transformers", model_dir, base_url=None, served_model=None, **flags)
    assert isinstance(local, TransformersEngine) and local.info.device == "cpu"
    remote = make_engine(
        "openai",
        model_dir,
        base_url=server.base_url,
        served_model=None,
        api_key="sk-fixture",
        **flags,
    )
    assert isinstance(remote, OpenAIEngine) and remote.info.model == "fixture-model"
    with pytest.raises(UsageError, match="--base-url"):
        make_engine("openai", model_dir, base_url=None, served_model=None, **flags)
    with pytest.raises(UsageError, match="unknown engine"):
        make_engine("onnx", model_dir, base_url=None, served_model=None, **flags)


# -- vllm engine, through a stand-in for vLLM ----------------------------------------------
# vLLM cannot be installed on a CPU CI machine (it needs CUDA and pins its own torch), so
# these tests drive VllmEngine through a fake `vllm` module whose LLM.generate returns
# objects shaped like vLLM's RequestOutput / CompletionOutput / Logprob, computed by the
# transformers engine. What they prove: the arguments VllmEngine passes, and its parsing.


@dataclass
class FakeLogprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class FakeCompletionOutput:
    index: int
    token_ids: list[int]
    logprobs: list[dict[int, FakeLogprob]] | None
    text: str = ""
    finish_reason: str = "length"


@dataclass
class FakeRequestOutput:
    prompt_token_ids: list[int]
    outputs: list[FakeCompletionOutput]


@dataclass
class FakeSamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    max_tokens: int = 16
    logprobs: int | None = None
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    detokenize: bool = True
    logprob_token_ids: list[int] | None = None


@dataclass
class OldFakeSamplingParams:  # a vLLM from before logprob_token_ids
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    max_tokens: int = 16
    logprobs: int | None = None
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    detokenize: bool = True


def fake_vllm(reference: TransformersEngine, params_class: type = FakeSamplingParams) -> Any:
    class LLM:
        created: list[dict[str, Any]] = []

        def __init__(self, **options: Any) -> None:
            LLM.created.append(options)

        def generate(
            self, prompts: list[dict[str, Any]], params: list[Any], use_tqdm: bool
        ) -> list[Any]:
            return [
                self._one(p["prompt_token_ids"], sp) for p, sp in zip(prompts, params, strict=True)
            ]

        def _one(self, prompt: list[int], sp: Any) -> FakeRequestOutput:
            stops = sp.stop_token_ids
            if sp.temperature == 0:
                samples = [
                    reference.greedy([prompt], max_tokens=sp.max_tokens, stop_ids=stops)[0]
                ] * sp.n
            else:
                samples = reference.sample(
                    [prompt], SamplingParams(n=sp.n, max_tokens=sp.max_tokens,
                    temperature=sp.temperature, top_p=sp.top_p, seed=sp.seed, stop_ids=stops),
                )[0]  # fmt: skip
            wanted = getattr(sp, "logprob_token_ids", None)
            outputs = [
                FakeCompletionOutput(j, list(s), self._logprobs(prompt, s, sp.logprobs, wanted))
                for j, s in enumerate(samples)
            ]
            return FakeRequestOutput(prompt, outputs[::-1])  # parsing must sort by index

        def _logprobs(
            self, prompt: list[int], tokens: tuple[int, ...], k: int | None, ids: Any
        ) -> Any:
            if k is None and not ids:
                return None
            steps = []
            for t, token in enumerate(tokens):
                step = reference.next_token(
                    [prompt + list(tokens[:t])], top_k=k or 0, token_ids=[token, *(ids or [])]
                )[0]
                entries = {token: FakeLogprob(step.chosen[token])}  # the sampled token first
                for other, value in [(i, step.chosen[i]) for i in ids] if ids else step.top:
                    entries.setdefault(other, FakeLogprob(value))
                steps.append(entries)
            return steps

    vllm = types.ModuleType("vllm")
    vllm.__version__ = "0.0.0+fake"  # type: ignore[attr-defined]
    vllm.LLM = LLM  # type: ignore[attr-defined]
    vllm.SamplingParams = params_class  # type: ignore[attr-defined]
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict  # type: ignore[attr-defined]  # a TypedDict: a dict at run time
    vllm.inputs = inputs  # type: ignore[attr-defined]
    return vllm


def install(monkeypatch: pytest.MonkeyPatch, vllm: Any) -> None:
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", vllm.inputs)


def test_vllm_missing_is_an_engine_error_saying_how_to_install(model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm now raises ImportError
    with pytest.raises(EngineError) as caught:
        VllmEngine(model_dir)
    assert str(caught.value) == NOT_INSTALLED


def test_vllm_engine_loads_safely_and_parses_vllm_outputs(model_dir, engine, monkeypatch):
    vllm = fake_vllm(engine)
    install(monkeypatch, vllm)
    served = VllmEngine(model_dir, tensor_parallel_size=2, distributed_executor_backend="ray")
    options = vllm.LLM.created[-1]
    assert options["trust_remote_code"] is False and options["load_format"] == "safetensors"
    assert options["skip_tokenizer_init"] is True and options["enable_prefix_caching"] is True
    assert options["tensor_parallel_size"] == 2 and options["distributed_executor_backend"] == "ray"
    assert (served.info.name, served.info.version) == ("vllm", "0.0.0+fake")

    everything = engine.next_token(PROMPTS[:1], top_k=64)[0].top
    ids = [EOS, everything[-1][0]]
    # vLLM is not batch-invariant (nor is this stand-in, which runs one request at a time)
    want = engine.next_token(PROMPTS, top_k=4, token_ids=ids)
    assert_close(served.next_token(PROMPTS, top_k=4, token_ids=ids), want)
    assert served.greedy(PROMPTS, max_tokens=6, stop_ids=[EOS]) == engine.greedy(
        PROMPTS, max_tokens=6, stop_ids=[EOS]
    )
    options2: dict[str, Any] = {
        "n": 3,
        "max_tokens": 5,
        "temperature": 1.0,
        "top_p": 0.9,
        "seed": 4,
    }
    params = SamplingParams(**options2)
    assert served.sample(PROMPTS, params) == engine.sample(PROMPTS, params)


def test_vllm_without_logprob_token_ids_reports_minus_inf(model_dir, engine, monkeypatch):
    install(monkeypatch, fake_vllm(engine, OldFakeSamplingParams))
    served = VllmEngine(model_dir)
    top = engine.next_token(PROMPTS[:1], top_k=64)[0].top
    [result] = served.next_token(PROMPTS[:1], top_k=3, token_ids=[top[0][0], top[-1][0]])
    assert result.chosen[top[0][0]] == pytest.approx(top[0][1], abs=1e-6)
    assert result.chosen[top[-1][0]] == -math.inf


def test_vllm_refuses_like_the_transformers_engine(tmp_path, engine, monkeypatch):
    install(monkeypatch, fake_vllm(engine))
    write_config(tmp_path / "m", auto_map={"AutoModel": "evil.Model"})
    with pytest.raises(EngineError, match="auto_map"):
        VllmEngine(tmp_path / "m")


def test_vllm_output_parsing_fails_closed():
    output = FakeRequestOutput(
        [1], [FakeCompletionOutput(1, [4, 2], None), FakeCompletionOutput(0, [3], None)]
    )
    assert continuations(output, 2) == [(3,), (4, 2)]
    with pytest.raises(EngineError, match="2 samples for n=3"):
        continuations(output, 3)
    with pytest.raises(EngineError, match="no log-probabilities"):
        first_step(output)
    step = FakeRequestOutput([1], [FakeCompletionOutput(0, [3], [{3: FakeLogprob(-0.5)}])])
    assert first_step(step) == {3: -0.5}


def test_the_engine_uses_no_deprecated_transformers_api(model_dir: Path) -> None:
    """Every engine call in a fresh process (transformers warns once per process), with
    FutureWarning and DeprecationWarning as errors and transformers' own log captured: no
    deprecation comes from provscan's calls (a KV cache passed by a renamed keyword did)."""
    script = f"""
import warnings
from pathlib import Path
warnings.simplefilter("error", FutureWarning)
warnings.simplefilter("error", DeprecationWarning)
from provscan.probes.engine import SamplingParams
from provscan.probes.engines.transformers_engine import TransformersEngine
engine = TransformersEngine(Path({str(model_dir)!r}))
engine.next_token([[1, 5, 9]], top_k=3)
engine.greedy([[1, 5, 9], [1]], max_tokens=4, stop_ids=[{EOS}])
engine.sample([[1, 5]], SamplingParams(n=2, max_tokens=3, temperature=1.0, top_p=0.9, seed=1))
print("ok", engine._cache_arg)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")
    assert "deprecat" not in done.stderr.lower(), done.stderr[-3000:]
    # The keyword the installed transformers declares for its KV cache.
    declared = inspect.signature(transformers.LlamaForCausalLM.forward).parameters
    assert done.stdout.split()[1] == ("cache" if "cache" in declared else "past_key_values")
