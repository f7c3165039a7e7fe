#!/usr/bin/env python3
"""Summarise a bench/scale.sh results file: medians per scenario and configuration.

usage: python3 bench/scale_summary.py RESULTS_FILE

Lines are `scenario config round {json}` (hubload --json with one
--server-pid per node and one for redis-server, in that order). One Markdown
table per scenario: deliveries/s, deliveries per server CPU-second summed
over the nodes and Redis (with its range over the rounds), Redis's share of
that CPU, latency, loss; and the ratio of each N-node configuration's work
per CPU-second to the same server on one node.
"""
import json
import statistics
import sys

NAMES = {
    'a': '(a) 10,000 subscribers x 1 topic, 10 publications/s offered',
    'b': '(b) 10,000 subscribers x 1 topic, 100 publications/s offered',
    'c': '(c) 10,000 subscribers on 1,000 topics, 1,000 publications/s offered',
    'd': '(d) 10,000 subscribers x 1 topic, 1 publication/s offered',
}
ORDER = ('duplex-1', 'duplex-1r', 'duplex-3', 'socketio-1', 'socketio-3')


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def fmt_us(us):
    if us >= 1e6:
        return f'{us / 1e6:.1f} s'
    if us >= 1e3:
        return f'{us / 1e3:.1f} ms'
    return f'{us:.0f} us'


def redis_share(d):
    each = d.get('server_cpu_each_s') or []
    if d['config'].endswith('-1') or len(each) < 2 or d['server_cpu_s'] <= 0:
        return None
    return 100.0 * each[-1] / d['server_cpu_s']


def main(path):
    rows, failed = {}, {}
    for line in open(path):
        parts = line.rstrip('\n').split(' ', 3)
        if line.startswith('#') or len(parts) != 4 or not parts[3].startswith('{'):
            continue
        sc, cfg, _rnd, js = parts
        d = json.loads(js)
        d['config'] = cfg
        if 'failed' in d:
            failed.setdefault(sc, {}).setdefault(cfg, []).append(d['failed'])
            continue
        rows.setdefault(sc, {}).setdefault(cfg, []).append(d)
    out = []
    for sc in sorted(set(rows) | set(failed)):
        cfgs = rows.get(sc, {})
        out.append('')
        out.append(NAMES.get(sc, sc))
        out.append('| config | runs | deliveries/s | deliveries per server CPU-s (range) '
                   '| server CPU | Redis share | latency p50 / p99 | loss | vs 1 node, per CPU-s |')
        out.append('| --- |' + ' ---: |' * 8)
        names = [c for c in ORDER if c in cfgs] + sorted(c for c in cfgs if c not in ORDER)
        for cfg in names:
            runs = cfgs[cfg]
            per = [r['deliveries_per_server_cpu_s'] for r in runs]
            shares = [s for s in (redis_share(r) for r in runs) if s is not None]
            base = cfgs.get(cfg.split('-')[0] + '-1')
            ratio = ''
            if base and cfg != cfg.split('-')[0] + '-1':
                b = med(base, 'deliveries_per_server_cpu_s')
                ratio = f'{statistics.median(per) / b:.2f}' if b > 0 else ''
            out.append(
                f'| {cfg} | {len(runs)} | {med(runs, "deliveries_per_s"):,.0f} '
                f'| {statistics.median(per):,.0f} ({min(per):,.0f}-{max(per):,.0f}) '
                f'| {med(runs, "server_cpu_pct"):.0f}% '
                f'| {f"{statistics.median(shares):.0f}%" if shares else "-"} '
                f'| {fmt_us(med(runs, "p50_us"))} / {fmt_us(med(runs, "p99_us"))} '
                f'| {med(runs, "loss_pct"):.1f}% | {ratio} |')
        for cfg, why in sorted(failed.get(sc, {}).items()):
            out.append(f'| {cfg} | failed: {", ".join(why)} | | | | | | | |')
    print('\n'.join(out).lstrip('\n'))


if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1] in ('-h', '--help'):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    main(sys.argv[1])
