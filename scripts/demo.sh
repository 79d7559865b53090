#!/usr/bin/env bash
# The demo: sets up the machine (scripts/setup.sh), builds and installs the extension, starts a
# throwaway PostgreSQL 15 with it, and runs the ways people use qwen3_embed, ending with a
# similarity search. The model is, in order: $QWEN3_EMBED_MODEL; the official 4B Q4_K_M at
# ~/.cache/qwen3_embed/Qwen3-Embedding-4B-Q4_K_M.gguf; that file pulled from the hub now, when
# the hub answers within a few seconds and you say yes (on a terminal) or QWEN3_EMBED_PULL=1
# (QWEN3_EMBED_PULL=0: never); else a generated random-weight model.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/setup.sh >/dev/null
echo "== building and installing the extension, optimized (first time: several minutes)"
# The release profile (install.sh's default): what users run must be the build the README
# measures (a debug build is 3-7x slower); scripts/check_release_install.sh keeps it so.
INSTALL_LOG="$(mktemp)"
bash scripts/install.sh --pg-config /usr/lib/postgresql/15/bin/pg_config 2>"$INSTALL_LOG" \
    || { tail -n 40 "$INSTALL_LOG"; exit 1; }
rm -f "$INSTALL_LOG"

CLI=(cargo run --release -q -p qwen3-embed-engine --bin qwen3-embed --)
OFFICIAL="$HOME/.cache/qwen3_embed/Qwen3-Embedding-4B-Q4_K_M.gguf"

# Prints the path of the official model pulled from the hub, or fails: not asked to, the hub
# does not answer within a few seconds, the user says no, or the download fails.
pull_official() {
    local answer
    case "${QWEN3_EMBED_PULL:-}" in
        0) return 1 ;;
        1) ;;
        *) [[ -t 0 && -t 2 ]] || return 1 ;;
    esac
    if ! "${CLI[@]}" pull --check --connect-timeout 4 2>/dev/null; then
        echo "== the model hub does not answer (offline?): not downloading the model" >&2
        return 1
    fi
    if [[ "${QWEN3_EMBED_PULL:-}" != 1 ]]; then
        read -r -p "No model found. Download the official Qwen3-Embedding-4B Q4_K_M (2.5 GB) now? [y/N] " answer
        [[ "$answer" =~ ^[Yy] ]] || return 1
    fi
    "${CLI[@]}" pull
}

# Postgres runs as the postgres user, which must reach the model through every directory on
# the way (a home directory is usually private): grant traversal only (o+x) where it lacks it.
let_postgres_read() {
    local p="$1" d target _
    sudo -u postgres test -r "$p" && return 0
    echo "== letting the postgres user traverse the directories that lead to $p (chmod o+x)"
    for _ in 1 2 3 4 5 6 7 8; do
        d="$(dirname "$p")"
        while [[ "$d" != / && "$d" != . ]]; do
            sudo -u postgres test -x "$d" || chmod o+x "$d"
            d="$(dirname "$d")"
        done
        [[ -L "$p" ]] || break
        target="$(readlink "$p")"
        [[ "$target" == /* ]] || target="$(dirname "$p")/$target"
        p="$target"
    done
    sudo -u postgres test -r "$1" || { echo "the postgres user still cannot read $1" >&2; return 1; }
}

if [[ -n "${QWEN3_EMBED_MODEL:-}" ]]; then
    MODEL="$(realpath "$QWEN3_EMBED_MODEL")"
elif [[ -f "$OFFICIAL" ]]; then
    MODEL="$OFFICIAL"
elif MODEL="$(pull_official)" && [[ -n "$MODEL" ]]; then
    :
else
    MODEL="$ROOT/fixtures/generated/demo/model-q8_0.gguf"
    if [[ ! -f "$MODEL" ]]; then
        "${CLI[@]}" fixture --preset tiny --out fixtures/generated/demo --formats gguf-q8_0 >/dev/null
    fi
    cat <<'NOTICE'

  ########################################################################################
  #  NO REAL MODEL FOUND: this demo uses a GENERATED RANDOM-WEIGHT model.                #
  #  Its vectors are deterministic but carry NO MEANING: the search results below show   #
  #  that everything works, not that it finds related text.                              #
  #  For real results set QWEN3_EMBED_MODEL=/path/to/Qwen3-Embedding-*.gguf, or put the  #
  #  official file at ~/.cache/qwen3_embed/Qwen3-Embedding-4B-Q4_K_M.gguf: run           #
  #  `qwen3-embed pull` (README), or run this demo again with QWEN3_EMBED_PULL=1.        #
  ########################################################################################

NOTICE
fi
echo "== model: $MODEL"
if [[ -d "$MODEL" ]]; then
    for f in "$MODEL"/*; do let_postgres_read "$f"; done
else
    let_postgres_read "$MODEL"
fi

# The throwaway-cluster helpers the test suites use (pg_local_start, pg_local_psql, pg_local_stop).
# shellcheck source=tests/lib.sh
source tests/lib.sh
DIR="$(mktemp -d /tmp/qwen3-demo.XXXXXX)"
trap 'pg_local_stop; rm -rf "$DIR"' EXIT
pg_local_start "$DIR" 28815 "qwen3_embed.model_path = '$MODEL'"

pg_local_psql -q <<'SQL'
\pset footer off
CREATE EXTENSION qwen3_embed CASCADE;
\echo '== the model'
SELECT format, architecture, parameters, tensor_types, hidden_size, runs_in, build FROM qwen3_embed_info();

\echo '== a table whose embedding is a generated column'
CREATE TABLE docs (
    id bigserial PRIMARY KEY,
    body text NOT NULL,
    embedding vector(256) GENERATED ALWAYS AS (qwen3_embed(body, NULL, 256)::vector(256)) STORED
);
INSERT INTO docs (body) VALUES
    ('PostgreSQL is an open source relational database.'),
    ('The Eiffel Tower is in Paris, France.'),
    ('Rust is a systems programming language focused on safety.'),
    ('Photosynthesis turns sunlight, water and CO2 into sugar and oxygen.'),
    ('The Great Wall of China is thousands of kilometres long.'),
    ('pgvector adds vector similarity search to PostgreSQL.');
CREATE INDEX ON docs USING hnsw (embedding vector_cosine_ops);
SELECT id, left(body, 40) AS body, vector_dims(embedding) AS dims FROM docs ORDER BY id;

\echo '== a trigger that embeds on INSERT and when the text changes'
CREATE TABLE notes (id int PRIMARY KEY, body text, embedding vector(128));
CREATE TRIGGER notes_embed BEFORE INSERT OR UPDATE ON notes
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', '128');
INSERT INTO notes VALUES (1, 'Vector search inside the database', NULL);
SELECT id, vector_dims(embedding) AS dims FROM notes;

\echo '== search: the documents nearest to a query'
SELECT id, left(body, 60) AS body,
       round((1 - (embedding <=> qwen3_embed_query('Which database can search vectors?', dims => 256)))::numeric, 4) AS similarity
FROM docs
ORDER BY embedding <=> qwen3_embed_query('Which database can search vectors?', dims => 256)
LIMIT 3;
SQL
echo "== demo done"
