#!/usr/bin/env bash
# Runs the acceptance scripts of ../shared/checks (the CLI contract) against
# the real-MTA fixtures bundled in testdata/queues. Usage: accept.sh QSURGEON
set -euo pipefail
qs=$(readlink -f "${1:-bin/qsurgeon}")
checks=${CHECKS:-../shared/checks}
fx=testdata/queues
W=$(mktemp -d /tmp/qsurgeon-accept.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
step() { echo "== $*"; }
run() { if "$@"; then :; else echo "FAILED: $*"; fails=$((fails+1)); fi; }

step "Postfix reader"
mkdir -p "$W/pf" && tar --numeric-owner -xpzf $fx/postfix-incident/queue.tar.gz -C "$W/pf" 2>/dev/null
"$qs" --queue "$W/pf/postfix-incident-a" --format json list > "$W/pf.json" || true
run python3 $checks/check_postfix.py $fx/postfix-incident/truth.json "$W/pf.json"

step "Postfix filters"
run python3 $checks/check_filters_postfix.py "$qs" "$W/pf/postfix-incident-a" $fx/postfix-incident/truth.json

step "qmail reader"
mkdir -p "$W/qm" && tar --numeric-owner -xpzf $fx/qmail-incident/queue.tar.gz -C "$W/qm" 2>/dev/null
"$qs" --queue "$W/qm/queue" --format json list > "$W/qm.json" || true
run python3 $checks/check_qmail.py $fx/qmail-incident/truth.json "$W/qm.json"

if [ -f $checks/check_qmail_check.py ]; then
  step "qmail check"
  mkdir -p "$W/qb" && tar --numeric-owner -xpzf $fx/qmail-incident/broken.tar.gz -C "$W/qb" 2>/dev/null
  run python3 $checks/check_qmail_check.py "$qs" "$W/qb/queue" "$W/qm/queue" $fx/qmail-incident/truth.json $fx/qmail-incident/broken-defects.json
fi

step "delete (Postfix)"
mkdir -p "$W/pd" && tar --numeric-owner -xpzf $fx/postfix-incident/queue.tar.gz -C "$W/pd" 2>/dev/null
python3 -c "
import json,sys
for m in json.load(open('$fx/postfix-incident/truth.json'))['messages']:
    if m.get('sasl_username')=='hello@example.com': print(m['queue_id'])" > "$W/pf.ids"
run python3 $checks/check_delete.py "$qs" "$W/pd/postfix-incident-a" postfix hello@example.com "$W/pf.ids"

step "delete (qmail)"
mkdir -p "$W/qd" && tar --numeric-owner -xpzf $fx/qmail-incident/queue.tar.gz -C "$W/qd" 2>/dev/null
python3 -c "
import json
for k,m in json.load(open('$fx/qmail-incident/truth.json'))['messages'].items():
    if m.get('auth_user')=='hello@example.com': print(k)" > "$W/qm.ids"
run python3 $checks/check_delete.py "$qs" "$W/qd/queue" qmail hello@example.com "$W/qm.ids"

echo "acceptance: $fails failed"
[ "$fails" -eq 0 ]
