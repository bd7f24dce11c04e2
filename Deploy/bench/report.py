#!/usr/bin/env python3
"""Figures of the benchmark (Deploy/bench/run).

  report.py pgbench NAME OUTPUT LOG...   pgbench's output and per-transaction logs -> NAME.json
  report.py latencies NAME FILE          one latency in seconds per line -> NAME.json
  report.py rate NAME FILE               {"rows", "seconds"} -> NAME.json with rows_per_second
  report.py table DIR RESULTS            every NAME.json of DIR -> printed table and RESULTS
"""
import json
import math
import os
import re
import sys


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    # Nearest rank: the smallest value with at least p% of the values at or below it.
    rank = max(0, min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1))
    return values[rank]


def pgbench(name, output, logs):
    text = open(output).read()
    tps = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", text)
    latencies = []
    for log in logs:
        with open(log) as f:
            for line in f:
                latencies.append(int(line.split()[2]) / 1000)
    write(name, {"rps": tps, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                 "samples": len(latencies), "failed": int(failed.group(1)) if failed else 0})


def latencies(name, path):
    values = [float(line) * 1000 for line in open(path) if line.strip()]
    write(name, {"queries": len(values), "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
                 "max_ms": max(values)})


def rate(name, path):
    figures = json.load(open(path))
    figures["rows_per_second"] = round(figures["rows"] / figures["seconds"])
    write(name, figures)


def write(name, figures):
    with open(name + ".json", "w") as f:
        json.dump(figures, f)


ROWS = [
    ("H0", "h0", "HTTP alone: GET /livez through Itaku's middleware"),
    ("B0", "b0", "pgbench point lookup by indexed key (prepared)"),
    ("B1", "b1", "pgbench naive audited: lookup + log row, one commit each"),
    ("G1", "g1", "Itaku phone lookup, verified token, durably logged"),
    ("G2", "g2", "Itaku read of a case-bound record"),
    ("G3", "g3", "Itaku update of an updatable field"),
]


def table(directory, results_path):
    def load(name):
        path = os.path.join(directory, name + ".json")
        return json.load(open(path)) if os.path.exists(path) else None

    settings = load("settings") or {}
    results = {"settings": settings, "throughput": {}, "ratios": {}, "access_log_search": None, "import": None}
    print()
    print(f"{'':4} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}  what")
    for label, key, what in ROWS:
        for conns in (8, 64):
            figures = load(f"{key}_{conns}")
            if figures is None:
                continue
            results["throughput"][f"{label.lower()}_{conns}"] = figures
            print(f"{label:4} {conns:>5} {figures['rps']:>10.0f} {figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f}  {what}")
    print()
    for conns in (8, 64):
        g1, b0, b1 = (results["throughput"].get(f"{k}_{conns}") for k in ("g1", "b0", "b1"))
        if g1 and b0 and b1:
            ratios = {"g1_b0": round(g1["rps"] / b0["rps"], 3), "g1_b1": round(g1["rps"] / b1["rps"], 3)}
            if conns == 64:
                results["ratios"].update(ratios)
            results["ratios"][f"g1_b0_{conns}"] = ratios["g1_b0"]
            results["ratios"][f"g1_b1_{conns}"] = ratios["g1_b1"]
            print(f"G1/B0 at {conns:>2} connections: {ratios['g1_b0']:.3f}    G1/B1 at {conns:>2} connections: {ratios['g1_b1']:.3f}")
    h0, g1 = results["throughput"].get("h0_64"), results["throughput"].get("g1_64")
    if h0 and g1:
        results["ratios"]["g1_h0"] = round(g1["rps"] / h0["rps"], 3)
        # Each interleaved G1 against the mean of the H0s just before and after it.
        slices = [(load(f"pair{n - 1}h0_64"), load(f"pair{n}g1_64"), load(f"pair{n}h0_64")) for n in range(1, 6)]
        paired = [round(2 * g["rps"] / (before["rps"] + after["rps"]), 3) for before, g, after in slices if before and g and after]
        line = f"G1/H0 at 64 connections: {results['ratios']['g1_h0']:.3f}"
        if paired:
            results["ratios"]["g1_h0_pairs"] = paired
            results["ratios"]["g1_h0_paired"] = sorted(paired)[len(paired) // 2]
            slice_seconds = min(4, settings.get("seconds_per_measurement", 4))
            line += (f"; interleaved, each G1 against the H0s beside it, {slice_seconds} s each: {', '.join(f'{r:.3f}' for r in paired)}"
                     f" (median {results['ratios']['g1_h0_paired']:.3f})")
        print(line)
    search, imported, alone, rss = load("l1"), load("l2"), load("p2"), load("rss")
    if search:
        results["access_log_search"] = search
        print(f"L1 access-log search, first page, agent + one day, over {settings.get('log_entries', '?')} entries: "
              f"p50 {search['p50_ms']:.1f} ms, p95 {search['p95_ms']:.1f} ms ({search['queries']} queries)")
    if imported:
        results["import"] = imported
        print(f"L2 CSV import of {imported['rows']} records: {imported['seconds']:.1f} s, {imported['rows_per_second']:.0f} rows/s")
    if alone:
        results["postgresql_alone_import"] = alone
        print(f"P2 PostgreSQL alone, the same records and lookup keys: {alone['seconds']:.1f} s, {alone['rows_per_second']:.0f} rows/s"
              + (f" (L2 is {imported['rows_per_second'] / alone['rows_per_second']:.0%} of it)" if imported else ""))
    if rss:
        results["peak_rss_mb"] = rss["peak_rss_mb"]
        print(f"Peak RSS of the Itaku process over the run: {rss['peak_rss_mb']:.0f} MB")
    if settings.get("fdatasync_us") is not None:
        print(f"fdatasync of one 8 kB write on this disk: {settings['fdatasync_us']} µs (pg_test_fsync)")
    with open(results_path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(f"\nwritten: {results_path}")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "pgbench":
        pgbench(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif command == "latencies":
        latencies(sys.argv[2], sys.argv[3])
    elif command == "rate":
        rate(sys.argv[2], sys.argv[3])
    elif command == "table":
        table(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
