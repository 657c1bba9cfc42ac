#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster, exported as GENFLOW_TEST_DATABASE_URL, and
# stops the cluster afterwards whatever the command's outcome. Exits with the command's status.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/genflow-test-db.XXXXXX)
trap '"$here/pg-cluster.sh" stop "$dir"' EXIT
GENFLOW_TEST_DATABASE_URL=$("$here/pg-cluster.sh" start "$dir")
export GENFLOW_TEST_DATABASE_URL
echo "test database: $GENFLOW_TEST_DATABASE_URL"
"$@"
