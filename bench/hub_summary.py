#!/usr/bin/env python3
"""Summarise a bench/hub.sh results file: medians per scenario and server.

usage: python3 bench/hub_summary.py RESULTS_FILE

Lines are `scenario server round {json}` as written by hub.sh (hubload's
--json output). Prints one Markdown table per scenario, then one for the
RSS per idle subscribed connection. Ratios are duplex / peer of the medians
(and duplex-sse / peer when SSE subscribers were measured): for deliveries
per server CPU-second above 1 means duplex does more work per CPU-second; for
p99 latency below 1 means duplex is faster.
"""
import json
import statistics
import sys

NAMES = {
    'a': '(a) 10,000 subscribers x 1 topic, 100 publications/s offered',
    'b': '(b) 10,000 subscribers x 1 topic, 1,000 publications/s offered',
    'c': '(c) 1,000 subscribers x 1 topic, 1,000 publications/s offered',
    'd': '(d) 1,000 topics x 10 subscribers, 1,000 publications/s offered',
    'e': '(e) 1,000 subscribers x 1 topic, 100 publications/s offered',
}
BASES = ('duplex', 'duplex-sse')  # the servers ratios are taken against


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def fmt_us(us):
    if us >= 1e6:
        return f'{us / 1e6:.1f} s'
    if us >= 1e3:
        return f'{us / 1e3:.1f} ms'
    return f'{us:.0f} us'


def main(path):
    rows, failed = {}, {}
    for line in open(path):
        parts = line.rstrip('\n').split(' ', 3)
        if line.startswith('#') or len(parts) != 4 or not parts[3].startswith('{'):
            continue
        sc, srv, _rnd, js = parts
        d = json.loads(js)
        if 'failed' in d:
            failed.setdefault(sc, {}).setdefault(srv, []).append(d['failed'])
            continue
        rows.setdefault(sc, {}).setdefault(srv, []).append(d)
    out = []
    bases = [b for b in BASES if any(b in srvs for srvs in rows.values())] or ['duplex']
    for sc in sorted(set(rows) | set(failed)):
        srvs = rows.get(sc, {})
        out.append('')
        out.append(NAMES.get(sc, sc))
        out.append('| server | runs | deliveries/s | deliveries per server CPU-s (range) '
                   '| server CPU | hubload CPU | latency p50 / p99 / max | loss | closed subs |'
                   + ''.join(f' {b} / server, per CPU-s | {b} / server, p99 |' for b in bases))
        out.append('| --- |' + ' ---: |' * (8 + 2 * len(bases)))
        for s, runs in srvs.items():
            pc = med(runs, 'deliveries_per_server_cpu_s')
            lo = min(r['deliveries_per_server_cpu_s'] for r in runs)
            hi = max(r['deliveries_per_server_cpu_s'] for r in runs)
            span = [r['seconds'] + r['drain_s'] for r in runs]
            lg = statistics.median(r['loadgen_cpu_s'] / t for r, t in zip(runs, span) if t)
            p99 = med(runs, 'p99_us')
            ratios = ''
            for b in bases:
                base = srvs.get(b)
                ratio = f"{med(base, 'deliveries_per_server_cpu_s') / pc:.2f}" if base and pc else '-'
                rp99 = f"{med(base, 'p99_us') / p99:.2f}" if base and p99 else '-'
                ratios += f' {ratio} | {rp99} |'
            loss = f"{med(runs, 'loss_pct'):.1f}%"
            out.append(
                f"| {s} | {len(runs)} | {med(runs, 'deliveries_per_s'):,.0f} "
                f"| {pc:,.0f} ({lo:,.0f}-{hi:,.0f}) | {med(runs, 'server_cpu_pct'):.0f}% "
                f"| {100 * lg:.0f}% | {fmt_us(med(runs, 'p50_us'))} / {fmt_us(p99)} / "
                f"{fmt_us(med(runs, 'max_us'))} | {loss} | {med(runs, 'closed_subs'):.0f} |"
                + ratios)
        for s, why in failed.get(sc, {}).items():
            out.append(f"| {s} | {len(why)} failed ({', '.join(sorted(set(why)))}) |"
                       + ' - |' * (7 + 2 * len(bases)))
    # Memory: RSS per idle subscribed connection, from every run.
    out.append('')
    out.append('RSS per idle subscribed connection (VmRSS after subscribing minus before '
               'connecting, / subscribers; median over runs)')
    out.append('| server | ' + ' | '.join(f'({sc}) subs' for sc in sorted(rows)) + ' |')
    out.append('| --- |' + ' ---: |' * len(rows))
    servers = []
    for sc in sorted(rows):
        for s in rows[sc]:
            if s not in servers:
                servers.append(s)
    for s in servers:
        cells = []
        for sc in sorted(rows):
            runs = rows[sc].get(s)
            cells.append(f"{med(runs, 'rss_per_sub_bytes'):,.0f} B ({runs[0]['subscribers']:,})"
                         if runs else '-')
        out.append(f'| {s} | ' + ' | '.join(cells) + ' |')
    print('\n'.join(out))


if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1] in ('-h', '--help'):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    main(sys.argv[1])
