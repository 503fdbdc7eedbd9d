#!/usr/bin/env bash
# bench/seed003.sh N [QSURGEON] [DIR]: seed 003's job by hand: generate a
# Postfix queue of N messages (as make bench does), drop the page cache,
# delete the compromised SASL user's mail with --yes, and print the total
# time, the peak RSS and its split: the scan (until the journal's first
# record, written once the selection is complete, just before the first
# unlink) and the acting. Needs root (drop_caches). Removes the queue after.
set -euo pipefail
N=${1:?usage: bench/seed003.sh N [QSURGEON] [DIR]}
cd "$(dirname "$0")/.."
QS=${2:-bin/qsurgeon}
DIR=${3:-/var/tmp/qsurgeon-seed003}
[ -x bin/qsurgeon-gen ] || go build -o bin/qsurgeon-gen ./cmd/qsurgeon-gen
[ -x "$QS" ] || go build -o bin/qsurgeon ./cmd/qsurgeon
mkdir -p "$DIR" && chmod 755 "$DIR"
Q=$DIR/q.$$ J=$DIR/journal.$$
rm -rf "$Q" "$J"
trap 'rm -rf "$Q" "$J" "$J.time" "$J.err"' EXIT
bin/qsurgeon-gen -mta postfix -root "$Q" -n "$N" -seed 1 -now 2026-11-22T16:00:00Z >/dev/null
sync
echo 3 >/proc/sys/vm/drop_caches
t0=$(date +%s.%N)
/usr/bin/time -f '%e %M' -o "$J.time" "$QS" --queue "$Q" --no-progress delete --sasl-user hello@example.com --yes --journal "$J" 2>"$J.err"
read -r total kb <"$J.time"
t1=$(date -d "$(head -n 1 "$J" | jq -r .time)" +%s.%N)
awk -v t0="$t0" -v t1="$t1" -v all="$total" -v kb="$kb" -v load="$(cut -d' ' -f1 /proc/loadavg)" -v last="$(tail -n 1 "$J.err")" \
	'BEGIN { printf "total %.2f s = scan %.2f s + acting %.2f s; peak RSS %d MB; load %s; %s\n", all, t1-t0, all-(t1-t0), kb/1024, load, last }'
