#!/usr/bin/env bash
# The demo: sets up the machine (scripts/setup.sh), builds and installs the extension, starts a
# throwaway PostgreSQL 15 with it, and runs the ways people use qwen3_embed, ending with a
# similarity search. The model is, in order: $QWEN3_EMBED_MODEL; the official 4B Q4_K_M at
# ~/.cache/qwen3_embed/Qwen3-Embedding-4B-Q4_K_M.gguf; else a generated random-weight model.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/setup.sh >/dev/null
echo "== building and installing the extension (first time: several minutes)"
cargo pgrx install --pg-config /usr/lib/postgresql/15/bin/pg_config >/dev/null

OFFICIAL="$HOME/.cache/qwen3_embed/Qwen3-Embedding-4B-Q4_K_M.gguf"
if [[ -n "${QWEN3_EMBED_MODEL:-}" ]]; then
    MODEL="$(realpath "$QWEN3_EMBED_MODEL")"
elif [[ -f "$OFFICIAL" ]]; then
    MODEL="$OFFICIAL"
else
    MODEL="$ROOT/fixtures/generated/demo/model-q8_0.gguf"
    if [[ ! -f "$MODEL" ]]; then
        cargo run -q -p qwen3-embed-engine --bin qwen3-embed -- fixture --preset tiny \
            --out fixtures/generated/demo --formats gguf-q8_0 >/dev/null
    fi
    cat <<'NOTICE'

  ########################################################################################
  #  NO REAL MODEL FOUND: this demo uses a GENERATED RANDOM-WEIGHT model.               #
  #  Its vectors are deterministic but carry NO MEANING: the search results below show  #
  #  that everything works, not that it finds related text.                             #
  #  For real results set QWEN3_EMBED_MODEL=/path/to/Qwen3-Embedding-*.gguf, or put the  #
  #  official file at ~/.cache/qwen3_embed/Qwen3-Embedding-4B-Q4_K_M.gguf (README).      #
  ########################################################################################

NOTICE
fi
echo "== model: $MODEL"

source scripts/pg_local.sh
DIR="$(mktemp -d /tmp/qwen3-demo.XXXXXX)"
trap 'pg_local_stop; rm -rf "$DIR"' EXIT
pg_local_start "$DIR" 28815 "qwen3_embed.model_path = '$MODEL'"

pg_local_psql -q <<'SQL'
\pset footer off
CREATE EXTENSION qwen3_embed CASCADE;
\echo '== the model'
SELECT format, architecture, parameters, tensor_types, hidden_size, runs_in FROM qwen3_embed_info();

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
