#!/usr/bin/env bash
# run.sh SECONDS [TARGET...] — builds every libFuzzer target (or the named
# ones) into build/fuzz/ with clang-14 (ASan + UBSan) and runs each for
# SECONDS, one after the other, on one core (in-process: no -jobs, whose
# workers would log into the current directory).
#
# Each target runs on a scratch corpus, build/fuzz/<target>/work, seeded
# from the committed tests/fuzz/<target>/corpus and regressions (those are
# only read, never written). Crashes, leaks and timeouts land in
# build/fuzz/<target>/artifacts. Prints per target the executions, the
# coverage and corpus size libFuzzer reported, and whether it found
# anything; exits 1 if any target did. SECONDS=0 only builds.
#
# Environment: FUZZ_CC (default clang-14), FUZZ_FLAGS (extra libFuzzer
# flags, e.g. -dict=...), FUZZ_BUILD (default build/fuzz), FUZZ_MASK_KNOWN=1
# (build with -DTALLY_FUZZ_MASK_KNOWN: skip inputs that hit findings already
# reported in docs/FUZZING.md, so a long run can look for new ones).
set -uo pipefail
seconds=${1:?usage: tests/fuzz/run.sh SECONDS [target...]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cc=${FUZZ_CC:-clang-14}
out=${FUZZ_BUILD:-build/fuzz}
lib=${FUZZ_LIBTALLY:-build/libtally.a} # config, command_line: the features' keys (see core_sources)
all_targets=(command_frame effect_frame text config command_line receipt stream)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

# Core sources each target needs: compiled with clang into the fuzzer,
# because libtally's objects are built by gcc without coverage.
core_sources() {
  case $1 in
    command_frame|effect_frame) echo core/src/wire/codec.c core/src/base/msgpack_scan.c core/src/base/say.c \
                                     core/src/base/errors.c ;;
    stream) echo core/src/wire/stream.c core/src/wire/codec.c core/src/base/msgpack_scan.c core/src/base/say.c \
                 core/src/base/errors.c ;;
    text) echo core/src/base/text.c core/src/base/errors.c ;;
    # The config table is the core's keys plus each feature's (runtime.c's
    # feature table names them): the rest of the engine comes from the
    # plain build's archive, uninstrumented (`make` first).
    config) echo core/src/base/config.c core/src/runtime/config_api.c core/src/runtime/config_file.c \
                 core/src/base/text.c core/src/base/errors.c "$lib" ;;
    command_line) echo core/src/model/decide.c core/src/model/state.c core/src/model/keys.c core/src/base/map.c \
                       core/src/base/split.c core/src/model/audience_rows.c \
                       core/src/base/text.c core/src/base/config.c core/src/base/errors.c "$lib" ;;
    receipt) echo core/src/receipts/receipt.c core/src/base/msgpack_scan.c core/src/receipts/merkle.c core/src/receipts/signer.c \
                  core/src/base/errors.c ;;
    *) return 1 ;;
  esac
}

# Each layer folder of core/src is on the include path, as in the Makefile.
core_inc=$(for d in core/src/*/; do printf -- '-I%s ' "${d%/}"; done)
pkg=$(pkg-config --cflags --libs msgpack libuv openssl libpq libutf8proc 2>/dev/null) || pkg=""
build_one() { # target
  local t=$1 src
  src=$(core_sources "$t") || { echo "unknown fuzz target: $t" >&2; return 1; }
  mkdir -p "$out/$t"
  # shellcheck disable=SC2086  # word splitting of the source and flag lists is intended
  "$cc" -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer -D_GNU_SOURCE ${FUZZ_MASK_KNOWN:+-DTALLY_FUZZ_MASK_KNOWN} -Icore/include $core_inc -Ischemas -Itests/fuzz \
    "tests/fuzz/$t/fuzz_$t.c" $src $pkg -lmsgpackc -lcrypto -lm -lpthread -o "$out/fuzz_$t"
}

# The last "#N ... cov: C ft: F corp: K/..." status line of a libFuzzer log.
stat_of() { # log key
  grep -E '^#[0-9]+' "$1" | tail -1 | grep -oE "$2: [0-9]+" | head -1 | grep -oE '[0-9]+$'
}

status=0
summary=()
for t in "${targets[@]}"; do
  echo "== build fuzz_$t"
  if ! build_one "$t"; then
    summary+=("$(printf '%-14s BUILD FAILED' "$t")"); status=1; continue
  fi
  [ "$seconds" = 0 ] && continue
  work=$out/$t/work arts=$out/$t/artifacts log=$out/$t/fuzz.log
  mkdir -p "$work" "$arts"
  # Seed the scratch corpus; libFuzzer writes new inputs only into $work.
  cp -n tests/fuzz/"$t"/corpus/* "$work"/ 2>/dev/null
  find tests/fuzz/"$t"/regressions -type f ! -name .gitkeep -exec cp -n {} "$work"/ \; 2>/dev/null
  before=$(find "$arts" -type f | wc -l)
  echo "== fuzz_$t for ${seconds}s (log: $log)"
  # shellcheck disable=SC2086
  "$out/fuzz_$t" -max_total_time="$seconds" -max_len=2048 -malloc_limit_mb=512 -rss_limit_mb=2048 \
    -timeout=5 -print_final_stats=1 -artifact_prefix="$arts/" \
    ${FUZZ_FLAGS:-} "$work" >"$log" 2>&1
  rc=$?
  after=$(find "$arts" -type f | wc -l)
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | grep -oE '[0-9]+$')
  cov=$(stat_of "$log" cov) ft=$(stat_of "$log" ft) corp=$(stat_of "$log" corp)
  verdict="no finding"
  if [ "$rc" != 0 ] || [ "$after" -gt "$before" ]; then
    verdict="FOUND (exit $rc): $(ls -t "$arts" | head -1)"; status=1
    grep -E 'ERROR|runtime error|fuzz check failed|SUMMARY' "$log" | head -5 | sed 's/^/    /'
  fi
  summary+=("$(printf '%-14s execs %-10s cov %-6s ft %-6s corpus %-6s %s' \
    "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$verdict")")
done
[ ${#summary[@]} -gt 0 ] && printf '%s\n' "${summary[@]}"
exit $status
