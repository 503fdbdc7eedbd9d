#!/usr/bin/env bash
# bench/maillog.sh — `make bench-maillog`: qsurgeon's log reading side by side
# with `grep -c sasl_username` and pflogsumm on the same big log, cold and
# warm, wall and CPU time, in one run.
#
# The log is the real maillog of the bundled Postfix fixture
# (testdata/queues/postfix-incident/maillog.txt) repeated to MAILLOG_MB
# (default 1024) MB.
#
# cold: `sync; echo 3 > /proc/sys/vm/drop_caches` before every timed command
#       (as bench/run.sh does): the file comes from the disk, so wall time
#       shows whether a command keeps up with it.
# warm: the same commands again, each after an untimed `cat` of the file:
#       it comes from the page cache, so the figures compare CPU work.
# On a shared VM the CPU column (user+sys) is the fair warm figure; the
# load average is printed with each table.
#
# Environment: MAILLOG_MB=1024  BENCH_DIR=/var/tmp/qsurgeon-bench  QS=bin/qsurgeon
#              MAILLOG_PASSES="cold warm"  MAILLOG_PFLOGSUMM=1 (0 skips pflogsumm)
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${MAILLOG_MB:-1024}
DIR=${BENCH_DIR:-/var/tmp/qsurgeon-bench}
QS=${QS:-bin/qsurgeon}
PASSES=${MAILLOG_PASSES:-cold warm}
PFLOGSUMM=${MAILLOG_PFLOGSUMM:-1}
SRC=testdata/queues/postfix-incident/maillog.txt
mkdir -p "$DIR"
LOG=$DIR/maillog-${MB}M
if [ ! -s "$LOG" ] || [ "$(stat -c %s "$LOG")" -lt $((MB * 1024 * 1024)) ]; then
	: > "$LOG"
	while [ "$(stat -c %s "$LOG")" -lt $((MB * 1024 * 1024)) ]; do
		for _ in $(seq 64); do cat "$SRC"; done >> "$LOG"
	done
fi
# an empty Postfix queue, so that accounts joins with a queue as it would
# on a server (the join itself costs nothing here)
EMPTYQ=$(mktemp -d "$DIR/emptyq.XXXXXX")
trap 'rm -rf "$EMPTYQ"' EXIT
mkdir -p "$EMPTYQ"/{active,deferred,hold,incoming,maildrop}
size=$(stat -c %s "$LOG")
lines=$(wc -l < "$LOG")

[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
command -v pflogsumm > /dev/null || PFLOGSUMM=0

cold=0
prepare() { # before each timed command: empty the page cache (cold) or fill it (warm)
	if [ "$cold" = 1 ]; then
		sync
		echo 3 > /proc/sys/vm/drop_caches
	else
		cat "$LOG" > /dev/null
	fi
}
t() { # label, command...: one row with wall and CPU time, throughput and max RSS
	local label=$1; shift
	prepare
	/usr/bin/time -f '%e %M %U %S' -o "$DIR/time.txt" "$@" > "$DIR/out.txt" 2> /dev/null || echo "(exit $?) $*" >&2
	local wall rss user sys
	read -r wall rss user sys < "$DIR/time.txt"
	awk -v l="$label" -v w="$wall" -v r="$rss" -v u="$user" -v y="$sys" -v s="$size" -v o="$(tail -c 60 "$DIR/out.txt" | tr '\n|' '  ')" \
		'BEGIN { printf "| %s | %.2f s | %.2f s | %.0f MB/s | %.0f MB/s | %d MB | %s |\n", l, w, u + y, s / 1048576 / (w > 0 ? w : 0.01), s / 1048576 / (u + y > 0 ? u + y : 0.01), r / 1024, o }'
}

echo "log: $LOG, $((size / 1048576)) MB, $lines lines (the fixture's real maillog repeated); $(nproc) CPUs; QS=$QS, source tree at $(git rev-parse --short HEAD 2>/dev/null || echo "?")"
for pass in $PASSES; do
	case $pass in
	cold)
		cold=1
		if ! { sync && echo 3 > /proc/sys/vm/drop_caches; } 2> /dev/null; then
			echo "cold: drop_caches refused (run as root); skipped" >&2
			continue
		fi
		echo
		echo "cold (drop_caches before each command), load average $(cut -d' ' -f1-3 /proc/loadavg):"
		;;
	warm)
		cold=0
		echo
		echo "warm (page cache filled by an untimed cat before each command), load average $(cut -d' ' -f1-3 /proc/loadavg):"
		;;
	*) echo "unknown pass $pass (cold or warm)" >&2; exit 2 ;;
	esac
	echo
	echo "| command | wall | CPU (user+sys) | MB/s (wall) | MB/s per CPU s | max RSS | output (tail) |"
	echo "|---|---|---|---|---|---|---|"
	t 'cat > /dev/null' cat "$LOG"
	t 'grep -c sasl_username' grep -c sasl_username "$LOG"
	t 'qsurgeon accounts --log' "$QS" --format json accounts --top 1 --log "$LOG" --mta postfix --queue "$EMPTYQ"
	t 'qsurgeon impact --log' "$QS" --format json impact --top 1 --log "$LOG"
	if [ "$PFLOGSUMM" = 1 ]; then
		t 'pflogsumm' pflogsumm "$LOG"
	fi
done
