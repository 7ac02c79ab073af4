"""`provscan sign --sigstore` without a network or an identity token: one line saying which,
exit 3 (2 for a token that cannot work), and no signature file.

The network is made to fail in this process, the same way on every machine: each name
resolves to 127.0.0.1 and each connection is refused (a closed port would do the same, but
not every sandbox lets a test open one). Sigstore's TUF cache goes to the test's own folder.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import jwt
import pytest

from fixtures.models import build_demo_model

UNREACHABLE_HINT = (
    "  hint: keyless signing needs HTTPS access to Sigstore (check the connection and "
    "HTTPS_PROXY); without it, sign with --key PEM"
)
# Whatever would make this process look like a CI job with an OIDC token (id's detectors).
CI_VARIABLES = (
    "GITHUB_ACTIONS",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "GOOGLE_SERVICE_ACCOUNT_NAME",
    "BUILDKITE",
    "GITLAB_CI",
    "SIGSTORE_ID_TOKEN",
    "CIRCLECI",
)


class Terminal:
    """Standard input as a person at a terminal has it (pytest's is not a terminal)."""

    def isatty(self) -> bool:
        return True

    def readline(self) -> str:
        raise AssertionError("the sign-in must not be reached offline")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_demo_model(tmp_path / "tiny-llama")


@pytest.fixture
def looked_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """The host names this process tried to reach; every connection is refused."""
    hosts: list[str] = []

    def resolve(host: object, port: object, *args: object, **kwargs: object) -> list[object]:
        hosts.append(str(host))
        number = int(port) if isinstance(port, int | str) and str(port).isdigit() else 443
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", number))]

    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # sigstore-python keeps its TUF metadata under the user's data and cache folders.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return hosts


def token(**claims: object) -> str:
    """An OIDC token shaped like a Sigstore one; nothing offline checks its signature."""
    now = int(time.time())
    body = {
        "iss": "https://oauth2.sigstore.dev/auth",
        "sub": "ci@example.com",
        "email": "ci@example.com",
        "aud": "sigstore",
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    return jwt.encode(body, "an HMAC key only for this test, 32+ bytes", algorithm="HS256")


def nothing_written(model: Path) -> bool:
    return not [p.name for p in model.iterdir() if p.name.endswith(("model.sig", "provscan-tmp"))]


def test_sigstore_offline_at_a_terminal_says_it_could_not_be_reached(
    model: Path, cli, looked_up: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", Terminal())
    result = cli("sign", model, "--sigstore")
    assert result.code == 3, result.err
    assert result.err.splitlines() == [
        "provscan: error: Sigstore could not be reached (tuf-repo-cdn.sigstore.dev: "
        "connection refused); nothing was signed",
        UNREACHABLE_HINT,
    ]
    assert looked_up and set(looked_up) == {"tuf-repo-cdn.sigstore.dev"}
    assert nothing_written(model)


def test_sigstore_offline_with_a_token_says_it_could_not_be_reached(
    model: Path, cli, looked_up: list[str]
) -> None:
    result = cli("sign", model, "--sigstore", "--identity-token", token())
    assert result.code == 3, result.err
    assert result.err.splitlines() == [
        "provscan: error: Sigstore could not be reached (tuf-repo-cdn.sigstore.dev: "
        "connection refused); nothing was signed",
        UNREACHABLE_HINT,
    ]
    assert nothing_written(model)


def test_staging_names_the_staging_host(model: Path, cli, looked_up: list[str]) -> None:
    result = cli("sign", model, "--sigstore", "--staging", "--identity-token", token())
    assert result.code == 3, result.err
    assert result.err.splitlines()[0] == (
        "provscan: error: Sigstore could not be reached (tuf-repo-cdn.sigstage.dev: "
        "connection refused); nothing was signed"
    )


def test_sigstore_without_a_token_or_a_terminal_asks_for_one(
    model: Path, cli, looked_up: list[str]
) -> None:
    """A CI job: no --identity-token, no ambient credentials, no one to sign in."""
    result = cli("sign", model, "--sigstore")
    assert result.code == 3, result.err
    lines = result.err.splitlines()
    assert lines[0] == (
        "provscan: error: no identity token for --sigstore, and no terminal for the "
        "interactive sign-in"
    )
    assert len(lines) == 2 and "--identity-token TOKEN" in lines[1] and "--key PEM" in lines[1]
    assert looked_up == []  # refused before any network use
    assert nothing_written(model)


def test_ambient_credentials_outside_ci_are_refused(
    model: Path, cli, looked_up: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # On a Google Cloud machine id reads its product name from this file and would ask the
    # metadata server for a token: point it at nothing, so every host is "not CI".
    monkeypatch.setattr("id._internal.oidc.ambient._GCP_PRODUCT_NAME_FILE", str(tmp_path / "no"))
    result = cli("sign", model, "--sigstore", "--use-ambient-credentials")
    assert result.code == 3, result.err
    lines = result.err.splitlines()
    assert lines[0] == (
        "provscan: error: --use-ambient-credentials: found no CI identity token (looked for "
        "GitHub Actions, GitLab CI's SIGSTORE_ID_TOKEN, Buildkite, CircleCI, Google Cloud)"
    )
    assert len(lines) == 2 and "id-token: write" in lines[1]
    assert looked_up == []
    assert nothing_written(model)


def test_ambient_credentials_without_the_github_permission_say_so(
    model: Path, cli, looked_up: list[str]
) -> None:
    """GitHub Actions without `permissions: id-token: write`: the job has no token URL."""
    result = cli(
        "sign", model, "--sigstore", "--use-ambient-credentials", env={"GITHUB_ACTIONS": "true"}
    )
    assert result.code == 3, result.err
    first = result.err.splitlines()[0]
    assert first.startswith(
        "provscan: error: --use-ambient-credentials: no identity token from this CI job ("
    )
    assert "ACTIONS_ID_TOKEN_REQUEST_TOKEN" in first
    assert looked_up == []
    assert nothing_written(model)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("not-a-jwt", "not a JWT"),
        (token(aud="someone-else"), 'its audience is not "sigstore"'),
        (token(iat=1_000_000, exp=1_000_600), "it has expired"),
        (token(sub=None), "it has no 'sub' claim"),
    ],
    ids=["not-a-jwt", "other-audience", "expired", "no-subject"],
)
def test_an_unusable_identity_token_is_a_usage_error(
    model: Path, cli, looked_up: list[str], value: str, why: str
) -> None:
    result = cli("sign", model, "--sigstore", "--identity-token", value)
    assert result.code == 2, result.err
    lines = result.err.splitlines()
    assert lines[0] == (
        f"provscan: error: --identity-token: not a usable Sigstore identity token ({why})"
    )
    assert len(lines) == 2
    assert looked_up == []
    assert nothing_written(model)
