# Sourced by .ci/ft-python and .ci/redis-server: fetch a Debian source package's upstream
# tarball through a private apt dir (the machine's apt config is only read, for the mirror).
#
# Needs $cache (the CI cache dir) and a log function `log`; $apt_root (default $cache/apt) is
# where the private apt state lives. Provides:
#   mirror_uri              print the URI of the machine's main Debian archive
#   resolve SUITE PACKAGE   set debver and apt_opts to the newest version SUITE lists, or fail
#   fetch_orig SUITE PACKAGE DIR
#                           download PACKAGE=$debver into DIR, set orig to its orig tarball, or fail

# Where a free-threaded CPython's source comes from, first usable wins (ft-python, and the TSan
# lane in benchmarks/tsan): python3.14, else a 3.13 newer than trixie's 3.13.5, which aborts
# under signal storms in its own _PyRawMutex (CPython gh-148820, fixed in 3.13.14).
FT_SOURCES_DEFAULT="forky:python3.14 sid:python3.14 unstable:python3.14 sid:python3.13 unstable:python3.13 forky:python3.13 trixie:python3.13"

# mirror_uri: the URI of the archive serving the machine's own release, read from the apt
# config, deb822 .sources first, then one-line sources.list.
mirror_uri() {
    local codename uri
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || return 1
    uri=$(awk -v want="$codename" '
        function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") && uris != "") { split(uris, u, " "); print u[1]; found = 1; exit } types = suites = uris = "" }
        /^[[:space:]]*$/ { flush(); next }
        /^[[:space:]]*#/ { next }
        tolower($1) == "types:"  { $1 = ""; types = $0 }
        tolower($1) == "suites:" { $1 = ""; suites = $0 }
        tolower($1) == "uris:"   { $1 = ""; uris = $0; sub(/^ +/, "", uris) }
        END { if (!found) flush() }
    ' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        # deb [options] uri suite component...
        uri=$(sed -E 's/\[[^]]*\]//' /etc/apt/sources.list |
              awk -v want="$codename" '$1 == "deb" && $3 == want { print $2; exit }')
    fi
    [ -n "$uri" ] && echo "${uri%/}"
}

resolve() {  # resolve SUITE PACKAGE
    local dir=${apt_root:-$cache/apt}/$1 uri keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    uri=$(mirror_uri) || { log "cannot find the Debian mirror URI in /etc/apt/sources.list{,.d/*.sources}"; return 1; }
    mkdir -p "$dir/sources.d" "$dir/lists/partial" "$dir/cache/archives/partial"
    : >"$dir/sources.list"
    {
        echo "Types: deb-src"
        echo "URIs: $uri"
        echo "Suites: $1"
        echo "Components: main"
        if [ -r "$keyring" ]; then echo "Signed-By: $keyring"; fi
    } >"$dir/sources.d/ci.sources"
    rm -f "$dir/sources.d/ft.sources"  # the name an earlier version of this file used
    # Dir::Cache too, so the system's package cache is not rebuilt from our sources.
    apt_opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=$dir/sources.d"
              -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o Acquire::Retries=3)
    # Several scripts share one suite's lists: update them one at a time.
    # A failed update keeps the previous lists, if any; they still name a usable version.
    flock "$dir/update.lock" apt-get -q "${apt_opts[@]}" update >"$dir/update.log" 2>&1 ||
        log "apt-get update for $1 failed (see $dir/update.log)"
    debver=$(apt-cache "${apt_opts[@]}" showsrc --only-source "$2" 2>/dev/null |
             awk '/^Version:/ { print $2 }' | sort -V | tail -n 1 || true)
    [ -n "$debver" ]
}

fetch_orig() {  # fetch_orig SUITE PACKAGE DIR  (after resolve SUITE PACKAGE)
    local upver=${debver#*:} f
    upver=${upver%-*}
    orig=""
    mkdir -p "$3"
    # apt-get source checks the download against the signed Sources index.
    if ! (cd "$3" && apt-get -q "${apt_opts[@]}" source --download-only "$2=$debver") >"$3.fetch.log" 2>&1; then
        log "cannot download $2 $debver from $1: $(grep -m1 '^E:' "$3.fetch.log" || echo "see $3.fetch.log")"
        return 1
    fi
    for f in "$3/${2}_${upver}".orig.tar.*; do
        case $f in *.asc) ;; *) [ -e "$f" ] && orig=$f ;; esac
    done
    [ -n "$orig" ] || { log "no upstream orig tarball in $2 $debver from $1"; return 1; }
}
