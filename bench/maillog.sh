#!/usr/bin/env bash
# bench/maillog.sh — `make bench-maillog`: qsurgeon's log reading side by side
# with `grep -c sasl_username` on the same big log.
#
# The log is the real maillog of the bundled Postfix fixture
# (testdata/queues/postfix-incident/maillog.txt) repeated to MAILLOG_MB
# (default 1024) MB. Every command reads the file once from the page cache
# (an untimed `cat` warms it first), so the figures compare CPU work, not the
# disk. qsurgeon parses every line into typed events and folds them into
# per-account, per-address state; grep only counts lines holding a string.
#
# Environment: MAILLOG_MB=1024  BENCH_DIR=/var/tmp/qsurgeon-bench  QS=bin/qsurgeon
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${MAILLOG_MB:-1024}
DIR=${BENCH_DIR:-/var/tmp/qsurgeon-bench}
QS=${QS:-bin/qsurgeon}
SRC=testdata/queues/postfix-incident/maillog.txt
mkdir -p "$DIR"
LOG=$DIR/maillog-${MB}M
if [ ! -s "$LOG" ] || [ "$(stat -c %s "$LOG")" -lt $((MB * 1024 * 1024)) ]; then
	: > "$LOG"
	while [ "$(stat -c %s "$LOG")" -lt $((MB * 1024 * 1024)) ]; do
		for _ in $(seq 64); do cat "$SRC"; done >> "$LOG"
	done
fi
EMPTYQ=$(mktemp -d "$DIR/emptyq.XXXXXX")
trap 'rm -rf "$EMPTYQ"' EXIT
size=$(stat -c %s "$LOG")
lines=$(wc -l < "$LOG")
cat "$LOG" > /dev/null

[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
t() { # label, command...: one row with wall time, throughput and max RSS
	local label=$1; shift
	/usr/bin/time -f '%e %M %U %S' -o "$DIR/time.txt" "$@" > "$DIR/out.txt" 2> /dev/null || echo "(exit $?) $*" >&2
	local wall rss user sys
	read -r wall rss user sys < "$DIR/time.txt"
	awk -v l="$label" -v w="$wall" -v r="$rss" -v u="$user" -v y="$sys" -v s="$size" -v o="$(tail -c 60 "$DIR/out.txt" | tr '\n|' '  ')" \
		'BEGIN { printf "| %s | %.2f s | %.2f s | %.0f MB/s | %d MB | %s |\n", l, w, u + y, s / 1048576 / (w > 0 ? w : 0.01), r / 1024, o }'
}
echo "log: $LOG, $((size / 1048576)) MB, $lines lines (the fixture's real maillog repeated); $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| command | wall | CPU (user+sys) | throughput (wall) | max RSS | output (tail) |"
echo "|---|---|---|---|---|---|"
t 'grep -c sasl_username' grep -c sasl_username "$LOG"
t 'qsurgeon accounts --log' "$QS" --format json accounts --top 1 --log "$LOG" --mta postfix --queue "$EMPTYQ"
t 'qsurgeon impact --log' "$QS" --format json impact --top 1 --log "$LOG"
t 'pflogsumm' pflogsumm "$LOG"
