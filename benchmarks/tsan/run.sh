#!/usr/bin/env bash
# ThreadSanitizer lane: the C core's tests and the concurrency suites under a TSan build of free-threaded CPython.
#
# 1. Interpreter: free-threaded CPython configured --disable-gil --with-thread-sanitizer and
#    built with clang, from the same Debian source package .ci/ft-python picks (its candidate
#    list, its mirror lookup, the upstream orig tarball), cached in
#    <cache>/cpython-<version>t-tsan behind a marker file written last, as ft-python does.
#    The source tree's Tools/tsan/suppressions_free_threading.txt (CPython's own known
#    reports) is kept in the prefix, since the source is deleted after the build.
# 2. A fresh venv with a copy of the checkout installed, its C core compiled by clang with
#    -fsanitize=thread (checked: it imports, and it calls into the TSan runtime), plus
#    MAPSAFE_TSAN_PIP, pinned by .ci/ft-constraints.txt. Not the whole test extra: pip runs
#    5-15x slower under TSan, and installing matplotlib, numpy, rich, jsonschema and flake8
#    took 15 minutes here, for suites that import none of them.
# 3. A self-test: TSan must report a known race in a small TSan-built library loaded by the
#    venv's python, so that "no warnings" is a result and not a broken setup. Then pytest on
#    TESTS (those that exist) with PYTHON_GIL=0 MAPSAFE_CORE=c; TSan writes its reports to
#    <logs>/tsan.<pid>, one file per process, child processes included.
# 4. tsan_summary.py: distinct warnings, split into mapsafe's (a frame in _speedups.c) and
#    the rest (CPython, stdlib, other extensions).
#
# Nothing is written to the checkout: the project is installed from a copy (an in-tree
# build would leave build/, *.egg-info and a TSan-instrumented _speedups*.so in src/, the
# name the free-threaded lane's editable install uses), no .pyc, no .pytest_cache.
#
# Usage: benchmarks/tsan/run.sh [pytest args...]   (appended to the pytest command)
# Exit:  0 clean; 1 TSan warnings in _speedups.c; 2 setup failed (build, venv, C core);
#        3 pytest failed or crashed but no warning is mapsafe's (under TSan timing tests may
#        fail, and a crash means the reports may be incomplete).
#
# Environment:
#   MAPSAFE_CI_CACHE     cache dir (default ~/.cache/mapsafe-ci), shared with .ci/ft-python
#   MAPSAFE_FT_SOURCES   "suite:package ..." to try in order (default: ft-python's list)
#   MAPSAFE_TSAN_LOGS    where TSan writes its reports (default <cache>/tsan/reports/<UTC time>)
#   MAPSAFE_TSAN_TESTS   test files (default: the four below)
#   MAPSAFE_TSAN_PIP     what else to pip install (default "pytest hypothesis"; hypothesis is
#                        for the model tests, e.g. MAPSAFE_TSAN_TESTS=tests/test_maps_model.py)
#   MAPSAFE_TSAN_HISTORY TSan history_size, 0-7 (default 4): larger finds the other access's
#                        stack more often, at ~2^N MiB per thread
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${MAPSAFE_CI_CACHE:-$HOME/.cache/mapsafe-ci}
tests=${MAPSAFE_TSAN_TESTS:-tests/test_maps_core.py tests/test_maps_concurrency.py tests/test_maps_stress.py tests/test_maps_faults.py}
logs=${MAPSAFE_TSAN_LOGS:-$cache/tsan/reports/$(date -u +%Y%m%dT%H%M%SZ)}
history=${MAPSAFE_TSAN_HISTORY:-4}
read -r -a pip_extra <<<"${MAPSAFE_TSAN_PIP:-pytest hypothesis}"
marker=.mapsafe-ci-complete
# ft-python's build deps, plus clang, its sanitizer runtimes (only Recommended by clang) and
# llvm (llvm-symbolizer, without which reports carry no function names or lines).
build_deps=(gcc make xz-utils pkg-config libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev
            libsqlite3-dev libreadline-dev libncurses-dev uuid-dev clang)
EXIT_MAPSAFE_RACES=1 EXIT_SETUP=2 EXIT_TESTS=3

log() { echo "tsan: $*" >&2; }
die() { echo "tsan: error: $*" >&2; exit $EXIT_SETUP; }

# The Debian source fetching (mirror_uri, resolve, fetch_orig) is CI's own, with apt state of
# this script's; check_python is ft-python's, read from it so the interpreter checks stay one
# definition (it uses nothing else from that script).
apt_root=$cache/tsan/apt
# shellcheck source=.ci/debian-source.sh
. "$repo/.ci/debian-source.sh"
eval "$(sed -n '/^check_python() {$/,/^}$/p' "$repo/.ci/ft-python")"
declare -F check_python >/dev/null || die "cannot find check_python() in .ci/ft-python"
candidates=${MAPSAFE_FT_SOURCES:-$FT_SOURCES_DEFAULT}

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]; }

apt_install() {  # apt_install PKG...: install those not installed yet
    local missing=() p
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends "${missing[@]}"
}

# ensure_clang: clang that links and runs a -fsanitize=thread program; sets llvm_bin.
ensure_clang() {
    local major t
    apt_install "${build_deps[@]}" || return 1
    major=$(clang -dumpversion | cut -d. -f1)
    apt_install "libclang-rt-$major-dev" "llvm-$major" || return 1
    llvm_bin=/usr/lib/llvm-$major/bin
    [ -x "$llvm_bin/llvm-symbolizer" ] || { echo "no $llvm_bin/llvm-symbolizer"; return 1; }
    t=$(mktemp -d)
    printf '#include <pthread.h>\nstatic void *f(void *a) { return a; }\nint main(void) { pthread_t t; pthread_create(&t, 0, f, 0); return pthread_join(t, 0); }\n' >"$t/t.c"
    if ! { clang -fsanitize=thread -g "$t/t.c" -o "$t/t" && "$t/t"; }; then
        rm -rf "$t"
        echo "clang $major cannot build or run a TSan program"
        return 1
    fi
    rm -rf "$t"
}

# has_symbol NM_FLAG FILE SUFFIX: nm lists a symbol line ending in SUFFIX. (Not `nm | grep -q`:
# grep stops reading at the first match, and nm's SIGPIPE then fails the pipeline.)
has_symbol() {
    local syms
    syms=$(nm ${1:+"$1"} "$2" 2>/dev/null) && grep -q -- "$3\$" <<<"$syms"
}

check_tsan_python() {  # check_tsan_python PY: ft-python's checks, and TSan is really in
    check_python "$1" || return 1
    "$1" -c 'import sysconfig; a = sysconfig.get_config_var("CONFIG_ARGS"); assert "--with-thread-sanitizer" in a, a' || return 1
    has_symbol -D "$1" ' T __tsan_init' || { echo "$1 does not link the TSan runtime"; return 1; }
}

# Reports from the interpreter while it builds, installs pip and is checked are not what this
# lane is after: keep them out of the console and of the exit status.
quiet_tsan() {  # quiet_tsan DIR [SUPPRESSIONS]
    mkdir -p "$1"
    export TSAN_OPTIONS="exitcode=0 halt_on_error=0 log_path=$1/tsan${2:+ suppressions=$2}"
}

# build WORK PREFIX BUILDLOG: configure, make and install the orig tarball in WORK.
build() {
    local work=$1 prefix=$2 orig="" src f
    for f in "$work"/*.orig.tar.*; do
        case $f in *.asc) ;; *) [ -e "$f" ] && orig=$f ;; esac
    done
    [ -n "$orig" ] || { echo "no upstream orig tarball in $work"; return 1; }
    tar -xf "$orig" -C "$work"
    src=$(find "$work" -mindepth 2 -maxdepth 2 -name configure -printf '%h\n' | head -n 1)
    [ -n "$src" ] || { echo "no configure in $orig"; return 1; }
    quiet_tsan "$work/tsan-logs" "$src/Tools/tsan/suppressions_free_threading.txt"
    rm -rf "$prefix"
    (
        cd "$src"
        CC=clang CXX=clang++ ./configure --disable-gil --with-thread-sanitizer \
            --prefix="$prefix" --with-ensurepip=install
        nice make -j"$(nproc)"
        nice make install
    ) || return 1
    mkdir -p "$prefix/share/mapsafe-tsan"
    cp "$src/Tools/tsan/"*.txt "$prefix/share/mapsafe-tsan/"
}

# tsan_python: set py to a finished TSan interpreter, building it if needed (ft-python's loop).
tsan_python() {
    local cand suite pkg upver prefix work buildlog start d
    mkdir -p "$cache/tsan"
    exec 9>"$cache/tsan/python.lock"
    if ! flock -n 9; then log "waiting for another run (lock $cache/tsan/python.lock)"; flock 9; fi
    uri=$(mirror_uri) || die "cannot find the Debian mirror URI in /etc/apt/sources.list{,.d/*.sources}"
    for cand in $candidates; do
        suite=${cand%%:*} pkg=${cand#*:}
        resolve "$suite" "$pkg" || { log "$suite does not list $pkg"; continue; }
        upver=${debver#*:}
        upver=${upver%-*}
        prefix=$cache/cpython-${upver}t-tsan
        py=$prefix/bin/python3
        if [ -e "$prefix/$marker" ] && (quiet_tsan "$cache/tsan/check-logs"; check_tsan_python "$py") >/dev/null 2>&1; then
            log "cached: $pkg $debver from $suite ($prefix)"
            return 0
        fi
        work=$cache/tsan/build/$pkg-$upver
        rm -rf "$work"
        fetch_orig "$suite" "$pkg" "$work" || { rm -rf "$work"; continue; }
        buildlog=$cache/cpython-${upver}t-tsan.log
        mv "$work.fetch.log" "$buildlog"
        log "building $pkg $debver from $suite with TSan into $prefix (log: $buildlog)"
        start=$SECONDS
        { ensure_clang && build "$work" "$prefix" && check_tsan_python "$py"; } >>"$buildlog" 2>&1 ||
            { tail -n 30 "$buildlog" >&2; die "building $pkg $debver failed (full log: $buildlog)"; }
        "$py" -VV >"$prefix/$marker" 2>/dev/null
        rm -rf "$work"
        log "built $(cat "$prefix/$marker") in $((SECONDS - start))s"
        return 0
    done
    for d in $(printf '%s\n' "$cache"/cpython-*t-tsan | sort -V -r); do
        if [ -e "$d/$marker" ] && (quiet_tsan "$cache/tsan/check-logs"; check_tsan_python "$d/bin/python3") >/dev/null 2>&1; then
            log "warning: no candidate source could be resolved or fetched; using cached $d"
            py=$d/bin/python3
            return 0
        fi
    done
    die "could not fetch the source of any of: $candidates (mirror $uri)"
}

# --- 1. interpreter --------------------------------------------------------------------------
lane_start=$SECONDS
tsan_python
exec 9>&-
ensure_clang >/dev/null 2>&1 || die "clang cannot build TSan programs (a cached interpreter, but clang is gone?)"
prefix=$(dirname "$(dirname "$py")")
supp=$prefix/share/mapsafe-tsan/suppressions_free_threading.txt
[ -r "$supp" ] || die "no CPython suppressions file at $supp"
log "interpreter: $(cat "$prefix/$marker")"

# --- 2. venv with the C core under TSan ------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
quiet_tsan "$logs/setup" "$supp"
# What git would commit now (tracked and new files, no ignored ones such as built *.so).
git -C "$repo" ls-files -z --cached --others --exclude-standard -- pyproject.toml setup.py README.md LICENSE src |
    (cd "$repo" && xargs -0 tar --ignore-failed-read -cf -) | tar -xf - -C "$tmp" || die "copying the checkout to $tmp"
"$py" -m venv "$tmp/venv" || die "creating a venv with $py"
vpy=$tmp/venv/bin/python3
log "installing mapsafe and ${pip_extra[*]} into the venv (C core: clang -fsanitize=thread)"
constraints=()
[ -r "$repo/.ci/ft-constraints.txt" ] && constraints=(-c "$repo/.ci/ft-constraints.txt")
# CFLAGS is appended to the interpreter's (which has -fsanitize=thread already) when compiling
# and when linking; -O1 keeps lines exact enough to read a report against the source.
CC=clang CFLAGS="-fsanitize=thread -g -O1 -fno-omit-frame-pointer" \
    "$vpy" -m pip install --quiet --disable-pip-version-check --prefer-binary "${constraints[@]}" "$tmp" "${pip_extra[@]}" \
    >"$logs/setup/pip.log" 2>&1 || { tail -n 20 "$logs/setup/pip.log" >&2; die "pip install failed (log: $logs/setup/pip.log)"; }
so=$(cd "$tmp" && "$vpy" -c 'import mapsafe._speedups as s; print(s.__file__)' 2>&1) ||
    die "the C core did not build or import: $so (pip log: $logs/setup/pip.log)"
case $so in "$tmp/venv/"*) ;; *) die "mapsafe._speedups comes from $so, not the venv" ;; esac
has_symbol "" "$so" ' U __tsan_func_entry' || die "$so is not instrumented by TSan"
log "C core: $so"

# --- 3. the tests ----------------------------------------------------------------------------
run=()
for t in $tests; do
    if [ -e "$repo/$t" ]; then run+=("$t"); else log "not there, skipped: $t"; fi
done
[ ${#run[@]} -gt 0 ] || die "none of the test files exist: $tests"
mkdir -p "$logs"
# exitcode=0: pytest's own status says whether tests passed; reports are counted from the logs.
# die_after_fork=0: the fork tests start threads in a child of a threaded parent, which TSan
# otherwise kills.
# print_suppressions=1: the logs also say how often CPython's suppressions matched.
tsan_options="halt_on_error=0 exitcode=0 second_deadlock_stack=1 die_after_fork=0 print_suppressions=1"
tsan_options+=" history_size=$history suppressions=$supp external_symbolizer_path=$llvm_bin/llvm-symbolizer"

# Self-test: with these options, a race in a TSan-built library loaded into this venv's
# interpreter is reported, logged and symbolised, so "0 warnings" below means something.
printf '%s\n' 'volatile int counter;' 'void inc(int n) { for (int i = 0; i < n; i++) counter++; }' >"$tmp/selftest_race.c"
clang -fsanitize=thread -g -O1 -shared -fPIC "$tmp/selftest_race.c" -o "$tmp/libselftest_race.so" ||
    die "cannot compile the TSan self-test"
PYTHON_GIL=0 TSAN_OPTIONS="$tsan_options log_path=$logs/selftest/tsan" "$vpy" -c '
import ctypes, sys, threading
inc, start = ctypes.CDLL(sys.argv[1]).inc, threading.Barrier(2)
# Long enough for the two loops to overlap: CPython synchronises the threads (atomics, locks)
# whenever they touch the same objects, so a loop that ends first is ordered before the other.
ts = [threading.Thread(target=lambda: (start.wait(), inc(10_000_000))) for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()' "$tmp/libselftest_race.so" || die "the TSan self-test crashed"
grep -qs 'inc .*selftest_race.c:2' "$logs"/selftest/tsan.* ||
    die "TSan did not report the self-test's race (see $logs/selftest); its silence would mean nothing"
log "self-test: TSan reports a known race (in $logs/selftest)"

cmd=(env PYTHON_GIL=0 MAPSAFE_CORE=c PYTHONDONTWRITEBYTECODE=1 "TSAN_OPTIONS=$tsan_options log_path=$logs/tsan"
     "$vpy" -m pytest -p no:cacheprovider -o addopts=-ra -q "${run[@]}" "$@")
log "running (reports: $logs):"
printf '  %q' "${cmd[@]}" >&2
echo >&2
test_start=$SECONDS
rc=0
(cd "$repo" && "${cmd[@]}") || rc=$?
log "pytest exited $rc after $((SECONDS - test_start))s (lane: $((SECONDS - lane_start))s)"

# --- 4. summary ------------------------------------------------------------------------------
src_rc=0
python3 "$here/tsan_summary.py" "$logs" | tee "$logs/summary.txt" || src_rc=$?
if [ "$src_rc" -eq 1 ]; then exit $EXIT_MAPSAFE_RACES; fi
[ "$src_rc" -eq 0 ] || die "tsan_summary.py failed ($src_rc)"
if [ "$rc" -ne 0 ]; then log "pytest failed (exit $rc)"; exit $EXIT_TESTS; fi
exit 0
