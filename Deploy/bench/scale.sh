# shellcheck shell=bash disable=SC2154  # sourced by run, whose variables it uses
# Sourced by Deploy/bench/run --scale, after the import: G1 lookups at 8 and 64 connections
# served by one instance directly (S1), one instance through PgBouncer in transaction mode
# (S2), and two instances through the same PgBouncer, the connections split between them (S3).
# Needs run's variables and functions (work, pg_run, itaku, serve, wrk_run, report).

bouncer_port=6439
start_pgbouncer() {
    local dir=$work/pgbouncer
    mkdir -p "$dir"
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
itaku = host=$pg_run dbname=itaku
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 32
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    printf '"itaku_runtime" ""\n"itaku_reader" ""\n' >"$dir/userlist.txt"
    chown -R "$(pg_user)": "$dir"
    as_pg_user pgbouncer -d "$dir/pgbouncer.ini"
}

stop_pgbouncer() {
    local pid
    pid=$(cat "$work/pgbouncer/pgbouncer.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || true
}

# start_pooled_instance ID PORT: `itaku serve` through PgBouncer; prints its pid.
start_pooled_instance() {
    local id=$1 port=$2
    ITAKU_INSTANCE_ID=$id ITAKU_HTTP_PORT=$port ITAKU_DB_POOLER=transaction ITAKU_DB_MIGRATE_ON_START=false \
        ITAKU_DB_URL="postgresql://itaku_runtime@127.0.0.1:$bouncer_port/itaku" \
        ITAKU_DB_READER_URL="postgresql://itaku_reader@127.0.0.1:$bouncer_port/itaku" \
        ITAKU_DB_LISTEN_URL="postgresql:///itaku?host=$pg_run&user=itaku_reader" \
        "$itaku" serve >"$work/serve-$id.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ]; then echo "$pid"; return 0; fi
        sleep 0.2
    done
    log "itaku serve ($id) did not become ready; see $work/serve-$id.log"
    return 1
}

scale_measure() {
    cd "$work" || return 1
    for clients in 8 64; do wrk_run s1 lookup phones.txt "$clients"; done
    kill "$serve"; wait "$serve" 2>/dev/null || true
    serve=
    start_pgbouncer
    trap 'stop_pgbouncer; finish' EXIT
    serve=$(start_pooled_instance bench-a 8091)
    for clients in 8 64; do wrk_run s2 lookup phones.txt "$clients"; done
    local second
    second=$(start_pooled_instance bench-b 8092)
    for clients in 8 64; do
        settle
        log "s3: wrk lookup, $clients connections over two instances, ${seconds}s"
        local half=$((clients / 2))
        BENCH_MODE=lookup BENCH_FILE=phones.txt BENCH_RESULT="s3a_$clients.json" \
            wrk -t1 -c"$half" -d"${seconds}s" -s "$bench/agent.lua" "http://127.0.0.1:8091" >"wrk_s3a_$clients.txt" &
        local first_wrk=$!
        BENCH_MODE=lookup BENCH_FILE=phones.txt BENCH_RESULT="s3b_$clients.json" \
            wrk -t1 -c"$half" -d"${seconds}s" -s "$bench/agent.lua" "http://127.0.0.1:8092" >"wrk_s3b_$clients.txt"
        wait "$first_wrk"
    done
    kill "$second"; wait "$second" 2>/dev/null || true
    python3 - <<'PY'
import json
def load(name):
    return json.load(open(name))
rows = []
for label, name in [("one instance, direct", "s1"), ("one instance, PgBouncer", "s2")]:
    for c in (8, 64):
        f = load(f"{name}_{c}.json")
        rows.append((label, c, f["rps"], f["p99_ms"], f["failed"] + f["socket_errors"]))
for c in (8, 64):
    a, b = load(f"s3a_{c}.json"), load(f"s3b_{c}.json")
    rows.append(("two instances, PgBouncer", c, a["rps"] + b["rps"], max(a["p99_ms"], b["p99_ms"]),
                 a["failed"] + b["failed"] + a["socket_errors"] + b["socket_errors"]))
json.dump([dict(zip(["setup", "connections", "lookups_per_second", "p99_ms", "errors"], r)) for r in rows],
          open("scale.json", "w"), indent=1)
print(f"{'setup':28} {'conns':>5} {'lookups/s':>10} {'p99 ms':>8} {'errors':>6}")
for r in rows:
    print(f"{r[0]:28} {r[1]:>5} {r[2]:>10.0f} {r[3]:>8.1f} {r[4]:>6}")
if any(r[4] for r in rows):
    raise SystemExit("some lookups failed")
PY
    cp scale.json "$root/bench-scale.json"
}
