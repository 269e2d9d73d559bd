#!/usr/bin/env bash
# Builds the libFuzzer targets under Fuzz/ and runs each for a fixed time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 60 s, every target
#
# Each target is one executable: its own Fuzz/<target>/*.swift, Fuzz/Support/*.swift and
# every source of Sources/ChatCore compiled together with
# `swiftc -sanitize=fuzzer[,address] -parse-as-library`, so the core is instrumented and the
# harness sees its internal API. ChatCore's package dependency (swift-crypto's Crypto)
# is built once by SwiftPM in its own scratch path
# and linked from its objects. See Fuzz/README.md.
#
# Two builds of every target (Fuzz/README.md, "Which build runs where"):
#   fast  $SCRATCH/fuzz/bin/       for long runs by hand: -sanitize=fuzzer (no ASan), no
#                                  dynamic exclusivity checks, and for the codec targets no
#                                  comparison tracing (edge coverage only); 2-7x the
#                                  executions a second. Swift's bounds and overflow checks
#                                  still trap.
#   asan  $SCRATCH/fuzz/bin-asan/  for CI and for replaying a crash: -sanitize=fuzzer,address
#                                  with the full default coverage (comparisons traced) and
#                                  exclusivity checked: memory errors in the core's
#                                  unsafe-pointer code are reported with allocation stacks.
#
# Environment:
#   FUZZ_ASAN            1: the ASan build, 0: the fast one. Default 1 when CI is set (.ci/run
#                        exports CI=true), else 0
#   FUZZ_SCRATCH         SwiftPM scratch path for the dependencies (default .build-fuzz)
#   FUZZ_BUILD_RETRIES   retries of a failed dependency build, a minute apart (default 0)
#   FUZZ_BUILD_ONLY=1    build the targets, run nothing
#   FUZZ_BUILD_JOBS      targets compiled at once (default 1; 2 on an otherwise idle machine)
#   FUZZ_EXTRA_ARGS      more libFuzzer flags for every run
#
# Exits non-zero when a build fails or any target finds a crash; crash inputs go to
# Fuzz/crashes/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(handshake_framing text_check peer_codec cluster peer_session http_request websocket_codec)
SECS=${1:-60}
shift || true
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
for t in "${TARGETS[@]}"; do
    [ -d "Fuzz/$t" ] || { echo "fuzz.sh: no target '$t' (have: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

SCRATCH=${FUZZ_SCRATCH:-.build-fuzz}
RETRIES=${FUZZ_BUILD_RETRIES:-0}
OUT="$SCRATCH/fuzz"
if [ -n "${FUZZ_ASAN:-}" ]; then ASAN=$FUZZ_ASAN
elif [ -n "${CI:-}" ] && [ "${CI}" != false ] && [ "${CI}" != 0 ]; then ASAN=1
else ASAN=0; fi
if [ "$ASAN" = 1 ]; then
    SANITIZE=fuzzer,address; BUILD=asan; BINDIR="$OUT/bin-asan"; WORKDIR=work-asan
else
    SANITIZE=fuzzer; BUILD=fast; BINDIR="$OUT/bin"; WORKDIR=work
fi
# The parsers, held to 10 M executions in 10 minutes (cluster and peer_session are state machines).
CODEC_TARGETS=" handshake_framing text_check peer_codec http_request websocket_codec "

# swiftc flags of a target in this build. Fast: the runtime's exclusivity checks off (~10 %),
# and for a codec no comparison tracing: in Swift every bounds and length check is an integer
# compare, so tracing cost 35-45 % of the CPU, and reached no more coverage per execution
# than edge coverage with the dictionaries (Fuzz/README.md, "Speed").
build_flags() {
    if [ "$ASAN" = 1 ]; then echo "-sanitize=fuzzer,address"; return; fi
    local f="-sanitize=fuzzer -enforce-exclusivity=unchecked"
    case "$CODEC_TARGETS" in
        *" $1 "*) f="$f -sanitize-coverage=edge,indirect-calls,inline-8bit-counters,pc-table" ;;
    esac
    echo "$f"
}
mkdir -p "$BINDIR" "$OUT/logs"
if [ "$ASAN" = 1 ]; then DESC="-sanitize=$SANITIZE"
else DESC="-sanitize=$SANITIZE, exclusivity unchecked, codecs without comparison tracing"; fi
echo "fuzz.sh: $BUILD build ($DESC) in $BINDIR"

# A crashing Swift process otherwise waits for swift-backtrace, which cannot attach here;
# libFuzzer and ASan print the stack themselves.
export SWIFT_BACKTRACE=enable=no

# Longest input per target (libFuzzer -max_len).
max_len() {
    case "$1" in
        handshake_framing) echo 2048 ;;
        text_check) echo 1024 ;;
        peer_codec) echo 4096 ;;
        cluster) echo 768 ;;
        http_request) echo 9000 ;;
        websocket_codec) echo 4096 ;;
        peer_session) echo 4096 ;;
        *) echo 4096 ;;
    esac
}

# 1. ChatCore's dependencies, by SwiftPM (debug: they are not on the fuzzed paths).
attempt=0
until swift build --scratch-path "$SCRATCH" --target ChatCore 2>&1 | tail -n 3; [ "${PIPESTATUS[0]}" -eq 0 ]; do
    attempt=$((attempt + 1))
    if [ "$attempt" -gt "$RETRIES" ]; then echo "fuzz.sh: swift build failed" >&2; exit 1; fi
    echo "fuzz.sh: swift build failed; retrying in 60 s ($attempt/$RETRIES)" >&2
    sleep 60
done
BIN=$(swift build --scratch-path "$SCRATCH" --show-bin-path)

# Their objects, in one archive: the linker takes only what the harness uses. The list is
# the dependency closure of ChatCore (Package.swift); a module a newer version adds shows
# up as an undefined symbol at link time: add it here.
DEPS=(Crypto CryptoBoringWrapper CCryptoBoringSSL CCryptoBoringSSLShims)
OBJS=()
for m in "${DEPS[@]}"; do
    [ -d "$BIN/$m.build" ] || continue
    while IFS= read -r -d '' f; do OBJS+=("$f"); done < <(find "$BIN/$m.build" -name '*.o' -print0)
done
rm -f "$OUT/libfuzzdeps.a"
ar rcs "$OUT/libfuzzdeps.a" "${OBJS[@]}"

CORE=()
while IFS= read -r -d '' f; do CORE+=("$f"); done < <(find Sources/ChatCore -name '*.swift' -print0 | sort -z)
SUPPORT=()
while IFS= read -r -d '' f; do SUPPORT+=("$f"); done < <(find Fuzz/Support -name '*.swift' -print0 | sort -z)

# 2. One executable per target (FUZZ_BUILD_JOBS at a time, default 1).
build_target() {
    local t=$1 SRC=() f
    while IFS= read -r -d '' f; do SRC+=("$f"); done < <(find "Fuzz/$t" -name '*.swift' -print0 | sort -z)
    # -wmo: one module, so the core's generics are specialized where the harness calls them
    # (file by file they ran unspecialized; the targets ran 1.5-2x slower). With -g it also
    # writes the module's debug files into the working directory: the compiler runs in
    # $OUT/work/<target>, on absolute paths.
    local root=$PWD out bindir
    out=$(cd "$OUT" && pwd)
    bindir=$(cd "$BINDIR" && pwd)
    mkdir -p "$out/$WORKDIR/$t"
    # shellcheck disable=SC2046
    if (cd "$out/$WORKDIR/$t" && swiftc $(build_flags "$t") -parse-as-library -O -wmo -g \
        -module-name "Fuzz_$t" "${SRC[@]/#/$root/}" "${SUPPORT[@]/#/$root/}" "${CORE[@]/#/$root/}" \
        -I "$BIN/Modules" "$out/libfuzzdeps.a" -o "$bindir/$t") >"$OUT/logs/$t.build.log" 2>&1
    then echo 0 >"$OUT/logs/$t.build.rc"; else echo 1 >"$OUT/logs/$t.build.rc"; fi
}
running=0
for t in "${TARGETS[@]}"; do
    echo "fuzz.sh: building $t"
    rm -f "$OUT/logs/$t.build.rc"
    build_target "$t" &
    running=$((running + 1))
    if [ "$running" -ge "${FUZZ_BUILD_JOBS:-1}" ]; then wait -n || true; running=$((running - 1)); fi
done
wait
for t in "${TARGETS[@]}"; do
    if [ "$(cat "$OUT/logs/$t.build.rc" 2>/dev/null)" != 0 ]; then
        # ld.gold warns about every ASan symbol it cannot export; the warnings are noise.
        grep -v 'ld.gold: warning: Cannot export local symbol' "$OUT/logs/$t.build.log" >&2 || true
        echo "fuzz.sh: building $t failed" >&2
        exit 1
    fi
done
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && { echo "fuzz.sh: built ${TARGETS[*]} in $BINDIR"; exit 0; }

# 3. Run each target in turn, one process. New inputs go to a work corpus in the scratch
#    path; the checked-in seeds in Fuzz/corpus/<target> are only read.
failed=()
printf '%-20s %12s %10s  %s\n' target executions exec/s result
for t in "${TARGETS[@]}"; do
    work="$OUT/corpus/$t"
    crashes="Fuzz/crashes/$t"
    mkdir -p "$work" "$crashes" "Fuzz/corpus/$t"
    dict=()
    [ -f "Fuzz/dict/$t.dict" ] && dict=(-dict="Fuzz/dict/$t.dict")
    log="$OUT/logs/$t.log"
    set +e
    # shellcheck disable=SC2086
    "$BINDIR/$t" "$work" "Fuzz/corpus/$t" "${dict[@]}" \
        -max_total_time="$SECS" -max_len="$(max_len "$t")" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$crashes/" ${FUZZ_EXTRA_ARGS:-} >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        printf '%-20s %12s %10s  %s\n' "$t" "${execs:-?}" "${speed:-?}" ok
    else
        printf '%-20s %12s %10s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "FAILED (exit $rc)"
        failed+=("$t")
        echo "---- $t: $log (last lines) ----"
        grep -v 'ld.gold' "$log" | grep -E 'FUZZ INVARIANT|ERROR|SUMMARY|Test unit written|Fatal error|#[0-9]+ 0x' | head -n 40
        echo "----"
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in ${failed[*]}; inputs in Fuzz/crashes/" >&2
    if [ "$ASAN" != 1 ]; then
        echo "fuzz.sh: replay under AddressSanitizer: FUZZ_ASAN=1 FUZZ_BUILD_ONLY=1 $0 0 ${failed[*]}; then" \
            "SWIFT_BACKTRACE=enable=no $OUT/bin-asan/<target> Fuzz/crashes/<target>/crash-..." >&2
    fi
    exit 1
fi
