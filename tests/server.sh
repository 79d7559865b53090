#!/usr/bin/env bash
# The model server's scenarios, against a throwaway PostgreSQL 15 with qwen3_embed preloaded and
# the tiny fixture model (tests/sql.sh installs the extension and makes the fixture):
#   1. the socket is in the data directory, mode 0600, and other OS users cannot connect;
#   2. 16 sessions x 100 calls at once equal the in-backend results, in fewer forward passes;
#   3. a statement timeout withdraws the request, and the server does not count it as computed;
#      a backend waiting on the server shows it in pg_stat_activity (wait event type Extension:
#      "Extension" before PostgreSQL 17, "Qwen3EmbedModelServer" from 17 on), and no longer after;
#   4. kill -9 of the model server process: the waiting statement fails with a clear error,
#      other sessions keep their connections, the next call works, the restart is visible;
#   5. garbage on the socket does not hurt the server;
#   6. ALTER SYSTEM + pg_reload_conf() of qwen3_embed.model_path swaps the model, no restart;
#   7. hardening: every spelling of the device is one loaded model, only superusers see the
#      server's errors, the server's token budget is the configured one;
#   8. the sync workers drain the embedding queue: a lone insert is embedded within seconds, and
#      under concurrent updates every row ends with the vector of its current text, also after a
#      kill -9 of the model server, of a sync worker, and an immediate restart, each mid-drain;
#      an ordinary role's trigger fired by the worker runs as that role, not as a superuser; one
#      pool of workers serves every database: two databases created after start are both drained,
#      a third's first rows too, DROP DATABASE succeeds while its worker runs, the status view
#      names the worker, and idle databases hold none;
#   9. the packed-weight cache: the server maps it, a kill -9 of the server is served again within
#      2 s, 16 backends loading a model at once pack it once, a load waiting for the writer obeys
#      statement_timeout, an unwritable cache directory falls back to memory with a WARNING and
#      the same vectors;
#  10. bounded tokenization: a 50 MB call, in the model server's client and in a backend, is cut
#      before tokenizing (NOTICE "more than"), and a one-word call of another session meanwhile
#      returns within 1.5 s; a 5 MB single word (no place to cut it) is refused at once;
#  11. fair share: 20 sessions of one role keep the server busy, another role's one-word call
#      waits at most two forward passes (plus 1 s); a call that would take its role past qwen3_embed.server_role_share is
#      refused with 53000; two roles of a group listed in qwen3_embed.server_share_groups hold
#      one part between them, a role outside it its own;
#  12. with RUST_BACKTRACE=1 in the server's environment (this whole run), no error and no
#      statement timeout shows a backtrace, in both modes;
#  13. trust, round three: a database owner's search_path never reaches the sync worker; a
#      refused ALTER DATABASE does not send a worker away; a LATIN1 database's text is embedded
#      by the worker as in UTF-8; writers deleting and updating rows during a drain never get
#      40P01; a dropped table leaves no queue rows; a 60 MB input to each tokenizing function
#      stops within 1.5 s of a statement timeout and its memory is returned; no process dies by
#      a signal;
#  14. monitoring: every postgres_exporter query runs as a pg_monitor role;
#  15. scripts/install.sh over the running preloaded cluster: sessions and the server go on;
#  16. a sync's HNSW index: built by the worker as the table's owner once index_rows vectors are
#      there; a cancelled build is recorded as failed and its invalid index dropped, a build
#      whose worker stopped is recorded as interrupted by the next worker, sync_alter retries.
# Last line: "N passed, M failed"; exit status non-zero on any failure.
set -euo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tiny_models
WORK="$(scratch_dir server_tests)"
PORT="$(random_port)"
cleanup() { pg_local_stop; [[ "${QWEN3_EMBED_SERVER_TEST_KEEP:-0}" == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT

install -d -o postgres "$WORK/cache"
PG_LOCAL_ENV="RUST_BACKTRACE=1"
pg_local_start "$WORK/pg" "$PORT" \
    "shared_preload_libraries = 'qwen3_embed'" \
    "qwen3_embed.model_path = '$MODEL'" \
    "qwen3_embed.server_threads = 2" \
    "qwen3_embed.threads = 2" \
    "qwen3_embed.server_max_tokens = 3000000" \
    "qwen3_embed.server_role_share = 10" \
    "qwen3_embed.cache_dir = '$WORK/cache'" \
    "qwen3_embed.sync_linger = 3" \
    "max_connections = 50"
DATA="$WORK/pg/data"
LOG="$WORK/pg/server.log"
q -c "CREATE EXTENSION qwen3_embed CASCADE"
for _ in $(seq 100); do
    [[ "$(q -c "SELECT state FROM qwen3_embed_server_stats()")" == running ]] && break
    sleep 0.1
done
POSTMASTER_START="$(q -c "SELECT pg_postmaster_start_time()")"
echo "server: $(q -c "SELECT pid, model_path FROM qwen3_embed_server_stats()")"

# --- 1. the socket --------------------------------------------------------------------------------
check "socket is in the data directory, owned by postgres, mode 600" \
    eq "$(stat -c '%a %U %F' "$DATA/qwen3_embed.sock")" "600 postgres socket"
connect_as() {
    sudo -u "$1" python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$2" 2>/dev/null
}
cannot_connect_as() { ! connect_as "$@"; }
check "another OS user cannot connect" cannot_connect_as nobody "$DATA/qwen3_embed.sock"
check "the server's own user can connect" connect_as postgres "$DATA/qwen3_embed.sock"

# --- 2. 16 sessions x 100 calls ---------------------------------------------------------------------
q -c "CREATE TABLE inputs AS
        SELECT s * 100 + i AS id, format('session %s call %s: %s', s, i, repeat('word ', (i * 7 + s) % 40)) AS body
          FROM generate_series(0, 15) s, generate_series(0, 99) i;
      CREATE TABLE got (id int PRIMARY KEY, v vector(256));"
BEFORE="$(q -c "SELECT requests || ' ' || batches FROM qwen3_embed_server_stats()")"
pids=()
for s in $(seq 0 15); do
    for i in $(seq 0 99); do
        echo "INSERT INTO got SELECT id, qwen3_embed(body) FROM inputs WHERE id = $((s * 100 + i));"
    done >"$WORK/session_$s.sql"
    q -f "$WORK/session_$s.sql" >"$WORK/session_$s.out" 2>&1 &
    pids+=($!)
done
failed_sessions=0
for p in "${pids[@]}"; do wait "$p" || failed_sessions=$((failed_sessions + 1)); done
AFTER="$(q -c "SELECT requests || ' ' || batches FROM qwen3_embed_server_stats()")"
check "16 sessions x 100 calls all succeed" eq "$failed_sessions $(q -c "SELECT count(*) FROM got")" "0 1600"
q -c "SET qwen3_embed.use_server = off; CREATE TABLE want AS SELECT id, qwen3_embed(body) AS v FROM inputs"
read -r worst same <<<"$(q -F ' ' -c "SELECT max(g.v <=> w.v), count(*) FILTER (WHERE g.v = w.v) FROM got g JOIN want w USING (id)")"
echo "      vs in-backend: max cosine distance $worst, bit-identical $same of 1600"
check "server results equal in-backend results (cosine >= 0.99999)" \
    python3 -c "import sys; sys.exit(0 if float('$worst') <= 1e-5 else 1)"
read -r r0 b0 <<<"$BEFORE"
read -r r1 b1 <<<"$AFTER"
echo "      $((r1 - r0)) requests in $((b1 - b0)) forward-pass groups"
check "concurrent calls shared forward passes" test $((b1 - b0)) -lt $((r1 - r0))

# --- 3. withdrawal on statement timeout -----------------------------------------------------------
read -r w0 t0 <<<"$(q -F ' ' -c "SELECT withdrawn, tokens FROM qwen3_embed_server_stats()")"
out="$(pg_local_psql -qAt -v VERBOSITY=verbose -c "SELECT 1 FROM qwen3_embed('warm the tokenizer')" -c "SET statement_timeout = '200ms'" \
    -c "SELECT vector_dims(qwen3_embed(repeat('lorem ipsum dolor sit amet ', 1800)))" 2>&1 || true)"
check "statement timeout gives 57014" grep -q "57014" <<<"$out"
sleep 1
read -r w1 t1 <<<"$(q -F ' ' -c "SELECT withdrawn, tokens FROM qwen3_embed_server_stats()")"
echo "      withdrawn $w0 -> $w1, tokens computed $t0 -> $t1"
# (the warm-up call computed its 5 tokens; the withdrawn call would have computed 8,192)
check "the request was withdrawn and not computed" test "$w1" -gt "$w0" -a "$t1" -le $((t0 + 10))

# A backend waiting on the server shows the wait event; another session sees it.
WANT_EVENT="$(q -c "SELECT CASE WHEN current_setting('server_version_num')::int >= 170000
                                THEN 'Extension:Qwen3EmbedModelServer' ELSE 'Extension:Extension' END")"
pg_local_psql -qAt -c "SET qwen3_embed.max_tokens = 16384" \
    -c "SELECT 'wait event probe', vector_dims(qwen3_embed(repeat('lorem ipsum dolor sit amet ', 3600)))" \
    >"$WORK/waiter.out" 2>&1 &
WAITER=$!
seen=""
for _ in $(seq 250); do
    seen="$(q -c "SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity
                   WHERE query LIKE 'SELECT ''wait event probe''%' AND state = 'active'")"
    [[ -n "$seen" ]] && break
    sleep 0.02
done
set +e; wait "$WAITER"; waiter_rc=$?; set -e
echo "      the waiting backend's wait event: ${seen:-(none seen)}"
check "a backend waiting on the model server shows $WANT_EVENT in pg_stat_activity" \
    eq "$seen $waiter_rc" "$WANT_EVENT 0"
check "... and no wait event once the call returned" \
    eq "$(q -c "SELECT vector_dims(qwen3_embed('after the wait'))" \
            -c "SELECT coalesce(wait_event, 'none') FROM pg_stat_activity WHERE pid = pg_backend_pid()")" "256
none"

# --- 4. kill -9 of the model server process -------------------------------------------------------
q -c "SELECT pg_sleep(4); SELECT vector_dims(qwen3_embed('bystander after the kill'))" >"$WORK/bystander.out" 2>&1 &
BYSTANDER=$!
# Eight texts of 16,384 tokens: long enough that the kill lands while the server still works on
# them, even on a CPU that would finish one text between two polls below.
pg_local_psql -qAt -v VERBOSITY=verbose -c "SET qwen3_embed.max_tokens = 16384" \
    -c "SELECT count(*) FROM qwen3_embed_batch(array_fill(repeat('lorem ipsum dolor sit amet ', 3600), ARRAY[8]))" \
    >"$WORK/victim.out" 2>&1 &
VICTIM=$!
OLD_PID="$(q -c "SELECT pid FROM qwen3_embed_server_stats()")"
# Kill once the victim waits on the server (it tokenizes first, in its own backend).
for _ in $(seq 200); do
    [[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'
                 AND query LIKE '%lorem ipsum%' AND pid <> pg_backend_pid()")" != 0 ]] && break
    sleep 0.05
done
kill -9 "$OLD_PID"
set +e; wait "$VICTIM"; victim_rc=$?; set -e
echo "      waiting statement: $(tr '\n' ' ' <"$WORK/victim.out")"
check "the waiting statement fails with 58000 and says the server went away" \
    bash -c "[[ $victim_rc != 0 ]] && grep -q '58000' '$WORK/victim.out' && grep -q 'model server process went away' '$WORK/victim.out'"
check "the next call works" eq "$(q -c "SELECT vector_dims(qwen3_embed('after the kill'))")" 256
set +e; wait "$BYSTANDER"; bystander_rc=$?; set -e
check "a session open across the kill keeps its connection and embeds" \
    bash -c "[[ $bystander_rc == 0 ]] && grep -qx 256 '$WORK/bystander.out'"
read -r new_pid restarts last_error <<<"$(q -F ' ' -c "SELECT pid, restarts, last_error FROM qwen3_embed_server_stats()")"
echo "      new server process $new_pid, restarts $restarts, last_error: $last_error"
check "a new server process, with the restart counted and its cause shown" \
    bash -c "[[ '$new_pid' != '$OLD_PID' && '$restarts' == 1 ]] && grep -q 'signal 9' <<<'$last_error'"
check "no crash restart of the cluster" \
    bash -c "[[ '$(q -c "SELECT pg_postmaster_start_time()")' == '$POSTMASTER_START' ]] && ! grep -q 'terminating any other active server processes' '$LOG'"

# --- 5. garbage on the socket ---------------------------------------------------------------------
sudo -u postgres python3 - "$DATA/qwen3_embed.sock" <<'EOF'
import socket, struct, sys
for payload in [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x10\x00\x00\x00\x04\x00\x00\x00junk",
                struct.pack("<II", 20, 16) + b'{"op":"embed"', b"\x05\x00"]:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()
EOF
check "garbage on the socket leaves the server running" \
    eq "$(q -c "SELECT pid = $new_pid FROM qwen3_embed_server_stats()") $(q -c "SELECT vector_dims(qwen3_embed('after garbage'))")" "t 256"

# --- 6. model change by configuration reload ------------------------------------------------------
q -c "ALTER SYSTEM SET qwen3_embed.model_path = '$Q4_MODEL'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
check "a new model path takes effect after pg_reload_conf(), same server process" \
    eq "$(q -c "SELECT model_path LIKE '%model-q4_k_m.gguf' FROM qwen3_embed_info()") $(q -c "SELECT pid = $new_pid AND model_path LIKE '%q4_k_m.gguf' FROM qwen3_embed_server_stats()")" "t t"
q -c "ALTER SYSTEM RESET qwen3_embed.model_path" -c "SELECT pg_reload_conf()" >/dev/null

# --- 7. hardening -----------------------------------------------------------------------------------
q -c "SELECT qwen3_embed('the configured model again')" >/dev/null
loads_before="$(q -c "SELECT model_loads FROM qwen3_embed_server_stats()")"
q -c "SET qwen3_embed.device = 'auto'" -c "SELECT qwen3_embed('a')" \
  -c "SET qwen3_embed.device = 'CPU'" -c "SELECT qwen3_embed('b')" \
  -c "SET qwen3_embed.device = 'cpu'" -c "SELECT qwen3_embed('c')" \
  -c "SET qwen3_embed.device = 'auto'" -c "SELECT qwen3_embed('d')" >/dev/null
check "device spellings of one device do not reload the model" \
    eq "$(q -c "SELECT model_loads FROM qwen3_embed_server_stats()")" "$loads_before"
q -c "CREATE ROLE plain_user" >/dev/null
denied="$(q -c "SET ROLE plain_user" -c "SET qwen3_embed.device = 'auto'" 2>&1 || true)"
check "an ordinary role cannot change the device (permission denied)" \
    bash -c "grep -q 'permission denied to set parameter' <<<\"\$1\"" _ "$denied"
check "only superusers see the server's last error" \
    eq "$(q -c "SELECT last_error IS NOT NULL AND last_error NOT LIKE '(hidden%' FROM qwen3_embed_server_stats()") $(q -c "SET ROLE plain_user" -c "SELECT last_error FROM qwen3_embed_server_stats()")" \
       "t (hidden: only superusers see the model server's errors)"
check "the server's token budget is qwen3_embed.server_max_tokens" \
    eq "$(q -c "SELECT max_tokens_in_flight, tokens_in_flight FROM qwen3_embed_server_stats()")" "3000000|0"
q -c "DROP ROLE plain_user" >/dev/null

# --- 8. the sync workers -----------------------------------------------------------------------------
q -c "CREATE TABLE synced (id int PRIMARY KEY, body text, embedding vector(64))" \
  -c "SELECT qwen3_embed_sync('synced', 'body', 'embedding')" >/dev/null
lone_insert_ms() { # id, text: inserts one row, prints the ms until the worker gave it a vector (5 s at most)
    local t0
    t0=$(date +%s%N)
    q -c "INSERT INTO synced VALUES ($1, '$2', NULL)"
    for _ in $(seq 250); do
        [[ "$(q -c "SELECT embedding IS NOT NULL FROM synced WHERE id = $1")" == t ]] && break
        sleep 0.02
    done
    echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
lone_ms="$(lone_insert_ms 1 'a lone insert')"
echo "      a lone insert was embedded after ${lone_ms} ms (a worker started for it)"
check "a sync worker embeds a lone insert within 5 s" \
    eq "$(q -c "SELECT embedding = qwen3_embed(body, NULL, 64) FROM synced WHERE id = 1")" t
again_ms="$(lone_insert_ms 2 'another lone insert')"
echo "      the next lone insert, its worker still there (qwen3_embed.sync_linger): ${again_ms} ms"
check "while the worker stays, a lone insert is embedded within 1 s" \
    eq "$(q -c "SELECT embedding = qwen3_embed(body, NULL, 64) FROM synced WHERE id = 2") $((again_ms < 1000))" "t 1"
q -c "DELETE FROM synced WHERE id = 2"
q -c "INSERT INTO synced SELECT i, 'synced row ' || i, NULL FROM generate_series(2, 300) i"
for round in 1 2 3; do
    q -c "UPDATE synced SET body = body || ' v$round' WHERE id % 7 = $round" >/dev/null &
done
wait
for _ in $(seq 600); do
    [[ "$(q -c "SELECT pending + waiting_retry FROM qwen3_embed_sync_status WHERE relation = 'synced'::regclass")" == 0 ]] && break
    sleep 0.1
done
check "under concurrent updates the workers leave every row with its current text's vector" \
    eq "$(q -c "SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) || '/' || count(*) FROM synced")" "300/300"
check "nothing failed, nothing left in the queue" \
    eq "$(q -c "SELECT pending, waiting_retry, failed FROM qwen3_embed_sync_status WHERE relation = 'synced'::regclass")" "0|0|0"

# Crashes mid-drain: kill -9 of the model server, kill -9 of a sync worker (Postgres then restarts
# every process of the cluster, as for any backend killed by a signal), an immediate shutdown.
# Each time a 300-row backlog is being drained; afterwards every row has its current text's vector.
wait_ready() { # up to 3 minutes: a slow machine's crash recovery
    for _ in $(seq 1800); do
        q -c "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
drained() {
    for _ in $(seq 900); do
        [[ "$(q -c "SELECT pending + waiting_retry FROM qwen3_embed_sync_status WHERE relation = 'synced'::regclass" 2>/dev/null)" == 0 ]] && return 0
        sleep 0.1
    done
    return 1
}
cluster_state() { # what a failed round leaves for the reader: every process of the cluster, the log's end
    echo "      the cluster's processes (state, kernel wait):"
    ps -u postgres -o pid=,ppid=,stat=,wchan:24=,etime=,args= | sed 's/^/        /'
    echo "      the end of the server log:"
    tail -n 40 "$LOG" | cut -c1-240 | sed 's/^/        /'
}
all_current() {
    eq "$(q -c "SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) || '/' || count(*) FROM synced")" "300/300"
}
crash_round() { # name, then the command that crashes something
    local name="$1"; shift
    q -c "UPDATE synced SET body = body || ' +'" >/dev/null
    sleep 0.3
    "$@"
    if ! { wait_ready && drained; }; then
        echo "      after $name the cluster did not come back drained"
        cluster_state
    fi
    check "after $name mid-drain every row has its current text's vector" all_current
}
kill_server() { kill -9 "$(q -c "SELECT pid FROM qwen3_embed_server_stats()")"; }
kill_worker() { # then waits until the postmaster has begun the crash restart (or 10 s)
    local restarts
    restarts="$(grep -c 'all server processes terminated; reinitializing' "$LOG" || true)"
    kill -9 "$(q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'qwen3_embed sync worker' LIMIT 1")"
    for _ in $(seq 100); do
        (( $(grep -c 'all server processes terminated; reinitializing' "$LOG" || true) > restarts )) && return 0
        sleep 0.1
    done
}
restart_immediate() {
    sudo -u postgres env RUST_BACKTRACE=1 "$PG_BIN/pg_ctl" -D "$DATA" -m immediate -w restart \
        -o "-p $PORT -k $WORK/pg -c listen_addresses=''" -l "$LOG" >/dev/null
}
crash_round "kill -9 of the model server" kill_server
crash_round "kill -9 of a sync worker" kill_worker
crash_round "an immediate restart of the cluster" restart_immediate
check "no queue row and no error row is left" \
    eq "$(q -c "SELECT pending, waiting_retry, failed FROM qwen3_embed_sync_status WHERE relation = 'synced'::regclass")" "0|0|0"

# The worker acts as the table's owner: an ordinary role's trigger, fired by the worker's UPDATE,
# sees that role (not a superuser) in the sync worker's process and cannot make it superuser.
q -c "CREATE ROLE sw_owner NOSUPERUSER" -c "GRANT CREATE ON SCHEMA public TO sw_owner" \
  -c "SET ROLE sw_owner" \
  -c "CREATE TABLE sw_log (who name, super boolean, pid int, escalated boolean)" \
  -c "CREATE TABLE sw_docs (id int PRIMARY KEY, body text, embedding vector(64))" \
  -c "CREATE FUNCTION sw_trig() RETURNS trigger LANGUAGE plpgsql AS \$\$
      DECLARE ok boolean := true;
      BEGIN
          BEGIN EXECUTE 'ALTER ROLE sw_owner SUPERUSER'; EXCEPTION WHEN OTHERS THEN ok := false; END;
          INSERT INTO public.sw_log SELECT current_user, r.rolsuper, pg_backend_pid(), ok
            FROM pg_roles r WHERE r.rolname = current_user;
          RETURN NEW;
      END \$\$" \
  -c "CREATE TRIGGER t BEFORE UPDATE ON sw_docs FOR EACH ROW EXECUTE FUNCTION sw_trig()" \
  -c "SELECT qwen3_embed_sync('sw_docs', 'body', 'embedding')" \
  -c "INSERT INTO sw_docs VALUES (1, 'a table of an ordinary role')" >/dev/null
for _ in $(seq 200); do
    [[ "$(q -c "SELECT count(*) FROM sw_log")" != 0 ]] && break
    sleep 0.05
done
check "the sync worker runs a table owner's trigger as that owner, never as a superuser" \
    eq "$(q -c "SELECT l.who, l.super, a.backend_type, l.escalated FROM sw_log l
                LEFT JOIN pg_stat_activity a ON a.pid = l.pid")" "sw_owner|f|qwen3_embed sync worker|f"

# Every database is served by one pool of workers (qwen3_embed.sync_workers, 2 by default), one
# worker per database at a time, started when a transaction that queued rows commits.
check "a sync here has workers and no warning" \
    eq "$(q -c "SELECT qwen3_embed.qwen3_embed_sync_workers_here('check')" 2>&1)" 2
tenant() { pg_local_psql -qAt -d "$1" "${@:2}"; }
tenant_setup() { # database: created after the server started, with its own extension and sync
    q -c "CREATE DATABASE $1"
    tenant "$1" -c "CREATE EXTENSION qwen3_embed CASCADE" \
        -c "CREATE TABLE t (id int PRIMARY KEY, body text, embedding vector(64))" \
        -c "SELECT qwen3_embed_sync('t', 'body', 'embedding')" 2>&1 >/dev/null
}
tenant_drained() { # database, rows expected
    for _ in $(seq 300); do
        [[ "$(tenant "$1" -c "SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) FROM t" 2>/dev/null)" == "$2" ]] && return 0
        sleep 0.1
    done
    tenant "$1" -c "SELECT pending, waiting_retry, failed, worker FROM qwen3_embed_sync_status"
    return 1
}
both_drained() { tenant_drained tenant_a 40 && tenant_drained tenant_b 40; }
warned_a="$(tenant_setup tenant_a)"
warned_b="$(tenant_setup tenant_b)"
check "a sync in a database created after start warns of nothing" eq "$(grep -c WARNING <<<"$warned_a$warned_b")" 0
tenant tenant_a -c "INSERT INTO t SELECT i, 'tenant a row ' || i FROM generate_series(1, 40) i"
tenant tenant_b -c "INSERT INTO t SELECT i, 'tenant b row ' || i FROM generate_series(1, 40) i"
check "two databases' queues are both drained, each into its own table" \
    both_drained
q -c "CREATE DATABASE tenant_c"
tenant tenant_c -c "CREATE EXTENSION qwen3_embed CASCADE" \
    -c "CREATE TABLE t (id int PRIMARY KEY, body text, embedding vector(64))" \
    -c "INSERT INTO t SELECT i, 'tenant c row ' || i FROM generate_series(1, 20) i" \
    -c "SELECT qwen3_embed_sync('t', 'body', 'embedding')" >/dev/null
check "a third database: the rows queued by qwen3_embed_sync itself are drained" \
    tenant_drained tenant_c 20
tenant tenant_b -c "INSERT INTO t SELECT i, 'more b ' || i FROM generate_series(41, 400) i"
serving=""
for _ in $(seq 100); do
    serving="$(tenant tenant_b -c "SELECT worker FROM qwen3_embed_sync_status")"
    [[ "$serving" == "sync worker pid"* ]] && break
    sleep 0.05
done
echo "      tenant_b: $serving"
check "the status view names the worker serving the database" grep -q "^sync worker pid [0-9]" <<<"$serving"
worker_pid="$(sed -E 's/^sync worker pid ([0-9]+).*/\1/' <<<"$serving")"
t0=$(date +%s%N)
dropped="$(q -c "DROP DATABASE tenant_b" 2>&1 && echo ok)"
drop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "      DROP DATABASE tenant_b while its worker ran took ${drop_ms} ms: $dropped"
check "DROP DATABASE while its sync worker runs succeeds, and the worker is gone" \
    eq "$dropped $(kill -0 "$worker_pid" 2>/dev/null && echo alive || echo gone)" "ok gone"
tenant tenant_a -c "INSERT INTO t VALUES (41, 'after the drop')"
check "the other databases are still served after the drop" \
    tenant_drained tenant_a 41
for _ in $(seq 200); do
    [[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qwen3_embed sync worker'")" == 0 ]] && break
    sleep 0.1
done
check "idle databases hold no worker: every sync worker left once its queue was empty" \
    eq "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qwen3_embed sync worker'") $(tenant tenant_a -c "SELECT worker FROM qwen3_embed_sync_status")" \
    "0 none now: a worker starts when rows are queued"
check "the launcher is connected to no database" \
    eq "$(q -c "SELECT count(*), bool_and(datname IS NULL) FROM pg_stat_activity WHERE backend_type = 'qwen3_embed sync launcher'")" "1|t"

# --- 9. the packed-weight cache ---------------------------------------------------------------------
check "the server maps the packed-weight cache in qwen3_embed.cache_dir" \
    eq "$(q -c "SELECT cache IN ('built', 'mapped'), cache_file LIKE '$WORK/cache/model-q8_0-%.qwen3pack', cache_bytes > 0 FROM qwen3_embed_server_stats()")" "t|t|t"
CACHE_REF="$(q -c "SELECT qwen3_embed('cache probe')")"
old_pid="$(q -c "SELECT pid FROM qwen3_embed_server_stats()")"
t0=$(date +%s%N)
kill -9 "$old_pid"
served=""
for _ in $(seq 100); do
    served="$(q -c "SELECT qwen3_embed('cache probe')" 2>/dev/null || true)"
    [[ -n "$served" ]] && break
    sleep 0.05
done
restart_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "      after kill -9 of the model server, the next call was served in ${restart_ms} ms"
check "after kill -9 of the model server, a call is served within 2 s, same vector, cache mapped" \
    eq "$([[ "$served" == "$CACHE_REF" && $restart_ms -le 2000 ]] && echo yes) $(q -c "SELECT cache FROM qwen3_embed_server_stats()")" "yes mapped"

# 16 backends (not the server) load a model nobody has packed yet, all at once.
files_before="$(ls "$WORK/cache" | grep -c 'qwen3pack$')"
COLD="$WORK/cold/model-q4_k_m.gguf"
install -d -o postgres "$WORK/cold"
cp "$Q4_MODEL" "$COLD"
chmod 644 "$COLD"
for i in $(seq 16); do
    q -c "SET qwen3_embed.use_server = off" -c "SET qwen3_embed.model_path = '$COLD'" \
      -c "SELECT cache || ' ' || md5(qwen3_embed('cold cache')::text) FROM qwen3_embed_info()" >"$WORK/cold.$i" 2>&1 &
done
wait
states="$(cat "$WORK"/cold.* | awk '{print $1}' | sort | uniq -c | awk '{printf "%s %s;", $1, $2}')"
echo "      16 first loads at once: $states"
check "16 backends loading a model at once pack it once (1 built, 15 mapped), same vectors" \
    eq "$states $(cat "$WORK"/cold.* | awk '{print $2}' | sort -u | wc -l)" "1 built;15 mapped; 1"
check "one new cache file for it" eq "$(ls "$WORK/cache" | grep -c 'qwen3pack$')" "$((files_before + 1))"

# A session waiting for another process to write the cache obeys statement_timeout.
COLD2="$WORK/cold/model-q4_k_m-2.gguf"
cp "$Q4_MODEL" "$COLD2"
chmod 644 "$COLD2"
q -c "SET qwen3_embed.use_server = off" -c "SET qwen3_embed.model_path = '$COLD2'" -c "SELECT qwen3_embed('x')" >/dev/null
pack2="$(ls "$WORK"/cache/model-q4_k_m-2-*.qwen3pack)"
rm -f "$pack2"
flock "$pack2.lock" sleep 20 &
holder=$!
sleep 0.2
t0=$(date +%s%N)
waited="$(q -c "SET qwen3_embed.use_server = off" -c "SET qwen3_embed.model_path = '$COLD2'" \
            -c "SET statement_timeout = '1s'" -c "SELECT qwen3_embed('x')" 2>&1 || true)"
waited_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill "$holder" 2>/dev/null || true
echo "      a load waiting for the cache writer's lock ended after ${waited_ms} ms: $waited"
check "a load waiting for the cache writer's lock obeys statement_timeout" \
    eq "$(grep -c 'canceling statement due to statement timeout' <<<"$waited") $([[ $waited_ms -lt 5000 ]] && echo prompt)" "1 prompt"

q -c "ALTER SYSTEM SET qwen3_embed.cache_dir = '/dev/null/qwen3_embed'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
fallback="$(q -c "SET qwen3_embed.use_server = off" -c "SELECT qwen3_embed('cache probe')" 2>&1)"
check "an unwritable cache directory: WARNING naming the reason, vector as with the cache" \
    eq "$(grep -c 'WARNING:  qwen3_embed: cannot write the packed-weight cache in /dev/null/qwen3_embed: Not a directory' <<<"$fallback") $(tail -n 1 <<<"$fallback" | cmp -s - <(echo "$CACHE_REF") && echo same)" "1 same"
check "... and qwen3_embed_info() says the weights are in memory" \
    eq "$(q -c "SET qwen3_embed.use_server = off" -c "SELECT cache, cache_bytes FROM qwen3_embed_info()" 2>/dev/null)" "in memory|0"
q -c "ALTER SYSTEM RESET qwen3_embed.cache_dir" -c "SELECT pg_reload_conf()" >/dev/null

# --- 10. bounded tokenization -----------------------------------------------------------------------
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
one_word_ms() { local t0; t0=$(date +%s%N); q -c "SELECT vector_dims(qwen3_embed('word'))" >/dev/null; ms_since "$t0"; }
t0=$(date +%s%N); q -c "SELECT 1" >/dev/null; connect_ms=$(ms_since "$t0")
echo "      a one-word call from a new session while the server is idle: $(one_word_ms) ms (connecting alone: ${connect_ms} ms)"
for mode in server backend; do
    use="SET qwen3_embed.use_server = $([[ $mode == server ]] && echo on || echo off)"
    # The probe session loads its tokenizer first (about 1 s on this machine), then times one
    # call while the 51 MB call runs.
    q -c "SELECT 1 FROM qwen3_embed('warm')" -c "SELECT pg_sleep(1.5)" -c '\timing on' \
      -c "SELECT vector_dims(qwen3_embed('word'))" >"$WORK/probe_$mode.out" 2>&1 &
    PROBE=$!
    sleep 1.2
    t0=$(date +%s%N)
    # max_tokens 512: the forward pass is short, so what the other call could wait for is the
    # input's size (8,192 tokens take seconds to compute on 2 cores, whatever the input's size).
    q -c "$use" -c "SET qwen3_embed.max_tokens = 512" \
        -c "SELECT md5(qwen3_embed(repeat('lorem ipsum dolor sit amet ', 1900000))::text)" \
        >"$WORK/big_$mode.out" 2>&1 &
    BIG=$!
    wait "$PROBE" || true
    word_ms="$(grep -o 'Time: [0-9.]*' "$WORK/probe_$mode.out" | tail -n 1 | awk '{printf "%d", $2}')"
    set +e; wait "$BIG"; big_rc=$?; set -e
    big_ms=$(ms_since "$t0")
    echo "      $mode: a 51 MB call took ${big_ms} ms; a one-word call of another session meanwhile ${word_ms:-?} ms"
    check "$mode: a 51 MB call is cut before tokenizing (NOTICE 'input of more than N tokens')" \
        bash -c "[[ $big_rc == 0 ]] && grep -Eq 'input of more than [0-9]+ tokens truncated to 512' '$WORK/big_$mode.out'"
    check "$mode: meanwhile another session's one-word call returns within 1 s" test "${word_ms:-99999}" -le 1000
done
check "the 51 MB call gives the same vector in both modes" \
    eq "$(tail -n 1 "$WORK/big_server.out")" "$(tail -n 1 "$WORK/big_backend.out")"
for mode in on off; do
    t0=$(date +%s%N)
    # (the session loads its tokenizer first: about 1 s)
    out="$(q -v VERBOSITY=verbose -c "SET qwen3_embed.use_server = $mode" -c "SELECT qwen3_token_count('warm')" \
              -c "SET statement_timeout = '1s'" -c "SELECT vector_dims(qwen3_embed(repeat('a', 5000000)))" 2>&1 || true)"
    took=$(ms_since "$t0")
    echo "      use_server = $mode: a 5 MB single word, after the tokenizer's load, ended after ${took} ms in all"
    check "use_server = $mode: a 5 MB single word (no place to cut it) is refused at once (54000, before a 1 s timeout)" \
        bash -c "grep -q '54000' <<<\"\$1\" && grep -q 'no place where its tokens may be cut' <<<\"\$1\"" _ "$out"
done

# --- 11. fair share -----------------------------------------------------------------------------------
q -c "CREATE ROLE crowd LOGIN" -c "CREATE ROLE loner LOGIN" >/dev/null
crowd_pids=()
for i in $(seq 20); do
    # About 1,000 tokens a call: a short forward pass, so a first-come queue of 20 would mean a
    # wait of seconds, and a turn means one pass.
    pg_local_psql -U crowd -d postgres -qAt -c "SELECT count(qwen3_embed(repeat('lorem ipsum dolor sit amet ' || g, 150))) FROM generate_series(1, 400) g" \
        >"$WORK/crowd_$i.out" 2>&1 &
    crowd_pids+=($!)
done
# The crowd's backends load their tokenizers first (about 1 s each, 2 cores): wait for the queue.
depth=0
for _ in $(seq 300); do
    depth="$(q -c "SELECT queue_depth FROM qwen3_embed_server_stats()")"
    (( depth >= 15 )) && break
    sleep 0.1
done
sleep 2
read -r busy0 batches0 <<<"$(q -F ' ' -c "SELECT round(coalesce(tokens / nullif(tokens_per_second, 0), 0)::numeric, 3), batches FROM qwen3_embed_server_stats()")"
pg_local_psql -U loner -d postgres -qAt -c "SELECT 1 FROM qwen3_embed('warm')" \
    -c '\timing on' -c "SELECT vector_dims(qwen3_embed('word'))" -c "SELECT vector_dims(qwen3_embed('word'))" \
    -c "SELECT vector_dims(qwen3_embed('word'))" >"$WORK/loner.out" 2>&1
worst="$(grep -o 'Time: [0-9.]*' "$WORK/loner.out" | awk '{ if ($2 > m) m = $2 } END { printf "%d", m }')"
read -r busy1 batches1 <<<"$(q -F ' ' -c "SELECT round(coalesce(tokens / nullif(tokens_per_second, 0), 0)::numeric, 3), batches FROM qwen3_embed_server_stats()")"
# A turn is the forward pass running when the call arrives, then the call's own pass; a
# first-come queue of 19 requests would take about 5 passes of 4,096 tokens.
pass_ms="$(python3 -c "print(int(1000 * ($busy1 - $busy0) / max(1, $batches1 - $batches0)))")"
echo "      mean forward pass meanwhile: ${pass_ms} ms"
echo "      20 sessions of role crowd (queue depth $depth): role loner's one-word call took at most ${worst} ms"
check "while one role's 20 sessions keep the server busy, another role's one-word call waits at most 2 passes + 1 s" \
    bash -c "[[ $depth -ge 10 && $worst -le $((2 * pass_ms + 1000)) ]]"
# Killing a client leaves its backend running its statement: cancel the crowd's statements too,
# so that they do not keep the model server busy through the scenarios that follow.
for p in "${crowd_pids[@]}"; do kill "$p" 2>/dev/null || true; done
q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = 'crowd'" >/dev/null
wait 2>/dev/null || true
share="$(pg_local_psql -qAt -v VERBOSITY=verbose -c "SET qwen3_embed.max_request_tokens = 1000000" \
    -c "SELECT count(*) FROM qwen3_embed_batch(array(SELECT repeat('lorem ipsum ', 4000) || g FROM generate_series(1, 50) g))" 2>&1 || true)"
check "a call that would take its role past qwen3_embed.server_role_share (10% of 3000000) is refused with 53000" \
    bash -c "grep -q '53000' <<<\"\$1\" && grep -q 'the 300000 one role may hold' <<<\"\$1\"" _ "$share"
q -c "DROP ROLE crowd" -c "DROP ROLE loner" >/dev/null
# Two roles of one tenant: with their group in qwen3_embed.server_share_groups they hold one part
# between them; a role outside the group keeps its own.
q -c "CREATE ROLE tenant_g NOLOGIN" -c "CREATE ROLE tg1 LOGIN IN ROLE tenant_g" \
    -c "CREATE ROLE tg2 LOGIN IN ROLE tenant_g" -c "CREATE ROLE tg_other LOGIN" \
    -c "ALTER SYSTEM SET qwen3_embed.server_share_groups = 'nobody_here, TENANT_G'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
texts() { echo "array(SELECT repeat('lorem ipsum ', 4000) || g FROM generate_series(1, $1) g)"; }
pg_local_psql -U tg1 -d postgres -qAt -c "SELECT count(*) FROM qwen3_embed_batch($(texts 25))" >"$WORK/tg1.out" 2>&1 &
tg1_pid=$!
held=0
for _ in $(seq 200); do
    held="$(q -c "SELECT tokens_in_flight FROM qwen3_embed_server_stats()")"
    (( held >= 150000 )) && break
    sleep 0.05
done
tg2="$(pg_local_psql -U tg2 -d postgres -qAt -v VERBOSITY=verbose -c "SELECT count(*) FROM qwen3_embed_batch($(texts 15))" 2>&1 || true)"
other="$(pg_local_psql -U tg_other -d postgres -qAt -v VERBOSITY=verbose -c "SET statement_timeout = '2s'" \
    -c "SELECT count(*) FROM qwen3_embed_batch($(texts 15))" 2>&1 || true)"
still="$(q -c "SELECT tokens_in_flight FROM qwen3_embed_server_stats()")"
echo "      tokens in flight for tg1: $held (still $still after the other calls)"
check "qwen3_embed.server_share_groups: a second role of the group is refused (53000) while the first holds most of their part" \
    bash -c "(( $held >= 150000 && $still >= 150000 )) && grep -q '53000' <<<\"\$1\"" _ "$tg2"
check "... while a role outside the group is admitted (it ends by its statement timeout, not 53000)" \
    bash -c "! grep -q '53000' <<<\"\$1\" && grep -q '57014' <<<\"\$1\"" _ "$other"
kill "$tg1_pid" 2>/dev/null || true
q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = 'tg1'" >/dev/null
wait "$tg1_pid" 2>/dev/null || true
q -c "ALTER SYSTEM RESET qwen3_embed.server_share_groups" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 100); do
    [[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE usename LIKE 'tg%'")" == 0 ]] && break
    sleep 0.1
done
q -c "DROP ROLE tg1" -c "DROP ROLE tg2" -c "DROP ROLE tg_other" -c "DROP ROLE tenant_g" >/dev/null

# --- 12. no backtrace reaches a client ------------------------------------------------------------
no_backtrace() { ! grep -Eq 'backtrace|^ *[0-9]+: |  at /|\.rs:[0-9]' <<<"$1" || { echo "      $1" | head -n 8; return 1; }; }
for mode in on off; do
    errs="$(q -c "SET qwen3_embed.use_server = $mode" -c "SELECT qwen3_embed('x', NULL, 7)" 2>&1 || true)
$(q -c "SET qwen3_embed.use_server = $mode" -c "SET qwen3_embed.model_path = '/nonexistent/model.gguf'" -c "SELECT qwen3_embed('x')" 2>&1 || true)
$(q -c "SET qwen3_embed.use_server = $mode" -c "SET statement_timeout = '100ms'" -c "SELECT qwen3_embed(repeat('lorem ipsum dolor sit amet ', 1800))" 2>&1 || true)"
    check "RUST_BACKTRACE=1, use_server = $mode: errors and a statement timeout carry no backtrace" \
        bash -c "grep -c ERROR <<<\"\$1\" | grep -qx 3 && $(declare -f no_backtrace); no_backtrace \"\$1\"" _ "$errs"
done

# --- 13. trust, round three (issue 39) --------------------------------------------------------------
signals_before="$(grep -c 'terminated by signal' "$LOG" || true)"
wait_no_worker_in() { # database: until no sync worker is connected there (10 s at most)
    for _ in $(seq 200); do
        [[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qwen3_embed sync worker' AND datname = '$1'")" == 0 ]] && return 0
        sleep 0.05
    done
}
# A database owner sets her database's search_path to a schema with an operator of hers: the
# sync worker (a superuser session) connects there and must never resolve a name through it.
q -c "CREATE ROLE dbo LOGIN NOSUPERUSER" -c "CREATE DATABASE evil_db OWNER dbo" >/dev/null
tenant evil_db -c "CREATE EXTENSION qwen3_embed CASCADE" -c "GRANT CREATE ON SCHEMA public TO dbo" >/dev/null
pg_local_psql -U dbo -d evil_db -qAt \
  -c "CREATE SCHEMA evil" \
  -c "CREATE FUNCTION evil.eq(name, name) RETURNS boolean LANGUAGE plpgsql AS \$\$
      BEGIN
          BEGIN EXECUTE 'ALTER ROLE dbo SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
          RETURN \$1 OPERATOR(pg_catalog.=) \$2;
      END \$\$" \
  -c "CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.eq)" \
  -c "CREATE TABLE t (id int PRIMARY KEY, body text, embedding vector(64))" \
  -c "SELECT qwen3_embed_sync('t', 'body', 'embedding')" \
  -c "ALTER DATABASE evil_db SET search_path = evil, pg_catalog, public" >/dev/null 2>&1
wait_no_worker_in evil_db
pg_local_psql -U dbo -d evil_db -qAt -c "INSERT INTO t SELECT i, 'evil row ' || i FROM generate_series(1, 10) i" >/dev/null
evil_drained() {
    for _ in $(seq 200); do
        [[ "$(tenant evil_db -c "SET search_path = public" -c "SELECT count(*) FROM t WHERE embedding IS NOT NULL")" == 10 ]] && return 0
        sleep 0.05
    done
    return 1
}
check "the sync worker drains a database whose owner set search_path to her operator" evil_drained
check "... and her operator never ran as a superuser (rolsuper stays false)" \
    eq "$(q -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'dbo'")" f

# A refused ALTER DATABASE ... RENAME (not the owner) does not send the database's worker away.
q -c "CREATE ROLE stranger LOGIN NOSUPERUSER CREATEDB" >/dev/null
refused="$(pg_local_psql -U stranger -d postgres -qAt -v VERBOSITY=verbose -c "ALTER DATABASE tenant_a RENAME TO stolen" 2>&1 || true)"
check "ALTER DATABASE ... RENAME by a role that does not own it is refused (42501)" grep -q 42501 <<<"$refused"
tenant tenant_a -c "INSERT INTO t VALUES (42, 'after a refused rename')"
check "... and the database's rows are still embedded at once (no 60 s hold)" tenant_drained tenant_a 42

# Text in a LATIN1 database, drained by the worker: the same vector as the same text here.
q -c "CREATE DATABASE latin1_db ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
PGCLIENTENCODING=UTF8 tenant latin1_db -c "CREATE EXTENSION qwen3_embed CASCADE" \
    -c "CREATE TABLE t (id int PRIMARY KEY, body text, embedding vector(64))" \
    -c "SELECT qwen3_embed_sync('t', 'body', 'embedding')" \
    -c "INSERT INTO t VALUES (1, 'Ein Café in Zürich, naïve façade')" >/dev/null 2>&1
latin1_drained() {
    for _ in $(seq 200); do
        [[ "$(PGCLIENTENCODING=UTF8 tenant latin1_db -c "SELECT count(*) FROM t WHERE embedding IS NOT NULL")" == 1 ]] && return 0
        sleep 0.05
    done
    return 1
}
check "the sync worker embeds text of a LATIN1 database" latin1_drained
check "... with the same vector as the same text in a UTF-8 database" \
    eq "$(PGCLIENTENCODING=UTF8 tenant latin1_db -c "SELECT embedding FROM t")" "$(PGCLIENTENCODING=UTF8 q -c "SELECT qwen3_embed('Ein Café in Zürich, naïve façade', NULL, 64)")"

# Writers never deadlock with the drain: 4 clients delete and update single rows while the
# workers drain 3,000.
q -c "CREATE TABLE dl (id int PRIMARY KEY, body text, embedding vector(64))" \
  -c "SELECT qwen3_embed_sync('dl', 'body', 'embedding')" >/dev/null
q -c "INSERT INTO dl SELECT i, 'deadlock row ' || i FROM generate_series(1, 3000) i" >/dev/null
dl_pids=()
for c in 0 1 2 3; do
    python3 -c "
for i in range($c * 125 + 1, $c * 125 + 126):
    print(f'DELETE FROM dl WHERE id = {i * 6};')
    print(f'UPDATE dl SET body = body || {chr(39)} changed{chr(39)} WHERE id = {i * 6 - 3};')
" | pg_local_psql -qAt -v ON_ERROR_STOP=0 -v VERBOSITY=verbose >"$WORK/dl_$c.out" 2>&1 &
    dl_pids+=($!)
done
for p in "${dl_pids[@]}"; do wait "$p" || true; done
check "1,000 single-row deletes and updates against a draining queue: no 40P01, no error" \
    eq "$(cat "$WORK"/dl_*.out | grep -c -E '40P01|ERROR' || true)" 0
dl_done() {
    for _ in $(seq 600); do
        [[ "$(q -c "SELECT pending + waiting_retry + failed FROM qwen3_embed_sync_status WHERE relation = 'dl'::regclass")" == 0 ]] && break
        sleep 0.1
    done
    local got
    got="$(q -c "SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)), count(*) FROM dl")"
    [[ "$got" == "2500|2500" ]] && return 0
    echo "      $got; $(q -c "SELECT pending, waiting_retry, failed FROM qwen3_embed_sync_status WHERE relation = 'dl'::regclass")"
    return 1
}
check "... and every remaining row has its current text's vector" dl_done
q -c "DROP TABLE dl" >/dev/null
check "dropping the table leaves none of its queue rows behind" \
    eq "$(q -c "SELECT count(*) FROM qwen3_embed.queue q WHERE NOT EXISTS (SELECT 1 FROM qwen3_embed.syncs s WHERE s.id = q.sync_id)")" 0

# Tokenizing stops on cancel: a 60 MB input under statement_timeout = 1 s ends within 1.5 s, and
# 5 s later the backend's memory is back within 100 MB of where it started.
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo gone; }
for mode in on off; do
    for f in "qwen3_token_count(x)" "cardinality(qwen3_tokenize(x))" "(SELECT count(*) FROM qwen3_chunks(x))"; do
        # The previous round's file must be gone before this one starts: the background psql
        # truncates it only once it runs, and its old first line is a backend that has ended.
        rm -f "$WORK/cancel.out"
        pg_local_psql -qAt -v ON_ERROR_STOP=0 -c "SET qwen3_embed.use_server = $mode" \
            -c "SELECT pg_backend_pid()" -c "SELECT qwen3_token_count('warm')" -c "SELECT pg_sleep(1.5)" \
            -c "SET statement_timeout = '1s'" -c "SELECT extract(epoch FROM clock_timestamp())" \
            -c "SELECT $f FROM (SELECT repeat('lorem ipsum dolor sit amet ', 2300000) AS x) s" \
            -c "SELECT extract(epoch FROM clock_timestamp())" -c "RESET statement_timeout" -c "SELECT pg_sleep(10)" \
            >"$WORK/cancel.out" 2>&1 &
        psql_pid=$!
        for _ in $(seq 100); do [[ -s "$WORK/cancel.out" ]] && break; sleep 0.05; done
        backend="$(head -n 1 "$WORK/cancel.out")"
        sleep 1.2
        rss0="$(rss_kb "$backend")"
        sleep 7
        rss1="$(rss_kb "$backend")"
        wait "$psql_pid" || true
        took_ms="$(grep -E '^[0-9]+\.[0-9]+$' "$WORK/cancel.out" | head -n 2 | awk 'NR == 1 { a = $1 } NR == 2 { printf "%d", ($1 - a) * 1000 }')"
        echo "      use_server = $mode, $f on 60 MB: ended after ${took_ms} ms; backend RSS ${rss0} kB before, ${rss1} kB 5 s after"
        [[ "$rss0$rss1" =~ ^[0-9]+$ ]] || { echo "      the backend ended early:"; sed 's/^/      /' "$WORK/cancel.out"; tail -n 20 "$LOG"; }
        check "use_server = $mode: $f on 60 MB under statement_timeout 1 s: 57014 within 1.5 s, memory returned" \
            bash -c "grep -q 'canceling statement due to statement timeout' '$WORK/cancel.out' && [[ '$rss0$rss1' =~ ^[0-9]+\$ && ${took_ms:-99999} -le 1500 ]] && (( ${rss1/gone/0} - ${rss0/gone/0} <= 102400 ))"
    done
done

# --- 14. monitoring ---------------------------------------------------------------------------------
# What postgres_exporter would read, as the role it would run as (pg_monitor, no right on the
# synced tables): the syncs of this database and the model server's counters and models.
q -c "CREATE ROLE exporter LOGIN IN ROLE pg_monitor"
# PyYAML: the python3 on PATH may be another than Debian's, which setup.sh gives python3-yaml.
YAML_PYTHON=python3
python3 -c "import yaml" 2>/dev/null || YAML_PYTHON=/usr/bin/python3
check "every query of contrib/postgres_exporter/queries.yaml runs as a pg_monitor role and gives the listed metrics" \
    "$YAML_PYTHON" tests/exporter_queries.py contrib/postgres_exporter/queries.yaml \
        "$PG_BIN/psql" -h "$PG_LOCAL_DIR" -p "$PG_LOCAL_PORT" -U exporter -d postgres -X
check "... and sees every sync of the database, which qwen3_embed_sync_status does not show it" \
    eq "$(pg_local_psql -U exporter -d postgres -qAt -c "SELECT (SELECT count(*) FROM qwen3_embed_sync_metrics()), (SELECT count(*) FROM qwen3_embed_sync_status)")" \
       "$(q -c "SELECT count(*) FROM qwen3_embed.syncs")|0"

# --- 15. installing over the running server -------------------------------------------------------
# scripts/install.sh (the README's install) replaces the library this preloaded cluster has
# mapped, by rename: every process keeps serving. (cargo pgrx install rewrote it in place, and
# every process that had it mapped died.)
LIB="$("$PG_BIN/pg_config" --pkglibdir)/qwen3_embed.so"
inode0="$(stat -c %i "$LIB")"
server0="$(q -c "SELECT pid, restarts FROM qwen3_embed_server_stats()")"
start0="$(q -c "SELECT pg_postmaster_start_time()")"
q -c "SELECT vector_dims(qwen3_embed('open across the install'))" -c "SELECT count(*) FROM pg_sleep(6)" \
    -c "SELECT vector_dims(qwen3_embed('still open after the install'))" >"$WORK/across.out" 2>&1 &
ACROSS=$!
sleep 1
installed="$(PROFILE=dev bash scripts/install.sh --pg-config "$PG_BIN/pg_config" 2>&1 && echo installed)" || true
check "scripts/install.sh over the running preloaded cluster installs a new file" \
    eq "$(tail -n 1 <<<"$installed") $([[ "$(stat -c %i "$LIB")" != "$inode0" ]] && echo new-inode)" "installed new-inode"
set +e; wait "$ACROSS"; across_rc=$?; set -e
check "... a session open across it goes on embedding" eq "$across_rc $(tr '\n' ' ' <"$WORK/across.out")" "0 256 1 256 "
check "... new sessions embed through the same model server process, not restarted" \
    eq "$(q -c "SELECT vector_dims(qwen3_embed('a new session after the install'))") $(q -c "SELECT pid, restarts FROM qwen3_embed_server_stats()")" \
       "256 $server0"
check "... and the cluster was not restarted" eq "$(q -c "SELECT pg_postmaster_start_time()")" "$start0"

# --- 16. the index a sync makes ---------------------------------------------------------------------
# An ordinary role's synced table gets its HNSW index from the sync worker once it holds
# index_rows vectors: built concurrently, as that role (its owner).
q -c "CREATE ROLE ix_owner LOGIN" -c "GRANT CREATE ON SCHEMA public TO ix_owner" >/dev/null
pg_local_psql -U ix_owner -d postgres -qAt \
  -c "CREATE TABLE ix_docs (id int PRIMARY KEY, body text, embedding vector(64))" \
  -c "INSERT INTO ix_docs SELECT i, 'indexed document ' || i FROM generate_series(1, 300) i" \
  -c "SET client_min_messages = warning" \
  -c "SELECT qwen3_embed_sync('ix_docs', 'body', 'embedding', index_rows => 250) > 0" >/dev/null
index_state=""
for _ in $(seq 600); do
    index_state="$(q -c "SELECT index FROM qwen3_embed_sync_status WHERE relation = 'ix_docs'::regclass")"
    [[ "$index_state" == ready* || "$index_state" == failed* ]] && break
    sleep 0.1
done
echo "      ix_docs: $index_state"
check "the sync worker builds the HNSW index once the column holds index_rows vectors" \
    eq "$index_state" "ready: ix_docs_embedding_hnsw"
check "... a valid cosine HNSW index, owned by the table's owner" \
    eq "$(q -c "SELECT i.indisvalid, am.amname, opc.opcname, pg_get_userbyid(c.relowner)
                FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
                JOIN pg_opclass opc ON opc.oid = i.indclass[0] WHERE c.relname = 'ix_docs_embedding_hnsw'")" \
       "t|hnsw|vector_cosine_ops|ix_owner"
check "... which a nearest-neighbour query uses" \
    has "$(q -c "SET enable_seqscan = off" -c "EXPLAIN SELECT id FROM ix_docs ORDER BY embedding <=> qwen3_embed('a query', NULL, 64) LIMIT 5")" \
        "Index Scan using ix_docs_embedding_hnsw"

# A build that fails is recorded with its error and leaves no invalid index; one whose worker
# stops is recorded as interrupted by the next worker; sync_alter's index_rows tries again. A
# session holding ROW EXCLUSIVE on the table (as any writer does) keeps the build, and the
# clean-up's DROP INDEX CONCURRENTLY, waiting while the worker is cancelled or stopped.
ix_owner() { pg_local_psql -U ix_owner -d postgres -qAt "$@"; }
ix_owner -c "CREATE TABLE ix_fail (id int PRIMARY KEY, body text, embedding vector(64))" \
  -c "INSERT INTO ix_fail SELECT i, 'document ' || i FROM generate_series(1, 100) i" \
  -c "SET client_min_messages = warning" \
  -c "SELECT qwen3_embed_sync('ix_fail', 'body', 'embedding') > 0" >/dev/null
ix_status() { q -c "SELECT index FROM qwen3_embed_sync_status WHERE relation = 'ix_fail'::regclass"; }
ix_until() { # the status reaches $1 (a glob), 60 s at most
    for _ in $(seq 600); do
        [[ "$(ix_status)" == $1 ]] && return 0
        sleep 0.1
    done
    echo "      ix_fail's index: $(ix_status)"
    return 1
}
ix_others() { q -c "SELECT count(*) FROM pg_index WHERE indrelid = 'ix_fail'::regclass AND NOT indisprimary"; }
ix_build_waits() { # a worker is building ix_fail's index (waiting for the holder), and prints its pid
    local pid=""
    for _ in $(seq 600); do
        pid="$(q -c "SELECT p.pid FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid)
                     WHERE a.backend_type = 'qwen3_embed sync worker' AND p.relid = 'ix_fail'::regclass")"
        [[ -n "$pid" ]] && { echo "$pid"; return 0; }
        sleep 0.1
    done
    return 1
}
ix_build_held() { # index_rows set, one row queued, the holder in place: prints the building worker's pid
    PGAPPNAME=ix_holder pg_local_psql -d postgres -qAt -c "BEGIN" -c "LOCK ix_fail IN ROW EXCLUSIVE MODE" \
        -c "SELECT pg_sleep(300)" >/dev/null 2>&1 &
    for _ in $(seq 100); do
        [[ "$(q -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                    WHERE a.application_name = 'ix_holder' AND l.relation = 'ix_fail'::regclass AND l.granted")" == 1 ]] && break
        sleep 0.1
    done
    ix_owner -c "SELECT qwen3_embed_sync_alter('ix_fail', 'embedding', index_rows => 50) IS NOT NULL" \
             -c "UPDATE ix_fail SET body = body || '.' WHERE id = 1" >/dev/null
    ix_build_waits
}
ix_release() { q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ix_holder'" >/dev/null; }
ix_gone() { # no index but the key on ix_fail, 30 s at most
    for _ in $(seq 300); do
        [[ "$(ix_others)" == 0 ]] && return 0
        sleep 0.1
    done
    return 1
}
for _ in $(seq 600); do
    [[ "$(q -c "SELECT count(embedding) FROM ix_fail")" == 100 ]] && break
    sleep 0.1
done
worker="$(ix_build_held || true)"
check "the worker builds the index while a writer holds the table (pg_stat_progress_create_index)" test -n "$worker"
q -c "SELECT pg_cancel_backend(${worker:-0})" >/dev/null
check "a cancelled index build is recorded as failed, with its error" \
    ix_until "failed: canceling statement due to user request"
ix_release
check "... and the invalid index it left is dropped" ix_gone
worker="$(ix_build_held || true)"
q -c "SELECT pg_terminate_backend(${worker:-0})" >/dev/null
ix_release
ix_owner -c "UPDATE ix_fail SET body = body || '.' WHERE id = 2" >/dev/null
check "a build whose worker stopped is recorded as interrupted by the next worker" \
    ix_until "failed: the build was interrupted: its worker stopped"
check "... which drops the invalid index it left" ix_gone
ix_owner -c "SELECT qwen3_embed_sync_alter('ix_fail', 'embedding', index_rows => 50) IS NOT NULL" \
         -c "UPDATE ix_fail SET body = body || '.' WHERE id = 3" >/dev/null
check "sync_alter's index_rows tries a failed index again: ready and valid" \
    eq "$(ix_until "ready*" && q -c "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_fail_embedding_hnsw'::regclass")" t

check "no process of the cluster was terminated by a signal in these scenarios" \
    eq "$(grep -c 'terminated by signal' "$LOG" || true)" "$signals_before"

summary
