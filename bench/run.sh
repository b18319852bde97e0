#!/usr/bin/env bash
# run.sh — `make bench`: the engine's hot buy path against its two baselines.
#
#   bench/run.sh BUILD_DIR
#
# Environment:
#   BENCH_QUICK=1            short runs (under 2 minutes in all), same keys
#   BENCH_NAIVE_SECONDS=S    seconds per client count of the naive baseline
#   BENCH_BATCHED_SECONDS=S  seconds of the hand-batched baseline
#   BENCH_BASELINE=REV       also build REV's bench_engine (a git revision; default
#                            HEAD~1, the previous commit) in a temporary worktree
#                            and run it and this tree's, alternately, on fresh
#                            databases of the same PostgreSQL: the "side by side"
#                            rows and their ratios. BENCH_BASELINE=none skips it.
#   BENCH_BASELINE_ROUNDS=N  alternating rounds of each (default 2; best kept)
#   BENCH_DAEMON_ROUNDS=N    rounds of the tallyd rows (in process, unix, TLS; default 1)
#
# Starts a throwaway PostgreSQL (tools/pg.sh) in a mktemp folder that is
# removed on exit, also on failure or ^C. The engine bench gets the pristine
# database "tally" (it applies its own migrations); the baselines get their
# own database "bench_baseline" holding bench/naive.sql. Results are merged
# into bench/out/latest.json and printed as a table with the targets.
# Exits 0 when every program ran (targets BELOW do not fail it), 1 otherwise.
set -euo pipefail

usage() { echo "usage: bench/run.sh BUILD_DIR   (env BENCH_QUICK=1 for a short run)" >&2; exit 2; }
[ $# -eq 1 ] || usage
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1
[ -d "$build" ] || { echo "run.sh: no build folder $build" >&2; exit 2; }
build=$(cd "$build" && pwd)

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PYTHON=${PYTHON:-/usr/bin/python3}
BUYERS=10000
ITEMS=100
BASE_DB=bench_baseline
quick=0
[ "${BENCH_QUICK:-0}" = 1 ] && quick=1
if [ "$quick" = 1 ]; then
  naive_s=${BENCH_NAIVE_SECONDS:-4}; batched_s=${BENCH_BATCHED_SECONDS:-8}; qflag=--quick
else
  naive_s=${BENCH_NAIVE_SECONDS:-15}; batched_s=${BENCH_BATCHED_SECONDS:-30}; qflag=
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tally-bench.XXXXXX")
# mktemp makes the folder 0700. PostgreSQL's socket lives in it, and the IRC
# rows' m_tally runs inside InspIRCd as user irc: without this its engine
# never reaches PostgreSQL and answers "starting up" forever.
chmod 755 "$tmp"
base_tree=
cleanup() {
  "$root/tools/pg.sh" stop "$tmp" >/dev/null 2>&1 || true
  if [ -n "$base_tree" ]; then
    git -C "$root" worktree remove --force "$base_tree" >/dev/null 2>&1 || true
    git -C "$root" worktree prune >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "bench: starting PostgreSQL in $tmp" >&2
dsn=$("$root/tools/pg.sh" start "$tmp")
"$PGBIN/createdb" -h "$tmp" -p 5432 -U tally "$BASE_DB"
base_dsn=${dsn/dbname=tally/dbname=$BASE_DB}
psql_base() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$base_dsn" "$@"; }
psql_base -f "$root/bench/naive.sql"
psql_base -c "SELECT naive_seed($BUYERS, $ITEMS)" >/dev/null

failed=0
# run_json NAME PROGRAM ARGS...: stdout (one JSON object) into $tmp/NAME.json.
run_json() {
  local name=$1; shift
  if [ ! -x "$1" ]; then
    echo "bench: $1 missing (build it with make bench)" >&2; failed=1; return 0
  fi
  echo "bench: $name ..." >&2
  if ! "$@" >"$tmp/$name.json"; then
    echo "bench: $name failed" >&2; rm -f "$tmp/$name.json"; failed=1
  fi
}

engine_state="not built"
if [ -x "$build/bench/bench_engine" ]; then
  engine_state=ok
  run_json engine "$build/bench/bench_engine" --dsn "$dsn" $qflag
  [ -f "$tmp/engine.json" ] || engine_state=failed
else
  echo "engine: not built" >&2
fi

# Side by side with a baseline revision (default: the previous commit). Its
# bench_engine is built from a clean worktree of that revision, then the two
# run alternately, each round on a fresh database of the same PostgreSQL, so
# that both see the same machine load, and the best round of each is kept.
baseline=${BENCH_BASELINE:-HEAD~1}
rounds=${BENCH_BASELINE_ROUNDS:-2}
side_state="skipped (BENCH_BASELINE=none)"
if [ "$baseline" != none ] && [ -x "$build/bench/bench_engine" ]; then
  side_state="failed"
  base_rev=$(git -C "$root" rev-parse --short=12 "$baseline^{commit}" 2>/dev/null || true)
  if [ -z "$base_rev" ]; then
    echo "bench: baseline $baseline is not a git revision here" >&2; failed=1
  else
    base_tree="$tmp/baseline-src"
    echo "bench: building $baseline ($base_rev) bench_engine in $base_tree ..." >&2
    if git -C "$root" worktree add --detach -q "$base_tree" "$base_rev" &&
       make -C "$base_tree" --no-print-directory -j2 BUILD=build build/bench/bench_engine \
         >"$tmp/baseline-build.log" 2>&1; then
      side_state=ok
      for r in $(seq 1 "$rounds"); do
        for side in base head; do
          db="side_${side}_$r"
          "$PGBIN/createdb" -h "$tmp" -p 5432 -U tally "$db"
          bin="$build/bench/bench_engine"; [ "$side" = base ] && bin="$base_tree/build/bench/bench_engine"
          run_json "side_${side}_$r" "$bin" --dsn "${dsn/dbname=tally/dbname=$db}" --quick
          [ -f "$tmp/side_${side}_$r.json" ] || side_state=failed
        done
      done
    else
      echo "bench: could not build $baseline (log: tail of $tmp/baseline-build.log):" >&2
      tail -20 "$tmp/baseline-build.log" >&2 || true
      failed=1
    fi
  fi
fi

# XMPP rows (bench/xmpp_bench.py): Prosody with and without mod_tally, buys over XMPP.
if [ -x "$build/prosody/tally.so" ] || [ -f "$build/prosody/tally.so" ]; then
  TALLY_BUILD=$build run_json xmpp "$PYTHON" "$root/bench/xmpp_bench.py" --dsn "$dsn" --build "$build" $qflag
fi

# tallyd rows (bench/daemon_bench.py): in process, unix socket and TLS,
# alternately on fresh databases of this PostgreSQL; ratios over in process.
if [ -x "$build/tallyd" ] && [ -x "$build/bench/bench_engine" ]; then
  TALLY_BUILD=$build run_json daemon "$PYTHON" "$root/bench/daemon_bench.py" --build "$build" --dsn "$dsn" \
    --pgbin "$PGBIN" --rounds "${BENCH_DAEMON_ROUNDS:-1}"
else
  echo "bench: tallyd rows: build/tallyd missing, skipped" >&2
fi

# Matrix rows (bench/matrix_bench.py): tallyd's Application Service driven by
# the homeserver double: transactions/s, buys/s, transaction -> answer p50/p99.
if [ -x "$build/tallyd" ] && [ -x "$build/tally" ]; then
  TALLY_BUILD=$build run_json matrix "$PYTHON" "$root/bench/matrix_bench.py" --build "$build" --dsn "$dsn" \
    --pgbin "$PGBIN" $qflag
else
  echo "bench: matrix rows: build/tallyd or build/tally missing, skipped" >&2
fi

# Flood row (bench/bench_flood.c): its own database, production rate limits.
"$PGBIN/createdb" -h "$tmp" -p 5432 -U tally bench_flood
run_json flood "$build/bench/bench_flood" --dsn "${dsn/dbname=tally/dbname=bench_flood}" $qflag

psql_base -c CHECKPOINT
run_json naive "$build/bench/baseline_naive" --dsn "$base_dsn" --seconds "$naive_s" $qflag
psql_base -c CHECKPOINT
run_json batched "$build/bench/baseline_batched" --dsn "$base_dsn" --seconds "$batched_s" $qflag

# IRC rows (bench/irc_bench.py): InspIRCd with and without m_tally, buys over IRC.
if [ -f "$build/m_tally.so" ] && [ -x /usr/sbin/inspircd ]; then
  run_json irc "$PYTHON" "$root/bench/irc_bench.py" --dsn "$dsn" --build "$build" $qflag
else
  echo "bench: irc: m_tally.so or inspircd missing, skipped" >&2
fi

commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=false
[ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=true
mkdir -p "$root/bench/out"
out="$root/bench/out/latest.json"

BENCH_TMP=$tmp BENCH_OUT=$out BENCH_QUICK_FLAG=$quick BENCH_COMMIT=$commit \
BENCH_DIRTY=$dirty BENCH_ENGINE=$engine_state BENCH_SIDE=$side_state \
BENCH_BASE_REV=${base_rev:-} BENCH_ROUNDS=$rounds "$PYTHON" - <<'PY' || failed=1
import json, os, sys, datetime

tmp, out = os.environ["BENCH_TMP"], os.environ["BENCH_OUT"]
status = 0

def load(name):
    global status
    path = os.path.join(tmp, name + ".json")
    if not os.path.exists(path):
        return {}
    try:
        obj = json.loads(open(path).read().strip() or "null")
        if isinstance(obj, dict):
            return obj
        raise ValueError("not a JSON object")
    except ValueError as e:
        print(f"bench: {name} printed no JSON object: {e}", file=sys.stderr)
        status = 1
        return {}

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"

def ratio(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0:
        return round(a / b, 2)
    return None

engine, naive, batched = load("engine"), load("naive"), load("batched")
irc, flood, daemon, xmpp = load("irc"), load("flood"), load("daemon"), load("xmpp")
matrix = load("matrix")
engine_state = os.environ["BENCH_ENGINE"]
if engine_state == "ok" and not engine:
    engine_state = "failed"
res = {}
res.update(engine)
res.update(naive)
res.update(batched)
res.update(irc)
res.update(flood)
res.update(daemon)
res.update(xmpp)
res.update(matrix)
# Side by side: the best round of each (highest rate, lowest latency).
SIDE_KEYS = [("durable_per_s", max), ("p50_us", min), ("p99_us", min), ("decide_per_s", max),
             ("paced_p99_us", min), ("herd_ms", min)]
side = {"state": os.environ["BENCH_SIDE"], "baseline": os.environ["BENCH_BASE_REV"] or None}
if side["state"] == "ok":
    rounds = int(os.environ["BENCH_ROUNDS"])
    runs = {s: [load(f"side_{s}_{r}") for r in range(1, rounds + 1)] for s in ("base", "head")}
    for key, best in SIDE_KEYS:
        vals = {s: [x[key] for x in runs[s] if isinstance(x.get(key), (int, float))] for s in runs}
        if vals["base"] and vals["head"]:
            b, h = best(vals["base"]), best(vals["head"])
            # Each round's own ratio too: base r and head r ran back to back, so
            # their spread shows how far one machine moves between two runs.
            paired = [ratio(x[key], y[key]) for x, y in zip(runs["head"], runs["base"])
                      if isinstance(x.get(key), (int, float)) and isinstance(y.get(key), (int, float))]
            paired = [r for r in paired if r is not None]
            side[key] = {"baseline": b, "head": h, "head_over_baseline": ratio(h, b),
                         "baseline_rounds": vals["base"], "head_rounds": vals["head"], "round_ratios": paired}
res["side_by_side"] = side
res["ratio_vs_naive"] = ratio(res.get("durable_per_s"), res.get("naive_per_s"))
res["ratio_vs_batched_sql"] = ratio(res.get("durable_per_s"), res.get("batched_sql_per_s"))
res["engine"] = engine_state
res["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
res["git_commit"] = os.environ["BENCH_COMMIT"]
res["git_dirty"] = os.environ["BENCH_DIRTY"] == "true"
res["machine"] = {"nproc": os.cpu_count(), "cpu_model": cpu_model()}
res["quick"] = os.environ["BENCH_QUICK_FLAG"] == "1"
with open(out + ".tmp", "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
os.replace(out + ".tmp", out)

TARGETS = [  # key, test, shown target
    ("decide_per_s", lambda v: v >= 5_000_000, ">= 5,000,000"),
    ("herd_sold", lambda v: v == 100, "== 100"),
    ("herd_answered", lambda v: v == 100_000, "== 100,000"),
    ("ratio_vs_naive", lambda v: v >= 20, ">= 20"),
    ("ratio_vs_batched_sql", lambda v: v >= 2, ">= 2"),
    ("irc_ratio", lambda v: v >= 0.97, ">= 0.97"),
    ("flood_legit_refused", lambda v: v == 0, "== 0"),
    ("flood_p99_ratio", lambda v: v <= 2, "<= 2"),
    ("irc_herd_sold", lambda v: v == res.get("irc_herd_stock"), "== stock"),
    ("xmpp_ratio", lambda v: v >= 0.97, ">= 0.97"),
    ("daemon_unix_peak_ratio", lambda v: v >= 0.9, ">= 0.9"),
    ("daemon_tls_peak_ratio", lambda v: v >= 0.9, ">= 0.9"),
    ("daemon_stall_p99_ratio", lambda v: v <= 2, "<= 2"),
    ("daemon_unix_p99_added_us", lambda v: v <= 1000, "<= 1000"),
    ("daemon_tls_p99_added_us", lambda v: v <= 1000, "<= 1000"),
    ("matrix_buys_refused", lambda v: v == 0, "== 0"),
]
target_of = {k: (t, s) for k, t, s in TARGETS}

def fmt(v):
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v).lower()
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    return str(v)

def row(label, key):
    v = res.get(key)
    target, verdict = "", ""
    if key in target_of:
        test, target = target_of[key]
        verdict = "n/a" if not isinstance(v, (int, float)) else ("PASS" if test(v) else "BELOW")
    print(f"  {label:<28} {fmt(v):>16}   {target:<14} {verdict}")

m = res["machine"]
print()
print(f"tally bench{' (quick)' if res['quick'] else ''}: {res['date']}, commit "
      f"{res['git_commit']}{' (dirty)' if res['git_dirty'] else ''}, "
      f"{m['nproc']} x {m['cpu_model']}")
print(f"  {'':<28} {'value':>16}   {'target':<14} result")
if engine_state != "ok":
    print(f"  engine: {engine_state}")
for key in ("decide_per_s", "durable_per_s", "p50_us", "p99_us", "p999_us"):
    row(key, key)
conc = res.get("durable_conc")
if isinstance(conc, dict):
    for c, v in conc.items():
        print(f"  {'durable @ ' + str(c):<28} {fmt(v):>16}")
for key in ("herd_sold", "herd_answered", "herd_ms"):
    row(key, key)
known = {"decide_per_s", "durable_per_s", "p50_us", "p99_us", "p999_us",
         "durable_conc", "herd_sold", "herd_answered", "herd_ms"}
for key in engine:
    if key not in known:
        row(key, key)
row(f"naive_per_s ({fmt(res.get('naive_clients'))} clients)", "naive_per_s")
row(f"batched_sql_per_s ({fmt(res.get('batched_sql_clients'))} x "
    f"{fmt(res.get('batched_sql_batch'))})", "batched_sql_per_s")
row("ratio_vs_naive", "ratio_vs_naive")
row("ratio_vs_batched_sql", "ratio_vs_batched_sql")
for key in ("flood_base_p50_us", "flood_base_p99_us", "flood_legit_p50_us", "flood_legit_p99_us",
            "flood_p99_ratio", "flood_legit_refused", "flood_per_s", "flood_rate_limited", "flood_busy",
            "flood_rss_mb_before", "flood_rss_mb_after"):
    row(key, key)
for key in ("irc_msgs_per_s_without", "irc_msgs_per_s_with", "irc_ratio", "irc_buys_per_s",
            "irc_herd_buyers", "irc_herd_stock", "irc_herd_sold", "irc_herd_sold_out", "irc_herd_ms"):
    row(key, key)
for key in ("xmpp_msgs_per_s_without", "xmpp_msgs_per_s_with", "xmpp_ratio", "xmpp_cpu_us_per_msg_without",
            "xmpp_cpu_us_per_msg_with", "xmpp_buys_per_s", "xmpp_buys_refused"):
    row(key, key)
for key in ("matrix_txns_per_s", "matrix_txn_p50_ms", "matrix_txn_p99_ms", "matrix_events_per_s",
            "matrix_buys_per_s", "matrix_buy_answer_p50_ms", "matrix_buy_answer_p99_ms", "matrix_buys_refused"):
    row(key, key)
for mode in ("inproc", "unix", "tls"):
    for k in ("per_s", "p99_us", "paced_p99_us"):
        row(f"daemon {mode} @64 {k}", f"daemon_{mode}_{k}")
    row(f"daemon {mode} peak per_s", f"daemon_{mode}_peak_per_s")
for key in ("daemon_unix_ratio", "daemon_tls_ratio", "daemon_unix_peak_ratio", "daemon_tls_peak_ratio",
            "daemon_unix_p99_added_us", "daemon_tls_p99_added_us", "daemon_stall_free_p99_us",
            "daemon_stall_p99_us", "daemon_stall_p99_ratio", "daemon_stall_per_s", "daemon_staller_sent"):
    row(key, key)
for key in ("irc_msgs_error", "irc_buys_error", "irc_herd_error", "xmpp_msgs_error", "xmpp_buys_error"):
    if res.get(key):
        print(f"  {key}: {res[key]}")
print()
if side["state"] == "ok":
    print(f"side by side with {side['baseline']} (bench_engine --quick, best of "
          f"{os.environ['BENCH_ROUNDS']} alternating rounds each, same PostgreSQL):")
    print(f"  {'':<28} {'baseline':>12} {'this tree':>12} {'ratio':>8}")
    for key, best in SIDE_KEYS:
        v = side.get(key)
        if v:
            print(f"  {key:<28} {fmt(v['baseline']):>12} {fmt(v['head']):>12} "
                  f"{fmt(v['head_over_baseline']):>8}  ({'higher' if best is max else 'lower'} is better)")
            rr = sorted(v["round_ratios"])
            if rr:
                print(f"  {'':<28} round by round: {', '.join(fmt(x) for x in v['round_ratios'])}"
                      f" (median {fmt(rr[len(rr) // 2])})")
else:
    print(f"side by side: {side['state']}")
print(f"  -> {os.path.relpath(out)}")
sys.exit(status)
PY

exit "$failed"
