#!/usr/bin/env bash
# bench/qmail-again.sh ROOT ROUNDS QSURGEON...: the qmail "again" rows of
# make bench, by hand and interleaved: qsurgeon's selection by AUTH user and
# by sender against `grep -rlF` over mess/ and `grep -z` over info/+todo/ on
# a warm queue (page cache filled by one untimed run of each command first;
# no drop_caches). Each round times every command once, in turn, under GNU
# time ("KEY wall user sys" lines on stdout, then the load average), so a
# machine shared with other work slows all of them alike. Several QSURGEON
# binaries (or "BINARY -j 2") are compared side by side as qsU0/qsS0, qsU1...
#
# The queue is one `make bench` generates:
#   bin/qsurgeon-gen -mta qmail -root ROOT -n 450000 -seed 1 -now 2026-11-22T16:00:00Z
set -uo pipefail
[ $# -ge 3 ] || { echo "usage: $0 ROOT ROUNDS QSURGEON..." >&2; exit 2; }
R=$1 rounds=$2
shift 2
U=${BENCH_USER:-hello@example.com}
S=${BENCH_SENDER:-newsletter@example.com}
declare -A CMD
CMD[grepU]="cd $R && exec grep -rlF --binary-files=text '($U@' mess"
CMD[grepS]="cd $R && exec grep -rlFx --binary-files=text -z 'F$S' info todo"
keysU=grepU keysS=grepS i=0
for qs in "$@"; do
	CMD[qsU$i]="exec $qs --queue $R --no-progress --format ids list --sasl-user $U"
	CMD[qsS$i]="exec $qs --queue $R --no-progress --format ids list --sender $S"
	keysU="$keysU qsU$i" keysS="$keysS qsS$i"
	i=$((i + 1))
done
for k in $keysU $keysS; do bash -c "${CMD[$k]}" >/dev/null 2>&1; done
t=$(mktemp)
for _ in $(seq 1 "$rounds"); do
	for k in $keysU $keysS; do
		/usr/bin/time -f "$k %e %U %S" -o "$t" bash -c "${CMD[$k]}" >/dev/null 2>&1
		cat "$t"
	done
	echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
done
rm -f "$t"
