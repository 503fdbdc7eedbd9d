#!/usr/bin/env bash
# bench/maillog-same.sh OLD NEW [LOG...] — the log commands' output of two
# qsurgeon binaries, byte for byte: accounts and impact JSON (impact also
# with --null-sender, --sasl-user and --logged-sasl-user), list
# --logged-sasl-user --explain over the fixture queues, stderr included, over
# every fixture log and any LOG given (the 1 GB bench log, say). Prints one
# line per comparison and exits 1 on the first difference.
set -uo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2
shift 2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/emptyq"/{active,deferred,hold,incoming,maildrop}
tar xzf testdata/queues/postfix-incident/queue.tar.gz -C "$T"
tar xzf testdata/queues/qmail-incident/queue.tar.gz -C "$T"
PFQ=$T/postfix-incident-a QMQ=$T/queue
# the Postfix log with a hostile first qmgr line: counts wider than 32 bits
sed '0,/size=624, nrcpt=1 /s//size=99999999999, nrcpt=99999999999 /' testdata/queues/postfix-incident/maillog.txt >"$T/hostile.log"
logs=(testdata/queues/postfix-incident/maillog.txt testdata/queues/qmail-incident/qmail-send.log maillog/testdata/vpopmail-seed001.log "$T/hostile.log" "$@")
# the three fixture logs at once, too (a rotated set of mixed formats)
sets=("${logs[@]}" "testdata/queues/postfix-incident/maillog.txt maillog/testdata/vpopmail-seed001.log testdata/queues/qmail-incident/qmail-send.log")
bad=0
run() { # name, args...: run both binaries, compare stdout and stderr
	local name=$1; shift
	"$OLD" "$@" > "$T/o.out" 2> "$T/o.err"; local oc=$?
	"$NEW" "$@" > "$T/n.out" 2> "$T/n.err"; local nc=$?
	sed -i "s#$T#T#g" "$T/o.err" "$T/n.err" "$T/o.out" "$T/n.out"
	if [ $oc = $nc ] && cmp -s "$T/o.out" "$T/n.out" && cmp -s "$T/o.err" "$T/n.err"; then
		echo "same  $name ($(wc -l < "$T/n.out") lines, $(md5sum < "$T/n.out" | cut -c1-8))"
	else
		echo "DIFF  $name (exit $oc/$nc)"; diff "$T/o.out" "$T/n.out" | head -5; diff "$T/o.err" "$T/n.err" | head -5
		bad=1
	fi
}
for set in "${sets[@]}"; do
	read -ra L <<< "$set"
	la=(); for l in "${L[@]}"; do la+=(--log "$l"); done
	run "accounts $set" --format json accounts "${la[@]}" --mta postfix --queue "$T/emptyq"
	run "accounts (postfix queue) $set" --format json accounts "${la[@]}" --mta postfix --queue "$PFQ"
	run "accounts (qmail queue) $set" --format json accounts "${la[@]}" --mta qmail --queue "$QMQ"
	run "impact $set" --format json impact "${la[@]}"
	run "impact --null-sender $set" --format json impact "${la[@]}" --null-sender
	for u in hello@example.com 'bob@*' alice@example.com; do
		run "impact --sasl-user $u $set" --format json impact "${la[@]}" --sasl-user "$u"
		run "impact --logged-sasl-user $u $set" --format json impact "${la[@]}" --logged-sasl-user "$u"
		run "list --logged-sasl-user $u (postfix) $set" --format json list --queue "$PFQ" "${la[@]}" --logged-sasl-user "$u" --explain
		run "list --logged-sasl-user $u (qmail) $set" --format json list --mta qmail --queue "$QMQ" "${la[@]}" --logged-sasl-user "$u" --explain
	done
	run "impact --since/--until $set" --format json impact "${la[@]}" --since 2026-11-22T15:59 --until 2026-11-22T16:10
done
exit $bad
