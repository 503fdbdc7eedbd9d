# qsurgeon fleet filters: merge the per-host results of the qsurgeon module.


def _result(hostvars, host, var):
    r = hostvars.get(host, {}).get(var)
    if not r or r.get('failed') or r.get('skipped'):
        return None
    return r


def qsurgeon_fleet(hosts, hostvars, var='qsurgeon_result'):
    """One structure for the fleet: per host the counts, queues and top
    accounts; the totals; and the hosts that gave no result (failed)."""
    out = dict(hosts={}, failed=[], total=dict(matched=0, done=0, would_act=0, skipped=0, failed_messages=0))
    for h in hosts:
        r = _result(hostvars, h, var)
        if r is None:
            out['failed'].append(h)
            continue
        s = r.get('summary') or {}
        top = [dict(kind='sasl_user', name=e['key'], messages=e['count'], client_addresses=e.get('distinct_clients', 0))
               for e in (s.get('top_sasl_users') or [])]
        out['hosts'][h] = dict(matched=r.get('matched', 0), per_queue=r.get('per_queue', {}),
                               done=r.get('done', 0), would_act=r.get('would_act', 0),
                               skipped=r.get('skipped', 0), failed_messages=r.get('failed_messages', 0),
                               mta=r.get('mta'), top_accounts=top, top_senders=s.get('top_senders') or [])
        for k in out['total']:
            out['total'][k] += r.get(k, 0) or 0
    return out


def qsurgeon_fleet_table(hosts, hostvars, var='qsurgeon_result', top=3):
    """The merged summary as text: one row per host and queue, then the top
    SASL accounts of each host, then the accounts summed over the fleet."""
    f = qsurgeon_fleet(hosts, hostvars, var)
    lines = ['%-20s %-10s %9s' % ('HOST', 'QUEUE', 'MESSAGES')]
    accounts = {}
    for h in sorted(f['hosts']):
        d = f['hosts'][h]
        for q in sorted(d['per_queue']):
            lines.append('%-20s %-10s %9d' % (h, q, d['per_queue'][q]))
        lines.append('%-20s %-10s %9d' % (h, 'all', d['matched']))
        for a in d['top_accounts']:
            acc = accounts.setdefault(a['name'], dict(messages=0, hosts=[]))
            acc['messages'] += a['messages']
            acc['hosts'].append(h)
    for h in f['failed']:
        lines.append('%-20s %-10s %9s' % (h, '-', 'FAILED'))
    lines.append('')
    lines.append('%-40s %9s  %s' % ('TOP SASL ACCOUNTS (fleet)', 'MESSAGES', 'HOSTS'))
    ranked = sorted(accounts.items(), key=lambda kv: (-kv[1]['messages'], kv[0]))[:max(top * 3, 10)]
    for name, a in ranked:
        lines.append('%-40s %9d  %s' % (name, a['messages'], ','.join(sorted(a['hosts']))))
    for h in sorted(f['hosts']):
        for a in f['hosts'][h]['top_accounts'][:top]:
            lines.append('  %s: %s %d messages from %d client address(es)' % (h, a['name'], a['messages'], a['client_addresses']))
    return lines


class FilterModule(object):
    def filters(self):
        return dict(qsurgeon_fleet=qsurgeon_fleet, qsurgeon_fleet_table=qsurgeon_fleet_table)
