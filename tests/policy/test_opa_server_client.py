"""The OPA server backend fails closed: every HTTP, JSON or policy problem is a PolicyError.

Driven against fixtures/opa_server.py (a stand-in OPA server: no OPA binary can be
installed here), with canned faults for what a broken or hostile server might send.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from fixtures.opa_server import Canned, OpaServer
from provscan.errors import ExitCode, PolicyError, UsageError
from provscan.policy import opa_http, opa_server
from provscan.policy.backends import PolicyBackend
from provscan.policy.engine import evaluate
from provscan.policy.opa_server import DECISION_PATH, push_packs
from provscan.policy.packs import effective_config, load_packs, served_digest, served_modules
from provscan.policy.testing import run_policy_tests
from provscan.report import Decision, Report
from provscan.resources import default_policy_dir

DEFAULT = default_policy_dir()
PRODUCTION = DEFAULT.parent / "production"
CLEAN = DEFAULT / "tests" / "clean_approve" / "input.json"
TOKEN_ENV = "PROVSCAN_TEST_OPA_TOKEN"


def clean_report() -> Report:
    return Report.model_validate(json.loads(CLEAN.read_text()))


@pytest.fixture
def opa() -> Iterator[OpaServer]:
    with OpaServer() as server:
        push_packs(PolicyBackend("opa-server", opa_url=server.url), [DEFAULT], {})
        yield server


def backend(server: OpaServer, **kwargs: str) -> PolicyBackend:
    return PolicyBackend("opa-server", opa_url=server.url, **kwargs)


def fails(server: OpaServer, match: str, timeout_s: float = 10.0, **kwargs: str) -> PolicyError:
    with pytest.raises(PolicyError, match=match) as caught:
        evaluate(clean_report(), [], {}, timeout_s=timeout_s, backend=backend(server, **kwargs))
    assert caught.value.exit_code is ExitCode.INCOMPLETE  # exit 3: could not complete
    return caught.value


def test_the_server_decides_and_policy_info_describes_its_policy(opa: OpaServer) -> None:
    verdict = evaluate(clean_report(), [DEFAULT], {}, backend=backend(opa))
    assert verdict.decision is Decision.APPROVE
    packs = load_packs([DEFAULT])
    expected = served_digest(served_modules(packs), effective_config(packs, {}))
    assert verdict.policy.digest == expected
    assert (verdict.policy.engine, verdict.policy.packs) == ("opa-server", ("default",))
    assert verdict.policy.engine_version == "0.0.0-provscan-fixture"
    # Without local packs the server's own policy decides, under the same digest.
    alone = evaluate(clean_report(), [], {}, backend=backend(opa))
    assert alone.policy.digest == expected and alone.policy.packs == ("default",)


def test_check_never_uploads(opa: OpaServer) -> None:
    opa.requests.clear()
    evaluate(clean_report(), [DEFAULT], {}, backend=backend(opa))
    assert {method for method, _, _ in opa.requests} == {"GET", "POST"}


def test_bundle_revisions_are_recorded(opa: OpaServer) -> None:
    opa.bundles.update({"authz": "r1", "models": "r7"})
    verdict = evaluate(clean_report(), [], {}, backend=backend(opa))
    assert verdict.policy.engine_version.endswith("(bundles: authz@r1, models@r7)")


def test_a_different_pack_or_config_on_the_server_is_refused(opa: OpaServer) -> None:
    with pytest.raises(PolicyError, match="missing on the server: provscan/production"):
        evaluate(clean_report(), [PRODUCTION], {}, backend=backend(opa))
    with pytest.raises(PolicyError, match="data.provscan.config differs"):
        evaluate(
            clean_report(), [DEFAULT], {"severity_levels": {"low": "none"}}, backend=backend(opa)
        )
    with pytest.raises(UsageError, match="its own data.provscan.config"):
        evaluate(clean_report(), [], {"severity_levels": {"low": "none"}}, backend=backend(opa))


def test_push_replaces_stale_modules_and_keeps_foreign_ones(opa: OpaServer) -> None:
    opa.policies["provscan/old/gone.rego"] = "package provscan.main\n"
    opa.policies["system/authz.rego"] = "package system.authz\n"
    result = push_packs(backend(opa), [PRODUCTION], {"x": 1})
    assert result.deleted == ("provscan/old/gone.rego",)
    assert result.uploaded == ("provscan/production/production.rego",)
    assert "provscan/default/main.rego" in result.unchanged
    assert "system/authz.rego" in opa.policies  # not provscan's: left alone
    verdict = evaluate(clean_report(), [PRODUCTION], {"x": 1}, backend=backend(opa))
    assert verdict.policy.digest == result.digest  # includes the foreign module


def test_a_foreign_module_in_a_provscan_package_is_a_mismatch(opa: OpaServer) -> None:
    opa.policies["elsewhere.rego"] = "package provscan.main\n"
    with pytest.raises(PolicyError, match="outside provscan/ but in a provscan package"):
        evaluate(clean_report(), [DEFAULT], {}, backend=backend(opa))


def test_server_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = PolicyBackend("opa-server", opa_url=f"http://127.0.0.1:{port}")
    with pytest.raises(PolicyError, match=f"127.0.0.1:{port}/v1/policies could not be reached"):
        evaluate(clean_report(), [], {}, backend=down)


def test_401_without_and_with_a_wrong_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with OpaServer(token="s3cret") as server:
        fails(server, "HTTP 401: unauthorized.*wants a bearer token")
        monkeypatch.setenv(TOKEN_ENV, "wrong")
        error = fails(
            server, f"HTTP 401.*the token in {TOKEN_ENV} was refused", token_env=TOKEN_ENV
        )
        assert "wrong" not in str(error)
        monkeypatch.setenv(TOKEN_ENV, "s3cret")
        push_packs(backend(server, token_env=TOKEN_ENV), [DEFAULT], {})
        verdict = evaluate(clean_report(), [], {}, backend=backend(server, token_env=TOKEN_ENV))
        assert verdict.decision is Decision.APPROVE
        assert {auth for _, _, auth in server.requests[-3:]} == {"Bearer s3cret"}


def test_403_from_an_authorization_policy(opa: OpaServer) -> None:
    body = b'{"code": "unauthorized", "message": "request rejected by administrative policy"}'
    opa.canned[("POST", DECISION_PATH)] = Canned(403, body)
    fails(opa, "HTTP 403: unauthorized: request rejected by administrative policy.*forbids")


def test_500_with_an_opa_error_body(opa: OpaServer) -> None:
    body = {
        "code": "internal_error",
        "message": "1 error occurred",
        "errors": [{"message": "eval_conflict_error", "location": {"file": "x.rego", "row": 3}}],
    }
    opa.canned[("POST", DECISION_PATH)] = Canned(500, json.dumps(body).encode())
    fails(opa, r"HTTP 500: internal_error: 1 error occurred; x.rego:3: eval_conflict_error")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html>gateway</html>", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b"{}", r"data.provscan.main is undefined"),  # no "result": undefined
        (b'{"result": [1]}', "is not an object"),
        (b'{"result": {"deny": {"a": true}}}', "'deny' is not a set"),
        (b'{"result": {"deny": [{"msg": "no rule"}]}}', "no string 'rule'"),
    ],
)
def test_malformed_answers_fail_closed(opa: OpaServer, body: bytes, match: str) -> None:
    opa.canned[("POST", DECISION_PATH)] = Canned(200, body)
    fails(opa, match)


def test_a_huge_response_is_refused(opa: OpaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    opa.canned[("POST", DECISION_PATH)] = Canned(200, b" " * (opa_http.MAX_RESPONSE + 1))
    fails(opa, "larger than")
    # Without a Content-Length the bytes are counted as they arrive.
    monkeypatch.setattr(opa_http, "MAX_RESPONSE", 1000)
    opa.canned[("POST", DECISION_PATH)] = Canned(
        200, b'{"result": "' + b"x" * 5000 + b'"}', length=False
    )
    fails(opa, "larger than 1000 bytes")


def test_a_stalled_server_times_out(opa: OpaServer) -> None:
    opa.canned[("POST", DECISION_PATH)] = Canned(200, b"{}", delay=5)
    start = time.monotonic()
    fails(opa, "timed out after 1 s", timeout_s=1.0)
    assert time.monotonic() - start < 3


def test_a_redirect_is_not_followed(opa: OpaServer) -> None:
    opa.canned[("GET", "/v1/policies")] = Canned(
        307, b"", {"Location": "http://evil.example/v1/policies"}
    )
    fails(opa, "307 .*redirect to http://evil.example/v1/policies.*does not follow")
    assert not any("evil" in path for _, path, _ in opa.requests)


def test_a_compressed_body_is_refused(opa: OpaServer) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    opa.canned[("POST", DECISION_PATH)] = Canned(200, b"\x1f\x8b...", headers)
    fails(opa, "gzip-encoded body")


def test_token_and_url_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="not set"):
        PolicyBackend("opa-server", opa_url="https://opa.example", token_env=TOKEN_ENV).token()
    monkeypatch.setenv(TOKEN_ENV, "t")
    with pytest.raises(UsageError, match="plain http"):
        PolicyBackend("opa-server", opa_url="http://opa.example:8181", token_env=TOKEN_ENV).token()
    assert (
        PolicyBackend("opa-server", opa_url="https://opa.example/", token_env=TOKEN_ENV).token()
        == "t"
    )
    with pytest.raises(UsageError, match="credentials"):
        PolicyBackend("opa-server", opa_url="https://user:pw@opa.example")
    with pytest.raises(UsageError, match="http:// or https://"):
        PolicyBackend("opa-server", opa_url="file:///etc/passwd")
    with pytest.raises(UsageError, match="needs the server's URL"):
        PolicyBackend("opa-server")
    with pytest.raises(UsageError, match="opa-server backend only"):
        PolicyBackend("regopy", opa_url="https://opa.example")
    assert (
        PolicyBackend("opa-server", opa_url="https://opa.example/").opa_url == "https://opa.example"
    )


def test_push_surfaces_a_refused_module(opa: OpaServer) -> None:
    body = (
        b'{"code": "invalid_parameter", "message": "error(s) occurred while compiling module(s)"}'
    )
    opa.canned[("PUT", "/v1/policies/provscan/default/main.rego")] = Canned(400, body)
    opa.policies.clear()
    with pytest.raises(
        PolicyError, match="refused the policy modules: PUT provscan/default/main.rego"
    ):
        push_packs(backend(opa), [DEFAULT], {})


def test_a_policy_change_during_the_evaluation_fails_closed(
    opa: OpaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = opa_server.fetch_server_policy
    calls: list[int] = []

    def fetch_then_change(client: opa_http.OpaClient) -> opa_server.ServerPolicy:
        calls.append(1)
        policy = real(client)
        if len(calls) == 1:  # a bundle activates right after the first read
            opa.policies["provscan/default/late.rego"] = "package provscan.main\n"
        return policy

    monkeypatch.setattr(opa_server, "fetch_server_policy", fetch_then_change)
    fails(opa, "changed during the evaluation")


def test_policy_test_runs_the_table_on_a_server_and_restores_the_base_config() -> None:
    with OpaServer() as server:
        results = run_policy_tests([PRODUCTION], {"x": 1}, backend=backend(server))
        assert results and all(r.passed for r in results), [r for r in results if not r.passed]
        packs = load_packs([PRODUCTION])
        assert server.data["provscan"]["config"] == effective_config(packs, {"x": 1})
