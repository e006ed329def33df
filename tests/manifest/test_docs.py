"""docs/manifest.md stays true: its reference is the one generated from the schema, and its
example is a manifest that loads."""

from __future__ import annotations

import re
from pathlib import Path

from dbkit.manifest import load_manifest
from dbkit.manifest.docs import PAGE, current_reference, reference


def test_the_reference_is_generated_from_the_schema() -> None:
    assert current_reference() == reference(), "run: .venv/bin/python -m dbkit.manifest.docs"


def test_the_example_loads(tmp_path: Path) -> None:
    (example,) = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)
    path = tmp_path / "example.yaml"
    path.write_text(example)
    source = load_manifest(path)
    assert source.name == "source-shop"
    spec = source().spec()["connectionSpecification"]
    assert spec["properties"]["password"]["airbyte_secret"] is True
    assert spec["properties"]["checkpoint_records"]["default"] == 5000
    assert [s.name for s in source.manifest.streams] == ["order_lines"]
