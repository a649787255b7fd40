# Helpers for shell tests. Source this, then call `check NAME COMMAND...`.
# Tools come from $KNND_BIN (set by tests/run), defaulting to bin/.
set -u
KNND_ROOT=${KNND_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
KNND_BIN=${KNND_BIN:-$KNND_ROOT/bin}
KNND_SHARED=${KNND_SHARED:-$KNND_ROOT/../shared}
PATH=$KNND_BIN:$PATH
# Debian's python, which has python3-msgpack and python3-numpy.
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"

# check NAME CMD...: passes when CMD exits 0.
check() {
	local name=$1; shift
	if out=$("$@" 2>&1); then echo "ok $name"
	else echo "FAIL $name: $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"; fi
}

# check_fails NAME PATTERN CMD...: passes when CMD exits non-zero (not by a
# signal) with one stderr line that starts with the tool name and matches PATTERN.
check_fails() {
	local name=$1 pat=$2; shift 2
	local err rc
	err=$("$@" 2>&1 >/dev/null); rc=$?
	if [ $rc -eq 0 ]; then echo "FAIL $name: succeeded, expected failure"
	elif [ $rc -gt 2 ]; then echo "FAIL $name: exit status $rc (crash or signal): $err"
	elif ! printf '%s' "$err" | grep -Eq -- "$pat"; then echo "FAIL $name: message '$err' does not match '$pat'"
	else echo "ok $name"; fi
}

# check_eq NAME WANT GOT: passes when the two texts are equal.
check_eq() {
	if [ "$2" = "$3" ]; then echo "ok $1"
	else echo "FAIL $1: expected '$(printf '%s' "$2" | head -c 300 | tr '\n' '|')', got '$(printf '%s' "$3" | head -c 300 | tr '\n' '|')'"; fi
}
skip() { echo "skip $1: $2"; }
