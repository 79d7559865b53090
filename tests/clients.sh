#!/usr/bin/env bash
# Migrations as the client tools people run them, against a cluster with the library preloaded
# (the sync workers do the re-embedding):
#   1. Alembic (SQLAlchemy 2, psycopg 3): `alembic upgrade` of a revision that re-embeds a column
#      with qwen3_embed_reembed_later inside Alembic's transaction; a revision that CALLs
#      qwen3_embed_reembed there fails with 2D000 and a hint naming qwen3_embed_reembed_later.
#   2. Django: `migrate` of a migration whose RunSQL does the same (Django runs each migration in
#      a transaction).
# And neither tool takes the extension's state tables for the users' own: Alembic's
# autogenerate against empty models, and Django's inspectdb, name none of them.
# The packages come from the venv scripts/setup.sh makes (target/py-clients); without them the
# suite says so in one line and passes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY="$ROOT/target/py-clients/bin/python"
if ! "$PY" -c "import alembic, sqlalchemy, psycopg, django" 2>/dev/null; then
    echo "clients: skipped: Alembic, SQLAlchemy, psycopg and Django are not in target/py-clients (scripts/setup.sh installs them when PyPI can be reached)"
    exit 0
fi

tiny_models
WORK="$(scratch_dir clients_tests)"
PORT="$(random_port)"
cleanup() { pg_local_stop; [[ "${QWEN3_EMBED_CLIENTS_TEST_KEEP:-0}" == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT

pg_local_start "$WORK/pg" "$PORT" \
    "shared_preload_libraries = 'qwen3_embed'" \
    "qwen3_embed.model_path = '$MODEL'" \
    "qwen3_embed.server_threads = 2" \
    "qwen3_embed.threads = 2"
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION qwen3_embed CASCADE" \
  -c "CREATE TABLE docs (id int PRIMARY KEY, body text, embedding vector(64))" \
  -c "INSERT INTO docs SELECT i, 'migrated document ' || i, NULL FROM generate_series(1, 300) i" \
  -c "CALL qwen3_embed_reembed('docs', 'body', 'embedding', instruct => 'the first task')"

# Waits until the re-embedding is over (its one-time sync goes when done), then checks that every
# row of docs has the vector of its text with instruction $1 (an SQL literal).
current() {
    local left want
    for _ in $(seq 300); do
        left="$(q -c "SELECT count(*) FROM qwen3_embed.syncs")"
        [[ "$left" == 0 ]] && break
        sleep 0.2
    done
    want="$(q -c "SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, $1, 64)) FROM docs")"
    [[ "$left" == 0 && "$want" == 300 ]] && return 0
    echo "      $want of 300 rows current; $(q -c "SELECT pending, failed, worker FROM qwen3_embed_sync_status")"
    return 1
}

DSN="host=$WORK/pg port=$PORT user=postgres dbname=postgres"
out="$("$PY" tests/clients/alembic_migrate.py "$DSN" "$WORK/alembic" 2>&1)" || true
echo "$out" | sed 's/^/      /'
check "Alembic: a revision that CALLs qwen3_embed_reembed fails with 2D000, its hint naming qwen3_embed_reembed_later" \
    has "$out" "call revision: 2D000 hint: .*qwen3_embed_reembed_later"
check "Alembic: the revision that runs qwen3_embed_reembed_later inside the migration's transaction is applied" \
    has "$out" "reembed revision: applied at 0002 in [0-9.]* s"
check "... and the sync workers give every row its new vector" current NULL
check "Alembic's autogenerate against empty models would drop the users' table, none of the extension's" \
    has "$out" "autogenerate would drop: docs$"
check "... and leave no sync behind, the column registered with the new settings" \
    eq "$(q -c "SELECT count(*) FROM qwen3_embed.syncs")|$(q -c "SELECT instruct IS NULL, next_fingerprint IS NULL FROM qwen3_embed.columns")" "0|t|t"

out="$("$PY" tests/clients/django_migrate.py "$DSN" "$WORK/django" 2>&1)" || true
echo "$out" | sed 's/^/      /'
check "Django: the migration whose RunSQL runs qwen3_embed_reembed_later is applied" \
    has "$out" "django: applied in [0-9.]* s"
check "... and the sync workers give every row its new vector" current "'the django task'"
check "Django's inspectdb writes models for the users' tables, none for the extension's" \
    bash -c "grep -q '^inspectdb models: .*Docs' <<<\"\$1\" && ! grep -qi 'inspectdb models: .*qwen3' <<<\"\$1\"" _ "$out"

summary
