"""The acceptance suites catch real bugs: run them against deliberately broken connectors.

Each broken connector (tests/testing/broken/) is the SQLite connector with one bug. The suite
runs against it in a separate pytest session (pytester), and exactly the tests that should
notice the bug must fail while the unrelated ones keep passing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BROKEN = Path(__file__).parent / "broken"

SOURCE_TEST = """
import sys
from decimal import Decimal
from dbkit.testing.suites import SourceSuite, SqliteSourceHarness, TypeCase

class Broken(SqliteSourceHarness):
    command = [sys.executable, {script!r}]
    type_cases = (
        TypeCase("DECIMAL_BLOB", "'12345678901234567890.123456789'",
                 Decimal("12345678901234567890.123456789"), id="wide"),
        TypeCase("INTEGER", "7", 7, id="small"),
    )

class TestBroken(SourceSuite):
    harness = Broken
"""

DESTINATION_TEST = """
import sys
from dbkit.testing.suites import DestinationSuite, SqliteDestinationHarness

class Broken(SqliteDestinationHarness):
    command = [sys.executable, {script!r}]

class TestBroken(DestinationSuite):
    harness = Broken
"""


def run_suite(pytester: pytest.Pytester, template: str, script: str, select: str) -> dict[str, str]:
    pytester.makepyfile(test_broken=template.format(script=str(BROKEN / script)))
    result = pytester.runpytest_subprocess("-q", "-rA", "-p", "no:cacheprovider", "-k", select)
    outcomes: dict[str, str] = {}
    for line in result.outlines:
        for word in ("PASSED", "FAILED"):
            if line.startswith(word + " ") and "::" in line:
                outcomes[line.split("::")[-1].split(" ")[0]] = word
    result_lines = "\n".join(result.outlines[-5:])
    assert outcomes, f"no outcome parsed from the inner run:\n{result_lines}"
    return outcomes


@pytest.mark.slow
def test_source_suite_catches_a_row_dropped_on_resume(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(
        pytester, SOURCE_TEST, "source_drops_row_on_resume.py", "resume or killed or full_refresh_returns"
    )
    assert outcomes["test_resume_from_every_state_loses_no_row[full_refresh]"] == "FAILED"
    assert outcomes["test_resume_from_every_state_loses_no_row[incremental]"] == "FAILED"
    assert outcomes["test_full_refresh_returns_exactly_the_table"] == "PASSED"


@pytest.mark.slow
def test_source_suite_catches_a_lost_digit(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(pytester, SOURCE_TEST, "source_loses_digits.py", "type_case")
    assert outcomes["test_type_case[wide]"] == "FAILED"
    assert outcomes["test_type_case[small]"] == "PASSED"


@pytest.mark.slow
def test_destination_suite_catches_an_early_state(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(
        pytester, DESTINATION_TEST, "destination_echoes_early.py", "state_is_echoed or append_over"
    )
    assert outcomes["test_state_is_echoed_in_order_only_after_its_records_are_committed"] == "FAILED"


@pytest.mark.slow
def test_destination_suite_catches_a_lost_digit(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(
        pytester, DESTINATION_TEST, "destination_loses_digits.py", "values_that or overwrite_over"
    )
    assert outcomes["test_values_that_cannot_be_stored_become_null_with_a_change"] == "FAILED"
    assert outcomes["test_overwrite_over_two_syncs"] == "PASSED"


def test_broken_connectors_are_real_connectors() -> None:
    """Each broken connector still answers ``spec``: the suites fail on the bug, not on a crash."""
    import subprocess

    for script in sorted(BROKEN.glob("*.py")):
        out = subprocess.run(
            [sys.executable, str(script), "spec"], capture_output=True, text=True, check=True
        )
        assert '"type":"SPEC"' in out.stdout, script.name
