"""The source acceptance suite: one class, every test a SQL source connector must pass.

Use it in one line per connector::

    class TestMySource(SourceSuite):
        harness = MySourceHarness

Every test runs the connector as a subprocess (:class:`~dbkit.testing.runner.ConnectorRunner`),
so everything it prints is validated against the protocol too. Tables are created with
SQLAlchemy Core in a fresh database; type cases (``harness.type_cases``) each become one test,
sharing one database and one read per test class.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from jsonschema import Draft7Validator

from dbkit.config import looks_secret
from dbkit.testing.runner import RunResult, configured_catalog
from dbkit.testing.suites.harness import (
    SourceHarness,
    Table,
    TypeCase,
    check_refuses_nul_in_every_string,
)

SECRET_WORDS = re.compile(
    r"password|passwd|secret|token|private_key|passphrase|api_key|access_key|credential"
)
PEOPLE = "dbkit_people"
ROWS = 40
TIE_GROUP = 4  # rows per cursor value


def json_equal(actual: Any, expected: Any) -> bool:
    """JSON equality with numbers compared by exact decimal value (1.10 == 1.1, 1 == 1.0)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, int | float | Decimal) and isinstance(actual, int | float | Decimal):
        return Decimal(str(actual)) == Decimal(str(expected))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(json_equal(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(
            json_equal(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return type(actual) is type(expected) and actual == expected


def people_rows(start: int = 0, count: int = ROWS, seq_base: int = 0) -> list[dict[str, Any]]:
    """Rows with unicode, empty strings, NULLs, and cursor values shared by TIE_GROUP rows each."""
    names = ["Ann", "Bø", "", "名前", None, "O'Brien", 'quote "q"', "tab\tand\nnewline", "😀"]
    return [
        {
            "id": i,
            "name": names[i % len(names)],
            "seq": seq_base + i // TIE_GROUP,
            "note": None if i % 3 == 0 else f"note {i}",
        }
        for i in range(start, start + count)
    ]


def people_table(rows: Sequence[Mapping[str, Any]] | None = None) -> Table:
    return Table(
        PEOPLE,
        [
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("name", sa.Unicode(100)),
            sa.Column("seq", sa.Integer, nullable=False),
            sa.Column("note", sa.UnicodeText),
        ],
        [dict(r) for r in (rows if rows is not None else people_rows())],
    )


class SourceSuite:
    """Subclass as ``Test...`` with ``harness`` set to a :class:`SourceHarness` subclass."""

    harness: ClassVar[type[SourceHarness]]

    # ------------------------------------------------------------------ fixtures
    @pytest.fixture
    def source(self, request: pytest.FixtureRequest, tmp_path: Path) -> SourceHarness:
        return self.harness(request, tmp_path)

    @pytest.fixture
    def people(self, source: SourceHarness) -> list[dict[str, Any]]:
        table = people_table()
        table.create(source)
        return table.rows

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def discover_stream(source: SourceHarness, name: str = PEOPLE) -> dict[str, Any]:
        result = source.runner().discover(source.config()).raise_on_failure()
        return result.stream(name, source.namespace)

    def catalog(
        self, source: SourceHarness, incremental: bool, name: str = PEOPLE, cursor: str = "seq"
    ) -> dict[str, Any]:
        stream = self.discover_stream(source, name)
        if incremental:
            return configured_catalog(
                [stream], sync_mode="incremental", cursor_field=[cursor], destination_sync_mode="append_dedup"
            )
        return configured_catalog([stream])

    @staticmethod
    def by_id(records: Sequence[Mapping[str, Any]]) -> dict[Any, Mapping[str, Any]]:
        return {r["id"]: r for r in records}

    @staticmethod
    def assert_rows(records: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> None:
        got = {r["id"]: r for r in records}
        assert len(records) == len(got), "a record was emitted twice"
        want = {r["id"]: r for r in rows}
        assert sorted(got) == sorted(want), (
            f"missing {sorted(set(want) - set(got))}, extra {sorted(set(got) - set(want))}"
        )
        for key, row in want.items():
            assert json_equal(dict(got[key]), dict(row)), f"row {key}: got {got[key]!r}, expected {row!r}"

    @staticmethod
    def records_before_each_state(
        result: RunResult, stream: str = PEOPLE
    ) -> Iterator[tuple[list[Any], dict[str, Any]]]:
        """(ids emitted so far, state message) for every STATE of a read, in order."""
        seen: list[Any] = []
        for message in result.messages:
            if message["type"] == "RECORD" and message["record"]["stream"] == stream:
                seen.append(message["record"]["data"]["id"])
            elif message["type"] == "STATE":
                yield list(seen), message["state"]

    # ------------------------------------------------------------------ spec and check
    def test_spec_is_valid_and_marks_secrets(self, source: SourceHarness) -> None:
        spec = source.runner().spec().raise_on_failure().spec
        schema = spec["connectionSpecification"]
        Draft7Validator.check_schema(schema)
        unmarked = [
            path
            for path, prop in _properties(schema)
            if SECRET_WORDS.search(path.rsplit(".", 1)[-1].lower()) and not prop.get("airbyte_secret")
        ]
        assert not unmarked, f"secret-looking fields not marked airbyte_secret: {unmarked}"
        errors = list(Draft7Validator(schema).iter_errors(source.config()))
        assert not errors, f"the harness config does not satisfy the spec: {[e.message for e in errors]}"

    def test_check_succeeds(self, source: SourceHarness, people: list[dict[str, Any]]) -> None:
        status = source.runner().check(source.config()).raise_on_failure().connection_status
        assert status["status"] == "SUCCEEDED", status

    def test_a_nul_in_any_config_string_is_refused(self, source: SourceHarness) -> None:
        tried = check_refuses_nul_in_every_string(source.runner(), source.config())
        assert tried, "the harness config has no string field to try"

    def test_check_refuses_bad_configs_clearly(self, source: SourceHarness) -> None:
        cases = source.bad_configs()
        if not cases:
            pytest.skip(f"{type(source).__name__} declares no bad configs (nothing to connect to wrongly)")
        for name, case in cases.items():
            result = source.runner().check(dict(case.config))
            assert result.exit_code == 0, f"{name}: check must answer, not crash ({result.errors()})"
            status = result.connection_status
            assert status["status"] == "FAILED", f"{name}: check succeeded"
            message = status.get("message", "")
            assert "Traceback" not in message, f"{name}: a stack trace is not a message"
            missing = [w for w in case.words if w.lower() not in message.lower()]
            assert not missing, f"{name}: message {message!r} does not mention {missing}"
            printed = result.output_text()
            for secret in secret_values(case.config):
                assert secret not in printed, f"{name}: a secret of the config was printed"

    # ------------------------------------------------------------------ discover
    def test_discover_is_valid_and_stable(self, source: SourceHarness, people: list[dict[str, Any]]) -> None:
        first = source.runner().discover(source.config()).raise_on_failure()
        second = source.runner().discover(source.config()).raise_on_failure()
        assert first.catalog == second.catalog, "discover must be deterministic"
        stream = first.stream(PEOPLE, source.namespace)
        props = stream["json_schema"]["properties"]
        assert list(props) == ["id", "name", "seq", "note"]
        assert _json_type(props["id"]) == "integer"
        assert _json_type(props["name"]) == "string"
        assert stream.get("source_defined_primary_key") == [["id"]]
        assert "incremental" in stream["supported_sync_modes"]

    # ------------------------------------------------------------------ reads
    def test_full_refresh_returns_exactly_the_table(
        self, source: SourceHarness, people: list[dict[str, Any]]
    ) -> None:
        result = (
            source.runner().read(source.config(), self.catalog(source, incremental=False)).raise_on_failure()
        )
        self.assert_rows(result.records(PEOPLE), people)
        assert result.statuses(PEOPLE) == ["STARTED", "COMPLETE"]
        counted = sum(s.get("sourceStats", {}).get("recordCount", 0) for s in result.states(PEOPLE))
        assert counted == len(people), "sourceStats.recordCount must add up to the records emitted"

    def test_incremental_second_read_returns_only_new_and_changed_rows(
        self, source: SourceHarness, people: list[dict[str, Any]]
    ) -> None:
        catalog = self.catalog(source, incremental=True)
        config = source.config(checkpoint_records=7)
        first = source.runner().read(config, catalog).raise_on_failure()
        self.assert_rows(first.records(PEOPLE), people)
        again = source.runner().read(config, catalog, [first.states(PEOPLE)[-1]]).raise_on_failure()
        assert again.records(PEOPLE) == [], "nothing changed: the second read must be empty"
        top = max(r["seq"] for r in people)
        t = sa.table(
            PEOPLE,
            sa.column("id"),
            sa.column("name"),
            sa.column("seq"),
            sa.column("note"),
            schema=source.namespace,
        )
        new_rows = [
            {"id": 1000, "name": "later, same cursor value", "seq": top, "note": None},
            {"id": 1001, "name": "later, higher cursor", "seq": top + 5, "note": "x"},
        ]
        source.execute(
            sa.insert(t).values(new_rows),
            sa.update(t).where(t.c.id == 3).values(name="moved forward", seq=top + 1),
            sa.update(t).where(t.c.id == ROWS - 1).values(name="changed at the last value"),
        )
        changed = {
            1000: new_rows[0],
            1001: new_rows[1],
            3: {**people[3], "name": "moved forward", "seq": top + 1},
            ROWS - 1: {**people[ROWS - 1], "name": "changed at the last value"},
        }
        second = source.runner().read(config, catalog, [again.states(PEOPLE)[-1]]).raise_on_failure()
        self.assert_rows(second.records(PEOPLE), list(changed.values()))

    @pytest.mark.parametrize("incremental", [False, True], ids=["full_refresh", "incremental"])
    def test_resume_from_every_state_loses_no_row(
        self, source: SourceHarness, people: list[dict[str, Any]], incremental: bool
    ) -> None:
        catalog = self.catalog(source, incremental=incremental)
        config = source.config(checkpoint_records=3)
        full = source.runner().read(config, catalog).raise_on_failure()
        self.assert_rows(full.records(PEOPLE), people)
        checkpoints = list(self.records_before_each_state(full))
        assert len(checkpoints) >= ROWS // 3, "expected a checkpoint about every 3 records"
        everything = {r["id"] for r in people}
        for before, state in checkpoints:
            resumed = source.runner().read(config, catalog, [state]).raise_on_failure()
            after = [r["id"] for r in resumed.records(PEOPLE)]
            assert len(after) == len(set(after)), "a resumed read emitted a row twice"
            missing = everything - set(before) - set(after)
            assert not missing, (
                f"resuming from the state after {len(before)} records lost rows {sorted(missing)}"
            )
            if len(before) < len(everything):
                repeated = set(before) & set(after)
                assert not repeated, f"resuming after {len(before)} records repeated rows {sorted(repeated)}"

    def test_killed_read_resumes_without_losing_rows(
        self, source: SourceHarness, people: list[dict[str, Any]]
    ) -> None:
        catalog = self.catalog(source, incremental=True)
        config = source.config(checkpoint_records=2)
        killed = source.runner().read(config, catalog, kill_after_states=4)
        assert killed.killed, "the read ended before its fourth state; use a larger table"
        emitted = {r["id"] for r in killed.records(PEOPLE)}
        covered = set(list(self.records_before_each_state(killed))[-1][0])  # ids before the last state
        resumed = source.runner().read(config, catalog, [killed.states(PEOPLE)[-1]]).raise_on_failure()
        again = {r["id"] for r in resumed.records(PEOPLE)}
        missing = {r["id"] for r in people} - emitted - again
        assert not missing, f"rows lost across the kill: {sorted(missing)}"
        repeated = covered & again
        assert not repeated, f"rows before the last state were read again: {sorted(repeated)}"

    def test_a_row_changed_back_after_an_interrupted_read_is_read_again(
        self, source: SourceHarness, people: list[dict[str, Any]]
    ) -> None:
        """A row at the last cursor value changes (the cursor stays), a read emits it and stops at
        its first STATE, and the row is changed back to what the first read emitted: the next
        read must deliver it (the destination's latest is the interrupted read's version), and
        must not repeat the unchanged rows at that value."""
        catalog = self.catalog(source, incremental=True)
        config = source.config(checkpoint_records=1)
        first = source.runner().read(config, catalog).raise_on_failure()
        top = max(r["seq"] for r in people)
        ties = sorted(r["id"] for r in people if r["seq"] == top)
        original = self.by_id(people)[ties[0]]
        t = sa.table(PEOPLE, sa.column("id"), sa.column("name"), schema=source.namespace)
        source.execute(sa.update(t).where(t.c.id == ties[0]).values(name="changed in between"))
        second = source.runner().read(config, catalog, [first.states(PEOPLE)[-1]]).raise_on_failure()
        before, state = next(self.records_before_each_state(second))
        assert before == [ties[0]], f"the changed row first, and nothing else: {before}"
        source.execute(sa.update(t).where(t.c.id == ties[0]).values(name=original["name"]))
        third = source.runner().read(config, catalog, [state]).raise_on_failure()
        self.assert_rows(third.records(PEOPLE), [original])

    def test_state_from_the_future_returns_nothing(
        self, source: SourceHarness, people: list[dict[str, Any]]
    ) -> None:
        catalog = self.catalog(source, incremental=True)
        config = source.config()
        first = source.runner().read(config, catalog).raise_on_failure()
        t = sa.table(PEOPLE, sa.column("id"), sa.column("seq"), schema=source.namespace)
        # every row now has a cursor value below the saved one: the state is "from the future"
        source.execute(sa.update(t).values(seq=t.c.seq - 1000))
        later = source.runner().read(config, catalog, [first.states(PEOPLE)[-1]]).raise_on_failure()
        assert later.records(PEOPLE) == []
        assert later.statuses(PEOPLE) == ["STARTED", "COMPLETE"]

    # ------------------------------------------------------------------ errors
    @staticmethod
    def pyairbyte_catalog(stream: Mapping[str, Any]) -> dict[str, Any]:
        """The catalog PyAirbyte's ``read()`` sends: every stream incremental, destination
        overwrite, the source's primary key, no cursor field (the stream's default, if any)."""
        return {
            "streams": [
                {
                    "stream": dict(stream),
                    "sync_mode": "incremental",
                    "destination_sync_mode": "overwrite",
                    "primary_key": stream.get("source_defined_primary_key"),
                }
            ]
        }

    def test_incremental_without_cursor_is_a_config_error(
        self, source: SourceHarness, people: list[dict[str, Any]]
    ) -> None:
        """Named with what fixes it: a cursor (PyAirbyte's set_cursor_key), a full refresh
        (PyAirbyte's force_full_refresh), or the config's incremental_fallback."""
        stream = self.discover_stream(source)
        stream.pop("default_cursor_field", None)  # a table with no column named like a cursor
        result = source.runner().read(source.config(), self.pyairbyte_catalog(stream))
        assert result.exit_code != 0
        errors = result.errors()
        assert errors, "a TRACE error must explain the failure"
        assert errors[0]["failure_type"] == "config_error"
        message = errors[0]["message"]
        for words in ("no cursor field", "set_cursor_key", "force_full_refresh", "incremental_fallback"):
            assert words in message, f"{words!r} not in {message!r}"
        assert result.statuses(PEOPLE)[-1] == "INCOMPLETE"

    def test_incremental_fallback_reads_a_stream_without_cursor_in_full(
        self, source: SourceHarness, people: list[dict[str, Any]]
    ) -> None:
        """With ``incremental_fallback: full_refresh`` (in every SQL source's spec) such a stream is
        read whole, with a WARN naming it, on every sync."""
        properties = source.runner().spec().raise_on_failure().spec["connectionSpecification"]["properties"]
        assert properties["incremental_fallback"]["enum"] == ["fail", "full_refresh"]
        stream = self.discover_stream(source)
        stream.pop("default_cursor_field", None)
        catalog = self.pyairbyte_catalog(stream)
        config = source.config(incremental_fallback="full_refresh", checkpoint_records=7)
        first = source.runner().read(config, catalog).raise_on_failure()
        self.assert_rows(first.records(PEOPLE), people)
        assert first.statuses(PEOPLE) == ["STARTED", "COMPLETE"]
        warnings = [m["log"]["message"] for m in first.of_type("LOG") if m["log"]["level"] == "WARN"]
        assert any(PEOPLE in w and "full refresh" in w and "incremental_fallback" in w for w in warnings), (
            warnings
        )
        again = source.runner().read(config, catalog, first.states(PEOPLE)[-1:]).raise_on_failure()
        self.assert_rows(again.records(PEOPLE), people)  # a full refresh: the whole table again

    def test_a_missing_table_fails_only_its_stream(
        self, source: SourceHarness, people: list[dict[str, Any]]
    ) -> None:
        other = people_table()
        other.name = f"{PEOPLE}_gone"
        other.create(source)
        catalog = configured_catalog([self.discover_stream(source), self.discover_stream(source, other.name)])
        source.execute(sa.schema.DropTable(sa.Table(other.name, sa.MetaData(), schema=source.namespace)))
        result = source.runner().read(source.config(), catalog)
        assert result.exit_code != 0
        assert result.statuses(PEOPLE) == ["STARTED", "COMPLETE"]
        assert result.statuses(other.name)[-1] == "INCOMPLETE"
        self.assert_rows(result.records(PEOPLE), people)
        (error,) = [e for e in result.errors() if e.get("stream_descriptor", {}).get("name") == other.name]
        assert error["failure_type"] == "config_error"
        assert other.name in error["message"]

    # ------------------------------------------------------------------ types
    @pytest.fixture(scope="class")
    @classmethod
    def type_results(
        cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> dict[str, Any]:
        """Create one table per type case in one database, discover and read once."""
        source = cls.harness(request, tmp_path_factory.mktemp("types"))
        failures: dict[str, str] = {}
        tables: dict[str, str] = {}
        for index, case in enumerate(cls.harness.type_cases):
            table = f"dbkit_type_{index:03d}"
            try:
                source.execute(*source.literal_table_sql(table, case))
            except Exception as exc:  # one bad case must not hide the others
                failures[case.name] = f"{type(exc).__name__}: {exc}"
            else:
                tables[case.name] = table
        discovered = source.runner().discover(source.config()).raise_on_failure()
        streams = [discovered.stream(t, source.namespace) for t in tables.values()]
        read = (
            source.runner().read(source.config(), configured_catalog(streams)).raise_on_failure()
            if streams
            else None
        )
        return {"tables": tables, "failures": failures, "discovered": discovered, "read": read}

    def test_type_case(self, type_case: TypeCase, type_results: dict[str, Any]) -> None:
        if type_case.name in type_results["failures"]:
            pytest.fail(f"could not create the table: {type_results['failures'][type_case.name]}")
        table = type_results["tables"][type_case.name]
        read: RunResult = type_results["read"]
        (record,) = read.record_messages(table)
        value = record["data"]["v"]
        assert json_equal(value, type_case.expected), (
            f"{type_case.name}: got {value!r}, expected {type_case.expected!r}"
        )
        changes = (record.get("meta") or {}).get("changes") or []
        if type_case.change is None:
            assert not changes, f"unexpected meta.changes {changes}"
        else:
            assert {"field": "v", "change": "NULLED", "reason": type_case.change} in changes, changes
        if type_case.schema is not None:
            schema = type_results["discovered"].stream(table)["json_schema"]["properties"]["v"]
            assert schema == dict(type_case.schema), f"{type_case.name}: schema {schema}"


def secret_values(config: Any) -> list[str]:
    """Values of secret-looking keys anywhere in a config (and a URL's password)."""
    found: list[str] = []
    if isinstance(config, Mapping):
        for key, value in config.items():
            if isinstance(value, str) and value and looks_secret(str(key)):
                found.append(value)
            elif isinstance(value, str) and "://" in value and "@" in value:
                with contextlib.suppress(Exception):
                    password = sa.make_url(value).password
                    if password:
                        found.append(str(password))
            else:
                found += secret_values(value)
    elif isinstance(config, list):
        for value in config:
            found += secret_values(value)
    return found


def _properties(schema: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, Mapping):
            continue
        path = f"{prefix}{name}"
        yield path, prop
        yield from _properties(prop, f"{path}.")
        for option in prop.get("oneOf", []) or prop.get("anyOf", []):
            if isinstance(option, Mapping):
                yield from _properties(option, f"{path}.")


def _json_type(schema: Mapping[str, Any]) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, list):
        rest = [t for t in declared if t != "null"]
        return rest[0] if len(rest) == 1 else None
    if declared == "number" and schema.get("airbyte_type") == "integer":
        return "integer"
    return declared if isinstance(declared, str) else None
