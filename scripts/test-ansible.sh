#!/usr/bin/env bash
# make test-ansible: contrib/ansible for real with Debian's ansible-core.
# Three inventory hosts on this machine (ansible_connection=local), each
# with its own real queue: mx-postfix (the Postfix incident fixture),
# mx-qmail (the qmail incident fixture), mx-missing (a queue that is not
# there). One playbook run: the example find-and-delete.yml, then checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-bin/qsurgeon}; [[ $bin = /* ]] || bin=$(pwd)/$bin
command -v ansible-playbook >/dev/null || { echo "test-ansible: ansible-playbook (Debian package ansible-core) is not installed" >&2; exit 1; }
work=$(mktemp -d /tmp/qsurgeon-ansible.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
mkdir "$work/mx-postfix" "$work/mx-qmail"
tar --numeric-owner -xpzf testdata/queues/postfix-incident/queue.tar.gz -C "$work/mx-postfix"
tar --numeric-owner -xpzf testdata/queues/qmail-incident/queue.tar.gz -C "$work/mx-qmail"
pq=$work/mx-postfix/postfix-incident-a
qq=$work/mx-qmail/queue
account=hello@example.com

# What each host holds of the account, from the fixtures' ground truth.
read -r pexp qexp < <(python3 - "$account" <<'PY'
import json, sys
a = sys.argv[1]
p = json.load(open('testdata/queues/postfix-incident/truth.json'))
q = json.load(open('testdata/queues/qmail-incident/truth.json'))
print(sum(1 for m in p['messages'] if m.get('sasl_username') == a), q['counts']['auth_user_messages'][a])
PY
)
ptotal=$("$bin" --queue "$pq" -o ids list | wc -l)
qtotal=$("$bin" --queue "$qq" -o ids list | wc -l)

cat > "$work/inventory" <<INV
[fleet]
mx-postfix qsurgeon_queue=$pq expect=$pexp list_queue=deferred
mx-qmail   qsurgeon_queue=$qq expect=$qexp list_queue=queue
mx-missing qsurgeon_queue=$work/no-such-queue expect=0 list_queue=deferred

[fleet:vars]
ansible_connection=local
ansible_python_interpreter=/usr/bin/python3
qsurgeon_bin=$bin
qsurgeon_journal=$work/journal.jsonl
INV

set +e
ANSIBLE_ROLES_PATH=contrib/ansible/roles ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_LOCALHOST_WARNING=0 \
  ansible-playbook -i "$work/inventory" -f 5 contrib/ansible/tests/fleet-test.yml \
  -e qsurgeon_hosts=fleet -e account=$account -e confirm=yes > "$work/out" 2>&1
rc=$?
set -e
fail() { echo "test-ansible: $*" >&2; cat "$work/out" >&2; exit 1; }
# mx-missing fails (ansible exits 2); the others go on to the end.
[ "$rc" = 2 ] || fail "ansible-playbook exited $rc, want 2 (one host failed)"
grep -Eq '^mx-missing +: .*failed=1' "$work/out" || fail "PLAY RECAP does not name mx-missing as failed"
for h in mx-postfix mx-qmail; do
  grep -Eq "^$h +: .*unreachable=0 +failed=0" "$work/out" || fail "$h did not finish cleanly"
done
grep -Eq 'mx-missing +- +FAILED' "$work/out" || fail "the merged summary does not name the failed host"
grep -Eq "mx-postfix +deferred +[0-9]+" "$work/out" && grep -Eq "mx-qmail +queue +[0-9]+" "$work/out" || fail "no merged host x queue table"
grep -Eq "^ *\"?$account +[0-9]+ +mx-postfix,mx-qmail" "$work/out" || fail "the fleet's top accounts do not merge $account over both hosts"
# The queues: the account's mail gone, everyone else's still there.
for spec in "$pq $pexp $ptotal" "$qq $qexp $qtotal"; do
  set -- $spec
  left=$("$bin" --queue "$1" -o ids list --sasl-user "$account" | wc -l)
  now=$("$bin" --queue "$1" -o ids list | wc -l)
  [ "$left" = 0 ] || fail "$1: $left message(s) of $account left"
  [ "$now" = $(( $3 - $2 )) ] || fail "$1: $now messages, want $3 - $2"
done
grep -q '"delete"' "$work/journal.jsonl" || fail "no journal of the deletes"
echo "test-ansible: ok (3 hosts, $pexp + $qexp messages of $account deleted, mx-missing failed and named)"
