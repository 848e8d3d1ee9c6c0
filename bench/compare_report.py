#!/usr/bin/env python3
"""bench/compare_report.py: the tables and the chart of bench/compare.sh.

Reads the run's meta file (key=value lines) and results.tsv (one line per loadgen run:
peer, scenario, round, msg/s, p50 ms, p99 ms, measured messages, failed, server CPU us per
message, helper CPU us per message or -, accepted, received by the sink, lost, seconds,
loadgen JSON) and prints markdown on stdout: the medians over rounds per scenario and
server, then every run. With --chart FILE it draws the same figures (msg/s, p50, p99,
server CPU per message, messages lost; medians as bars, the rounds' range as whiskers)
with matplotlib into FILE (.png or .svg); without matplotlib it says so and draws nothing.
"""
import argparse
import statistics
import sys

PEER_NAMES = {'sluice': 'sluice', 'nginx': 'nginx mail proxy', 'postfix': 'Postfix'}
COLORS = {'sluice': '#1f77b4', 'nginx': '#2ca02c', 'postfix': '#d62728'}
FIELDS = ('peer', 'scen', 'round', 'msgs', 'p50', 'p99', 'okm', 'failed', 'cpu', 'helper',
          'accepted', 'received', 'lost', 'secs', 'json')
NUMERIC = ('msgs', 'p50', 'p99', 'okm', 'failed', 'cpu', 'accepted', 'received', 'lost',
           'secs')


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip('\n').partition('=')
            meta[key] = value
    return meta


def read_results(path):
    rows = []
    with open(path) as f:
        for line in f:
            row = dict(zip(FIELDS, line.rstrip('\n').split('\t')))
            for k in NUMERIC:
                row[k] = float(row[k])
            row['helper'] = None if row['helper'] == '-' else float(row['helper'])
            rows.append(row)
    return rows


def peer_title(meta, peer):
    version = meta.get('version_' + peer, '')
    if peer == 'sluice':
        return 'sluice (this build)'
    return f"{PEER_NAMES[peer]} {version.split('-')[0]}" if version not in ('', '-') else PEER_NAMES[peer]


def fmt(v, digits=0):
    if v is None:
        return '-'
    s = f'{v:,.{digits}f}'
    return s.replace(',', ' ') if digits == 0 else s


def summarize(rows, peers, scens):
    """{(scen, peer): dict of medians, ranges and sums} for the pairs that ran."""
    out = {}
    for s in scens:
        for p in peers:
            runs = [r for r in rows if r['scen'] == s and r['peer'] == p]
            if not runs:
                continue
            agg = {'n': len(runs)}
            for k in ('msgs', 'p50', 'p99', 'cpu'):
                vals = [r[k] for r in runs]
                agg[k] = statistics.median(vals)
                agg[k + '_range'] = (min(vals), max(vals))
            helpers = [r['helper'] for r in runs if r['helper'] is not None]
            agg['helper'] = statistics.median(helpers) if helpers else None
            agg['lost'] = sum(r['lost'] for r in runs)
            agg['lost_range'] = (min(r['lost'] for r in runs), max(r['lost'] for r in runs))
            agg['accepted'] = sum(r['accepted'] for r in runs)
            agg['failed'] = sum(r['failed'] for r in runs)
            out[(s, p)] = agg
    return out


def print_tables(meta, rows, peers, scens, summary):
    print(f"## sluice beside other relays: {meta.get('date', '')}")
    print()
    print(f"Source: {meta.get('source', '?')}. Machine: {meta.get('machine', '?')}.")
    print(f"{meta.get('clients')} clients, AUTH PLAIN over implicit TLS, certificate "
          f"certs/dev-{meta.get('cert')}.crt for every server, {meta.get('runs')} rounds of "
          f"{meta.get('warmup')} s warmup + {meta.get('duration')} s measured per server and "
          f"scenario, servers alternated within each round; sluice and nginx with "
          f"{meta.get('workers')} workers. Output: {meta.get('out')}")
    print()
    print('### Medians over the rounds')
    print()
    print('| scenario | server | msg/s | p50 ms | p99 ms | server CPU µs/msg | '
          'auth helper CPU µs/msg | lost (accepted − received) | failed |')
    print('|---|---|---:|---:|---:|---:|---:|---:|---:|')
    for s in scens:
        for p in peers:
            a = summary.get((s, p))
            if not a:
                continue
            print(f"| {meta.get('label_' + s, s)} | {peer_title(meta, p)} | {fmt(a['msgs'])} | "
                  f"{fmt(a['p50'], 2)} | {fmt(a['p99'], 1)} | {fmt(a['cpu'])} | "
                  f"{fmt(a['helper'])} | {fmt(a['lost'])} of {fmt(a['accepted'])} | "
                  f"{fmt(a['failed'])} |")
    print()
    print('### Every run')
    print()
    print('| round | scenario | server | msg/s | p50 ms | p99 ms | server CPU µs/msg | '
          'helper µs/msg | accepted | received | lost | failed | s to drain + measure |')
    print('|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for r in rows:
        print(f"| {int(r['round'])} | {r['scen']} | {r['peer']} | {r['msgs']:.1f} | "
              f"{r['p50']:.3f} | {r['p99']:.3f} | {fmt(r['cpu'])} | {fmt(r['helper'])} | "
              f"{fmt(r['accepted'])} | {fmt(r['received'])} | {fmt(r['lost'])} | "
              f"{fmt(r['failed'])} | {r['secs']:.1f} |")


SHORT = {'reuse': 'reused\n2 KB', 'new': 'new TLS conn.\nper message', 'big': 'reused\n100 KB',
         'starttls': 'STARTTLS\nreused 2 KB'}


def draw_chart(path, meta, peers, scens, summary):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print(f'compare_report.py: no matplotlib (apt-get install python3-matplotlib): '
              f'no chart {path}', file=sys.stderr)
        return False
    panels = [('msgs', 'msg/s (higher is better)', 0), ('p50', 'p50 latency, ms', 1),
              ('p99', 'p99 latency, ms', 1), ('cpu', 'server CPU per message, µs', 0),
              ('lost', 'messages lost (accepted − received)', 0)]
    fig, grid = plt.subplots(2, 3, figsize=(12, 7))
    axes = grid.flatten()
    width = 0.8 / max(1, len(peers))
    for ax, (key, title, digits) in zip(axes, panels):
        top = 0
        for j, p in enumerate(peers):
            xs, ys, lo, hi = [], [], [], []
            for i, s in enumerate(scens):
                a = summary.get((s, p))
                if not a:
                    continue
                xs.append(i + (j - (len(peers) - 1) / 2) * width)
                ys.append(a[key])
                rmin, rmax = (a['lost'], a['lost']) if key == 'lost' else a[key + '_range']
                lo.append(a[key] - rmin)
                hi.append(rmax - a[key])
                top = max(top, rmax)
            bars = ax.bar(xs, ys, width, yerr=None if key == 'lost' else [lo, hi], capsize=2,
                          color=COLORS[p], label=peer_title(meta, p))
            ax.bar_label(bars, labels=[f'{y:,.{digits}f}' for y in ys], fontsize=7, padding=2)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(scens)))
        ax.set_xticklabels([SHORT.get(s, s) for s in scens], fontsize=8)
        ax.tick_params(axis='y', labelsize=8)
        ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    handles, labels = axes[0].get_legend_handles_labels()
    info = axes[-1]
    info.axis('off')
    info.legend(handles, labels, loc='upper left', fontsize=9, frameon=False)
    info.text(0, 0.55, f"{meta.get('clients')} clients, AUTH PLAIN, implicit TLS,\n"
                       f"{meta.get('cert', '').upper()} certificate for all, sink on 127.0.0.1\n"
                       f"medians of {meta.get('runs')} rounds of {meta.get('duration')} s "
                       f"(whiskers: min-max)\n{meta.get('machine', '')}\n"
                       f"{meta.get('date', '')}\n"
                       f"bench/compare.sh",
              fontsize=8, va='top', transform=info.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f'compare_report.py: chart in {path}', file=sys.stderr)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--meta', required=True)
    ap.add_argument('--results', required=True)
    ap.add_argument('--chart', help='draw the figures into this .png or .svg file')
    args = ap.parse_args()
    meta = read_meta(args.meta)
    rows = read_results(args.results)
    peers = [p for p in meta.get('peers', '').split() if any(r['peer'] == p for r in rows)]
    scens = [s for s in meta.get('scenarios', '').split() if any(r['scen'] == s for r in rows)]
    summary = summarize(rows, peers, scens)
    print_tables(meta, rows, peers, scens, summary)
    if args.chart:
        draw_chart(args.chart, meta, peers, scens, summary)
    return 0 if rows else 1


if __name__ == '__main__':
    sys.exit(main())
