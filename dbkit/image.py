"""``dbkit build-image``: a Docker build context for a connector image, and the metadata the Airbyte
platform needs to add it as a custom connector.

The image is ``docker/Dockerfile`` (see it: pinned base, hashed locks, numeric user,
``AIRBYTE_ENTRYPOINT``), built for one connector directory under ``connectors/``. What this module
adds is the context that Dockerfile expects, for any of:

- a shipped connector, by name (``source-postgres``, also ``dbkit-source-postgres``);
- a connector package of your own: a directory with a ``pyproject.toml`` whose console scripts
  include ``dbkit-<directory name>`` (what ``dbkit init`` writes);
- a source manifest (a ``.yaml`` file, or a directory holding ``manifest.yaml``): it becomes a
  small generated package, ``<name>/`` with the manifest inside and a console script
  ``dbkit-<name>`` that runs it, so the same manifest is a console script (``pip install`` the
  package) and an image.

Next to the context go ``metadata.yaml`` (Airbyte's connector metadata format), ``definition.json``
(the body of the platform API's request that creates a custom definition: name, Docker repository,
tag, documentation URL) and ``build.sh`` (the ``docker build`` command). The context is built from
dbkit's source checkout, which holds the Dockerfile and its lock files.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dbkit.errors import ConfigError
from dbkit.version import package_version

MARKER = ".dbkit-image"
_IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache", "tests"
)
_NAME = re.compile(r"^(source|destination)-[a-z0-9][a-z0-9-]*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_PEP440 = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
CHECKOUT_FILES = (
    "pyproject.toml",
    "README.md",
    "docker/Dockerfile",
    "docker/requirements.lock",
    "docker/requirements-build.lock",
)


@dataclass(frozen=True)
class ImageTarget:
    """What goes into the image: the connector's ``name`` (its directory under ``connectors/`` in
    the context and, prefixed with ``dbkit-``, its console script), its ``kind``, the directory to
    copy (None for a manifest, whose package is generated) and its manifest, if any."""

    name: str
    kind: str
    package: Path | None
    manifest: Path | None
    description: str
    documentation_url: str | None


@dataclass(frozen=True)
class ImageContext:
    """A written build context: where it is, the image it builds and how to build it."""

    directory: Path
    target: ImageTarget
    repository: str
    tag: str

    @property
    def image(self) -> str:
        return f"{self.repository}:{self.tag}"

    def build_command(self) -> list[str]:
        """``docker build ...``, run in :attr:`directory`."""
        return [
            "docker",
            "build",
            "-f",
            "docker/Dockerfile",
            "--build-arg",
            f"CONNECTOR={self.target.name}",
            "--build-arg",
            f"VERSION={self.tag}",
            "-t",
            self.image,
            ".",
        ]


# ------------------------------------------------------------------------------------ the target


def checkout() -> Path:
    """dbkit's source checkout (where docker/Dockerfile and its locks are); ConfigError when dbkit
    was installed from a wheel."""
    root = Path(__file__).resolve().parents[1]
    missing = [f for f in CHECKOUT_FILES if not (root / f).is_file()]
    if missing:
        raise ConfigError(
            "dbkit build-image needs dbkit's source checkout (it holds docker/Dockerfile and the lock "
            f"files the image installs from), but {', '.join(missing)} is missing under {root}: "
            "install dbkit from a clone (pip install -e .)"
        )
    return root


def resolve_target(target: str, root: Path) -> ImageTarget:
    """A connector name, a connector package directory, or a source manifest -> the ImageTarget."""
    path = Path(target).expanduser()
    if path.suffix in (".yaml", ".yml") or (path.is_dir() and (path / "manifest.yaml").is_file()):
        return _manifest_target(path if path.suffix else path / "manifest.yaml")
    if path.is_dir() and (path / "pyproject.toml").is_file():
        return _package_target(path.resolve())
    name = target.removeprefix("dbkit-")
    shipped = root / "connectors" / name
    if "/" not in target and (shipped / "pyproject.toml").is_file():
        return _package_target(shipped)
    if "/" not in target and (shipped / "manifest.yaml").is_file():
        return _manifest_target(shipped / "manifest.yaml")
    known = sorted(p.name for p in (root / "connectors").iterdir() if p.is_dir())
    raise ConfigError(
        f"{target!r} is neither a shipped connector ({', '.join(known)}), a connector package "
        "directory (with a pyproject.toml), nor a source manifest (.yaml)"
    )


def _manifest_target(path: Path) -> ImageTarget:
    from dbkit.manifest import load_manifest

    if not path.is_file():
        raise ConfigError(f"no manifest at {path}")
    source = load_manifest(path)  # ManifestError (a ConfigError) naming the place of a mistake
    manifest = source.manifest
    name = str(manifest.name)
    if not _NAME.match(name):
        raise ConfigError(
            f"{path}: name {name!r} cannot name an image's connector: use source-<letters, digits, '-'>"
        )
    return ImageTarget(
        name=name,
        kind="source",
        package=None,
        manifest=path.resolve(),
        description=" ".join(str(manifest.description or f"{name}, a dbkit source manifest").split()),
        documentation_url=manifest.documentation_url,
    )


def _package_target(directory: Path) -> ImageTarget:
    try:
        project = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise ConfigError(f"{directory / 'pyproject.toml'}: not a readable [project] table ({exc})") from None
    name = directory.name
    scripts = project.get("scripts") or {}
    if f"dbkit-{name}" not in scripts:
        raise ConfigError(
            f"{directory}: the image runs the console script dbkit-{name} (the directory's name with "
            f"dbkit- before it), but [project.scripts] of its pyproject.toml has "
            f"{', '.join(sorted(scripts)) or 'none'}: add dbkit-{name}"
        )
    if not _NAME.match(name):
        raise ConfigError(f"{directory}: the directory's name must be source-NAME or destination-NAME")
    urls = project.get("urls") or {}
    return ImageTarget(
        name=name,
        kind=name.split("-", 1)[0],
        package=directory,
        manifest=None,
        description=str(project.get("description") or name),
        documentation_url=urls.get("Documentation") or urls.get("Homepage"),
    )


# ----------------------------------------------------------------------------------- the context


def write_context(
    target: str, out: Path, *, repository: str | None = None, tag: str | None = None, force: bool = False
) -> ImageContext:
    """Write the build context of ``target``'s image to ``out`` (see the module doc)."""
    root = checkout()
    resolved = resolve_target(target, root)
    repository = repository or f"dbkit/{resolved.name}"
    tag = tag or package_version("dbkit")
    if not _REPOSITORY.match(repository):
        raise ConfigError(f"--repository {repository!r} is not a Docker repository name (lower case, a/b/c)")
    if not _TAG.match(tag):
        raise ConfigError(f"--tag {tag!r} is not a Docker tag (letters, digits, '_', '.', '-'; 128 at most)")
    _prepare(out, force)
    for name in CHECKOUT_FILES:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, out / name)
    shutil.copytree(root / "dbkit", out / "dbkit", ignore=_IGNORED)
    connector_dir = out / "connectors" / resolved.name
    if resolved.package is not None:
        shutil.copytree(resolved.package, connector_dir, ignore=_IGNORED)
    else:
        assert resolved.manifest is not None
        _manifest_package(resolved, connector_dir, tag)
    context = ImageContext(out, resolved, repository, tag)
    _write_metadata(context)
    (out / MARKER).write_text("written by dbkit build-image; --force may replace this directory\n")
    return context


def _prepare(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not (force and (out / MARKER).is_file()):
            why = (
                "it was not written by dbkit build-image, so --force does not replace it"
                if force
                else "give another --out, or --force to replace a context dbkit build-image wrote"
            )
            raise ConfigError(f"{out} exists and is not empty: {why}")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _manifest_package(target: ImageTarget, directory: Path, tag: str) -> None:
    """A package that runs the manifest: ``pip install`` it for a console script; the image does."""
    assert target.manifest is not None
    module = target.name.replace("-", "_")
    dbkit_version = package_version("dbkit")
    version = tag if _PEP440.match(tag) else dbkit_version
    package = directory / module
    package.mkdir(parents=True)
    shutil.copy2(target.manifest, package / "manifest.yaml")
    (package / "py.typed").write_text("")
    (package / "__init__.py").write_text(
        f'"""{target.name}: the source that manifest.yaml beside this file describes (written by dbkit\n'
        'build-image; the manifest is the source of truth, this is its console script)."""\n\n'
        "from pathlib import Path\n\n"
        "from dbkit import main_for\n"
        "from dbkit.manifest import load_manifest\n\n"
        'MANIFEST = Path(__file__).with_name("manifest.yaml")\n'
        "Source = load_manifest(MANIFEST)\n"
        "run = main_for(Source)\n",
        encoding="utf-8",
    )
    description = json.dumps(target.description)
    (directory / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["hatchling>=1.25"]\n'
        'build-backend = "hatchling.build"\n\n'
        "[project]\n"
        f'name = "dbkit-{target.name}"\n'
        f'version = "{version}"\n'
        f"description = {description}\n"
        'requires-python = ">=3.11"\n'
        f'dependencies = ["dbkit>={dbkit_version}"]\n\n'
        "[project.scripts]\n"
        f'{target.name} = "{module}:run"\n'
        f'dbkit-{target.name} = "{module}:run"\n\n'
        '[project.entry-points."dbkit.connectors"]\n'
        f'{target.name} = "{module}:Source"\n\n'
        "[tool.hatch.build.targets.wheel]\n"
        f'packages = ["{module}"]\n',
        encoding="utf-8",
    )


def definition_id(repository: str) -> str:
    """A stable definition id for the repository (the same image keeps its id across builds)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://dbkit.invalid/connectors/{repository}"))


def _write_metadata(context: ImageContext) -> None:
    target = context.target
    data: dict[str, Any] = {
        "connectorType": target.kind,
        "connectorSubtype": "database",
        "definitionId": definition_id(context.repository),
        "dockerRepository": context.repository,
        "dockerImageTag": context.tag,
        "name": target.name,
        "license": "Apache-2.0",
        "releaseStage": "alpha",
        "supportLevel": "community",
        "tags": ["language:python", "cdk:dbkit" + (":manifest" if target.manifest else "")],
    }
    if target.documentation_url:
        data["documentationUrl"] = target.documentation_url
    metadata = {"data": data, "metadataSpecVersion": "1.0"}
    out = context.directory
    (out / "metadata.yaml").write_text(
        "# Airbyte connector metadata (https://docs.airbyte.com/connector-development/connector-metadata-file)\n"
        + yaml.safe_dump(metadata, sort_keys=False),
        encoding="utf-8",
    )
    definition = {
        "name": target.name,
        "dockerRepository": context.repository,
        "dockerImageTag": context.tag,
        **({"documentationUrl": target.documentation_url} if target.documentation_url else {}),
    }
    (out / "definition.json").write_text(json.dumps(definition, indent=2) + "\n", encoding="utf-8")
    script = out / "build.sh"
    script.write_text(
        "#!/bin/sh\n# Build the image of this context (written by dbkit build-image).\nset -eu\n"
        'cd "$(dirname "$0")"\n' + " ".join(_quoted(context.build_command())) + "\n",
        encoding="utf-8",
    )
    script.chmod(0o755)


def _quoted(argv: Sequence[str]) -> list[str]:
    return [a if re.fullmatch(r"[\w./:=@-]+", a) else "'" + a.replace("'", "'\\''") + "'" for a in argv]


def build(context: ImageContext) -> None:
    """``docker build`` the context; ConfigError (with docker's last lines) when it fails."""
    if shutil.which("docker") is None:
        raise ConfigError(
            f"no docker command here: build the context elsewhere with {context.directory}/build.sh"
        )
    done = subprocess.run(
        context.build_command(), cwd=context.directory, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ConfigError(f"docker build failed (exit {done.returncode}): {tail}")
