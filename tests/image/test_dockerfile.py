"""docker/Dockerfile: hadolint finds nothing (infos included), the rules the Airbyte platform and
a reproducible build need hold (each rule is shown to catch its mistake), and, where a Docker
engine answers, the image builds and answers ``spec`` with no network."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dbkit.testing.servers.containers import docker_unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
PINNED_IMAGE = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*@sha256:[0-9a-f]{64}$")


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile: continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.removesuffix("\\") if current else stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
            current = ""
    return out


def _assignments(text: str) -> dict[str, str]:
    """``KEY=value KEY2="value 2"`` (ENV, LABEL, ARG) -> a dict."""
    return {
        m.group(1): m.group(3) if m.group(3) is not None else m.group(4) for m in _ASSIGNMENT.finditer(text)
    }


_ASSIGNMENT = re.compile(r'([\w.-]+)=("([^"]*)"|(\S*))')


def problems(text: str) -> list[str]:
    """What keeps this Dockerfile from a reproducible, platform-compatible connector image."""
    found: list[str] = []
    steps = instructions(text)
    args: dict[str, str] = {}
    for keyword, rest in steps:
        if keyword == "ARG":
            args.update(_assignments(rest))
    for keyword, rest in steps:
        if keyword == "FROM":
            image = rest.split()[0]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), image)
            if not PINNED_IMAGE.match(image):
                found.append(f"FROM {rest}: the base must be pinned by version and digest (got {image!r})")
        if keyword == "RUN":
            for command in re.split(r"&&|;|\|\|", rest):
                words = command.split()
                if words[:2] == ["pip", "install"]:
                    if "--no-deps" not in words or "--no-cache-dir" not in words:
                        found.append(f"pip install without --no-deps and --no-cache-dir: {command.strip()}")
                    from_lock = "--require-hashes" in words and ("-r" in words or "--requirement" in words)
                    if not from_lock and "--no-index" not in words:
                        found.append(
                            f"pip install neither from a hashed lock nor local wheels: {command.strip()}"
                        )
                if words[:2] == ["pip", "wheel"] and not {"--no-deps", "--no-index"} <= set(words):
                    found.append(f"pip wheel fetching from an index: {command.strip()}")
    users = [rest for keyword, rest in steps if keyword == "USER"]
    if not users or not re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]):
        found.append(f"the last USER must be a numeric uid:gid other than root (got {users[-1:]})")
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    for keyword, rest in steps:
        if keyword == "ENV":
            env.update(_assignments(rest))
        if keyword == "LABEL":
            labels.update(_assignments(rest))
    entrypoints = [rest for keyword, rest in steps if keyword == "ENTRYPOINT"]
    try:
        entrypoint = json.loads(entrypoints[-1]) if entrypoints else None
    except json.JSONDecodeError:
        entrypoint = None
    if not isinstance(entrypoint, list) or not entrypoint:
        found.append("ENTRYPOINT must be in exec form (a JSON list)")
    elif env.get("AIRBYTE_ENTRYPOINT") != " ".join(entrypoint) or not entrypoint[0].startswith("/"):
        found.append(
            f"AIRBYTE_ENTRYPOINT ({env.get('AIRBYTE_ENTRYPOINT')!r}) must equal the ENTRYPOINT "
            f"({' '.join(entrypoint)!r}), an absolute path"
        )
    found.extend(
        f"LABEL {name} missing" for name in ("io.airbyte.name", "io.airbyte.version") if not labels.get(name)
    )
    for keyword, rest in steps:
        if keyword == "COPY" and not rest.startswith("--from"):
            sources = rest.split()[:-1]
            found.extend(
                f"COPY {s}: no such file here" for s in sources if "$" not in s and not (ROOT / s).exists()
            )
    return found


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_an_unpinned_install_and_a_named_user() -> None:
    bad = "FROM python:3.11.14-slim-bookworm\nRUN pip install dbkit\nUSER airbyte\n"
    done = subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "info", "-"],
        input=bad,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert {"DL3013", "DL3042", "DL3066"} <= set(re.findall(r"DL\d{4}", done.stdout))


def test_the_dockerfile_keeps_every_rule() -> None:
    assert problems(DOCKERFILE.read_text()) == []


MISTAKES = {
    "unpinned base": (r"ARG PYTHON_IMAGE=\S+", "ARG PYTHON_IMAGE=python:3.11-slim"),
    "base without digest": (r"@sha256:[0-9a-f]{64}", ""),
    "named user": (r"^USER .*$", "USER airbyte"),
    "root user": (r"^USER .*$", "USER 0:0"),
    "unpinned pip install": (
        r"pip install --no-cache-dir --no-deps --require-hashes",
        "pip install --no-cache-dir",
    ),
    "resolving pip install": (
        r"--no-deps --require-hashes --only-binary=:all: -r /tmp",
        "--require-hashes -r /tmp",
    ),
    "pip wheel from an index": (r"--no-build-isolation --no-index", "--no-build-isolation"),
    "entrypoint mismatch": (r'AIRBYTE_ENTRYPOINT="[^"]*"', 'AIRBYTE_ENTRYPOINT="/usr/local/bin/source-x"'),
    "relative entrypoint": (r'\["/entrypoint.sh"\]', '["entrypoint.sh"]'),
    "shell-form entrypoint": (r'ENTRYPOINT \["/entrypoint.sh"\]', "ENTRYPOINT /entrypoint.sh"),
    "no version label": (r'io\.airbyte\.version="\$\{VERSION\}"', 'org.example.version="1"'),
    "missing lock": (r"^COPY docker/requirements-build\.lock", "COPY docker/requirements-missing.lock"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_rule_catches_its_mistake(mistake: str) -> None:
    pattern, replacement = MISTAKES[mistake]
    text = DOCKERFILE.read_text()
    broken = re.sub(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert broken != text, f"the mistake {mistake!r} no longer applies to the Dockerfile"
    assert problems(broken), f"no rule caught: {mistake}"


@pytest.mark.docker
@pytest.mark.slow
def test_the_image_builds_and_answers_spec_without_network() -> None:
    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no Docker engine answers, so the image is not built here: {reason}")
    tag = "dbkit/source-sqlite:test"
    build = [
        "docker",
        "build",
        "-f",
        "docker/Dockerfile",
        "--build-arg",
        "CONNECTOR=source-sqlite",
        "-t",
        tag,
        ".",
    ]
    subprocess.run(build, cwd=ROOT, check=True)
    out = subprocess.run(
        ["docker", "run", "--rm", "-i", "--network", "none", tag, "spec"],
        capture_output=True,
        check=True,
        text=True,
    )
    assert json.loads(out.stdout.splitlines()[-1])["type"] == "SPEC"
    config = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .Config}}", tag],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    )
    assert config["User"] == "1000:1000"
    assert config["Labels"]["io.airbyte.name"] == "dbkit/source-sqlite"
    assert config["Labels"]["io.airbyte.version"]
    assert f"AIRBYTE_ENTRYPOINT={' '.join(config['Entrypoint'])}" in config["Env"]
