#!/usr/bin/python3
# -*- coding: utf-8 -*-
# qsurgeon Ansible module: runs the qsurgeon binary on the managed host and
# returns structured counts. Part of qsurgeon (contrib/ansible).

DOCUMENTATION = r'''
module: qsurgeon
short_description: Mail-queue summary, listing and surgery with qsurgeon
description:
  - Runs C(qsurgeon) on the managed host over its Postfix or qmail queue.
  - C(summary) and C(list) only read. C(delete), C(hold) and C(release) act
    on the messages the filters select, with C(--yes) and the journal.
  - Check mode runs the action as C(--dry-run): nothing is changed, and
    C(changed) says whether messages would be acted on.
  - C(changed) is true only when messages were (or in check mode would be)
    acted on.
options:
  action:
    description: summary, list, delete, hold or release.
    required: true
    type: str
  filters:
    description:
      - qsurgeon's selection flags without the leading dashes, e.g.
        C({"sasl-user": "hello@example.com", "queue-name": ["deferred"]});
        a list repeats the flag (values OR), true gives a bare flag.
    type: dict
    default: {}
  all:
    description: allow an action with no filter (every message).
    type: bool
    default: false
  bin:
    description: the qsurgeon binary.
    type: str
    default: qsurgeon
  queue:
    description: the queue directory (default qsurgeon's own choice).
    type: str
  mta:
    description: auto, postfix or qmail.
    type: str
    default: auto
  top:
    description: summary's top lists length.
    type: int
    default: 10
  limit:
    description: list at most this many messages.
    type: int
    default: 1000
  max:
    description: refuse an action selecting more than this many messages (0 no limit).
    type: int
    default: 0
  journal:
    description: qsurgeon's journal file ('none' for none; default qsurgeon's).
    type: str
'''

RETURN = r'''
matched: {description: messages the filters select, type: int}
per_queue: {description: matched messages per queue, type: dict}
done: {description: messages acted on (0 in check mode), type: int}
skipped: {description: messages left alone, type: int}
failed_messages: {description: messages that failed, type: int}
would_act: {description: check mode, messages that would be acted on, type: int}
summary: {description: qsurgeon summary JSON (action summary), type: dict}
messages: {description: list JSON objects (action list), type: list}
'''

import json
import re

from ansible.module_utils.basic import AnsibleModule

FLAG = re.compile(r'^[a-z][a-z-]*$')
ACTIONS = ('summary', 'list', 'delete', 'hold', 'release')
DONE = re.compile(r'^(delete|hold|release): (\d+) done, (\d+) skipped, (\d+) failed$', re.M)
DRY = re.compile(r'^dry run: (delete|hold|release) of (\d+) message', re.M)


def filter_args(module, filters):
    args = []
    for name in sorted(filters):
        if not FLAG.match(name) or name in ('yes', 'dry-run', 'all', 'journal', 'queue', 'format'):
            module.fail_json(msg='filters: %r is not a selection flag of qsurgeon' % name)
        value = filters[name]
        if value is True:
            args.append('--' + name)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            for v in value:
                args += ['--' + name, str(v)]
        else:
            args += ['--' + name, str(value)]
    return args


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type='str', required=True, choices=list(ACTIONS)),
            filters=dict(type='dict', default={}),
            all=dict(type='bool', default=False),
            bin=dict(type='str', default='qsurgeon'),
            queue=dict(type='str'),
            mta=dict(type='str', default='auto'),
            top=dict(type='int', default=10),
            limit=dict(type='int', default=1000),
            max=dict(type='int', default=0),
            journal=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    base = [p['bin'], '--no-progress', '--mta', p['mta']]
    if p['queue']:
        base += ['--queue', p['queue']]
    fargs = filter_args(module, p['filters'])
    result = dict(changed=False, action=p['action'], matched=0, done=0, skipped=0, failed_messages=0)

    def run(args, ok=(0,)):
        rc, out, err = module.run_command(base + args)
        if rc not in ok:
            module.fail_json(msg='qsurgeon %s exited %d: %s' % (' '.join(args[:2]), rc, err.strip()),
                             rc=rc, stderr=err, stdout=out, **result)
        return rc, out, err

    # Every action starts with the read-only count of what the filters select.
    _, out, err = run(['--format', 'json', 'summary', '--top', str(p['top'])] + fargs)
    summary = json.loads(out)
    result['matched'] = summary.get('messages', 0)
    result['mta'] = summary.get('mta')
    result['per_queue'] = dict((q, c['count']) for q, c in (summary.get('queues') or {}).items())
    if err.strip():
        result['warnings_text'] = err.strip().splitlines()[:20]

    if p['action'] == 'summary':
        result['summary'] = summary
        module.exit_json(**result)
    if p['action'] == 'list':
        _, out, _ = run(['--format', 'json', 'list', '--limit', str(p['limit'])] + fargs)
        result['messages'] = [json.loads(l) for l in out.splitlines() if l.strip()]
        module.exit_json(**result)

    if not fargs and not p['all']:
        module.fail_json(msg='%s with no filters would act on every message; give filters or all: true' % p['action'], **result)
    args = [p['action'], '--yes'] + fargs
    if p['all']:
        args.append('--all')
    if p['max']:
        args += ['--max', str(p['max'])]
    if p['journal']:
        args += ['--journal', p['journal']]
    if module.check_mode:
        args.append('--dry-run')
        _, out, err = run(args)
        m = DRY.search(out)
        result['would_act'] = int(m.group(2)) if m else 0
        result['changed'] = result['would_act'] > 0
        result['dry_run'] = out.splitlines()[:50]
        module.exit_json(**result)
    rc, out, err = run(args, ok=(0, 3))
    m = DONE.search(err)
    if m:
        result['done'], result['skipped'], result['failed_messages'] = int(m.group(2)), int(m.group(3)), int(m.group(4))
    result['changed'] = result['done'] > 0
    if rc != 0:
        # Some messages failed or were unreadable: the host is failed, with
        # its counts, so the play names it.
        module.fail_json(msg='qsurgeon %s: %d done, %d skipped, %d failed (exit %d): %s' % (
            p['action'], result['done'], result['skipped'], result['failed_messages'], rc, err.strip()[-2000:]), rc=rc, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
