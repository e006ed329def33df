#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run runs exactly this).
# On a fresh machine: creates .venv, installs dbkit with every connector (each connectors/<name>/
# is a package of its own) and the dev tools, makes sure the local PostgreSQL and MariaDB
# services run, then lints, type-checks and runs the whole suite (slow tests included) on two
# workers. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
editables=(-e '.[dev]')
for connector in connectors/*/pyproject.toml; do
  editables+=(-e "$(dirname "$connector")")
done
.venv/bin/pip install -q --disable-pip-version-check "${editables[@]}"
scripts/services.sh

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

# In CI a missing database server is a failure, never a silent skip.
export DBKIT_REQUIRE_SERVERS="${DBKIT_REQUIRE_SERVERS:-1}"
set +e
.venv/bin/pytest -n 2 --dist loadgroup -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
