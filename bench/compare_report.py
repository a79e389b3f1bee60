#!/usr/bin/env python3
"""Turns the JSON lines of bench/compare.sh into docs/benchmarks.md and gnuplot scripts.

Usage: compare_report.py RESULTS MD PLOTDIR WORKDIR NPROC CPU KERNEL DATE THREADS DUR WARM LOADAVG
The generated part of MD sits between markers (one pair per server thread count);
everything else in MD (the reading, connection scale) is kept as it is.
"""
import json
import os
import sys

(results, md_path, plot_dir, work, nproc, cpu, kernel, date, threads, dur, warm, load) = sys.argv[1:13]
runs = {}
order = []
for line in open(results):
    r = json.loads(line)
    key = (r["id"], r["server"])
    runs[key] = r["json"]
    order.append(key)


def get(wid, server, field="messages_per_sec"):
    j = runs.get((wid, server))
    if j is None:
        return None
    if field.startswith("p") or field == "max":
        return j.get("latency_us", {}).get(field)
    return j.get(field)


def gbit(wid, server):
    mb = get(wid, server, "mb_per_sec")
    return None if mb is None else mb * 8 / 1000


def fmt_rate(x):
    if x is None:
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


goals = []  # (workload, measured, baseline, ratio text, goal text, met)


def goal_row(workload, measured, baseline, value, goal_text, met):
    goals.append((workload, measured, baseline, value, goal_text, "**met**" if met else "**missed**"))


r = ratio(get("tcp_100x1x64", "msgtrans_tcp"), get("tcp_100x1x64", "raw"))
goal_row("TCP 100 x 1 x 64 B", fmt_rate(get("tcp_100x1x64", "msgtrans_tcp")) + " msg/s",
         "raw echo " + fmt_rate(get("tcp_100x1x64", "raw")), f"{r:.2f}x" if r else "n/a", ">= 0.8x raw", bool(r and r >= 0.8))
r = ratio(get("tcp_10x64x64", "msgtrans_tcp"), get("tcp_10x64x64", "raw"))
goal_row("TCP 10 x 64 x 64 B", fmt_rate(get("tcp_10x64x64", "msgtrans_tcp")) + " msg/s",
         "raw echo " + fmt_rate(get("tcp_10x64x64", "raw")), f"{r:.2f}x" if r else "n/a", ">= 0.5x raw, millions/s",
         bool(r and r >= 0.5 and get("tcp_10x64x64", "msgtrans_tcp") >= 1e6))
m, b = get("tcp_1x1x64", "msgtrans_tcp", "p50"), get("tcp_1x1x64", "raw", "p50")
r = ratio(m, b)
goal_row("TCP 1 x 1 x 64 B lock-step, p50", f"{m:.1f} us" if m else "n/a", f"raw echo {b:.1f} us" if b else "n/a",
         f"{r:.2f}x" if r else "n/a", "p50 <= 1.5x raw", bool(r and r <= 1.5))
r = ratio(get("ws_100x1x512", "msgtrans_ws"), get("tcp_100x1x512", "raw"))
rn = ratio(get("ws_100x1x512", "msgtrans_ws"), get("ws_100x1x512", "node_ws"))
goal_row("WS 100 x 1 x 512 B", fmt_rate(get("ws_100x1x512", "msgtrans_ws")) + " msg/s",
         f"raw TCP echo {fmt_rate(get('tcp_100x1x512', 'raw'))}; Node ws {fmt_rate(get('ws_100x1x512', 'node_ws'))}",
         (f"{r:.2f}x raw, {rn:.2f}x Node" if r and rn else "n/a"), ">= 0.8x raw TCP echo", bool(r and r >= 0.8))
r = ratio(get("ws_10x64x64", "msgtrans_ws"), get("ws_10x64x64", "node_ws"))
goal_row("WS 10 x 64 x 64 B", fmt_rate(get("ws_10x64x64", "msgtrans_ws")) + " msg/s",
         "Node ws " + fmt_rate(get("ws_10x64x64", "node_ws")), f"{r:.2f}x" if r else "n/a", ">= 4x Node ws", bool(r and r >= 4))
g, gt = gbit("bulk_1x4x1M", "msgtrans_quic"), gbit("bulk_1x4x1M", "msgtrans_tcp")
goal_row("QUIC 1 conn, 1 MiB messages (4 in flight)", f"{g:.2f} Gbit/s" if g is not None else "n/a",
         f"msgtrans TCP {gt:.2f} Gbit/s; raw echo {gbit('bulk_1x4x1M', 'raw'):.2f}" if gt is not None else "n/a",
         f"{ratio(g, gt):.2f}x TCP" if g and gt else "n/a", ">= 2.5 Gbit/s", bool(g and g >= 2.5))
q, t = get("quic_1x32x64", "msgtrans_quic"), get("quic_1x32x64", "msgtrans_tcp")
goal_row("QUIC 1 x 32 x 64 B", fmt_rate(q) + " msg/s", "msgtrans TCP " + fmt_rate(t),
         f"{ratio(q, t):.2f}x TCP" if q and t else "n/a", ">= 500k msg/s", bool(q and q >= 500e3))
m, t = get("tcp_1x1x64", "msgtrans_quic", "p50"), get("tcp_1x1x64", "msgtrans_tcp", "p50")
r = ratio(m, t)
goal_row("QUIC 1 x 1 x 64 B lock-step, p50", f"{m:.1f} us" if m else "n/a", f"msgtrans TCP {t:.1f} us" if t else "n/a",
         f"{r:.2f}x TCP" if r else "n/a", "p50 <= 1.2x TCP", bool(r and r <= 1.2))
q, t = get("tcp_100x1x64", "msgtrans_quic"), get("tcp_100x1x64", "msgtrans_tcp")
goals.append(("QUIC 100 x 1 x 64 B", fmt_rate(q) + " msg/s", "msgtrans TCP " + fmt_rate(t),
              f"{ratio(q, t):.2f}x TCP" if q and t else "n/a", "(figure asked for, no goal)", "-"))
# Against the QUIC limit (bench/quic_raw_echo.cpp), each run right after the raw one.
q, b = get("quic_1x32x64", "msgtrans_quic"), get("quic_1x32x64", "quic_raw")
r = ratio(q, b)
t = ratio(get("quic_1x32x64", "msgtrans_quic", "p999"), get("quic_1x32x64", "quic_raw", "p999"))
goal_row("QUIC 1 x 32 x 64 B vs raw QUIC echo", fmt_rate(q) + " msg/s", "raw QUIC echo " + fmt_rate(b),
         f"{r:.2f}x, p99.9 {t:.2f}x" if r and t else "n/a", ">= 0.9x, p99.9 <= 2x", bool(r and r >= 0.9 and t and t <= 2))
m, b = get("tcp_1x1x64", "msgtrans_quic", "p50"), get("tcp_1x1x64", "quic_raw", "p50")
r = ratio(m, b)
goal_row("QUIC lock-step p50 vs raw QUIC echo", f"{m:.1f} us" if m else "n/a", f"raw QUIC echo {b:.1f} us" if b else "n/a",
         f"{r:.2f}x" if r else "n/a", "p50 <= 1.1x", bool(r and r <= 1.1))
q, b = get("tcp_100x1x64", "msgtrans_quic"), get("tcp_100x1x64", "quic_raw")
r = ratio(q, b)
goal_row("QUIC 100 x 1 x 64 B vs raw QUIC echo", fmt_rate(q) + " msg/s", "raw QUIC echo " + fmt_rate(b),
         f"{r:.2f}x" if r else "n/a", ">= 0.8x", bool(r and r >= 0.8))
g, gr = gbit("bulk_1x4x1M", "msgtrans_quic"), gbit("bulk_1x4x1M", "quic_raw")
goal_row("QUIC bulk vs raw QUIC echo", f"{g:.2f} Gbit/s" if g is not None else "n/a",
         f"raw QUIC echo {gr:.2f} Gbit/s" if gr is not None else "n/a", f"{ratio(g, gr):.2f}x" if g and gr else "n/a",
         ">= 6 Gbit/s", bool(g and g >= 6))
for wid, shape, goal in (("tcp_100x1x64", "100 x 1 x 64 B", 0.7), ("tcp_10x64x64", "10 x 64 x 64 B", 0.5)):
    tl, t = get(wid, "msgtrans_tls"), get(wid, "msgtrans_tcp")
    r = ratio(tl, t)
    goal_row(f"tls:// {shape}", fmt_rate(tl) + " msg/s", "msgtrans TCP " + fmt_rate(t),
             f"{r:.2f}x TCP" if r else "n/a", f">= {goal}x TCP", bool(r and r >= goal))
for wid, server, label in (("rate_tcp_half", "msgtrans_tcp", "TCP"), ("rate_ws_half", "msgtrans_ws", "WS")):
    p99 = get(wid, server, "p99")
    offered = get(wid, server)
    extra = ""
    if label == "WS" and get(wid, "node_ws", "p99") is not None:
        extra = f"Node ws at its half rate: p99 {get(wid, 'node_ws', 'p99'):.0f} us"
    goal_row(f"{label} open loop at half the max (100 conns, {fmt_rate(offered)} msg/s achieved)",
             f"p99 {p99:.0f} us" if p99 is not None else "n/a", extra or "-", "-", "p99 < 1 ms",
             bool(p99 is not None and p99 < 1000))

labels = {
    "raw": "raw epoll echo (1 thread)",
    "msgtrans_tcp": f"msgtrans serve TCP ({threads} thread)",
    "msgtrans_ws": f"msgtrans serve WS ({threads} thread)",
    "msgtrans_quic": f"msgtrans serve QUIC ({threads} thread)",
    "quic_raw": "raw QUIC echo on ngtcp2 (1 thread)",
    "msgtrans_tls": f"msgtrans serve tls:// ({threads} thread)",
    "node_ws": "Node ws",
}

out = []
out.append(f"### Server threads: {threads}\n")
out.append(f"Measured {date} by `bench/compare.sh -t {threads}` (each run {dur} s after {warm} s warm-up).\n")
out.append(f"Machine: {nproc} CPUs ({cpu}), {kernel}; the load generator (`msgtrans bench`, 1 thread) "
           "runs on the same cores as the server. Load average (1/5/15 min) before / after the run: "
           f"{load} (the machine is shared; other work ran at the same time).\n")
out.append("#### Goals (ratios within this run)\n")
out.append("| workload | msgtrans | baseline | ratio | goal | |")
out.append("| --- | --- | --- | --- | --- | --- |")
for row in goals:
    out.append("| " + " | ".join(row) + " |")
out.append("")
out.append("#### All runs\n")
out.append("| workload | server | msg/s | MB/s | p50 us | p90 us | p99 us | p99.9 us | max us | errors |")
out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for key in order:
    j = runs[key]
    lat = j.get("latency_us", {})
    out.append(f"| {key[0]} | {labels.get(key[1], key[1])} | {j.get('messages_per_sec', 0):,.0f} | "
               f"{j.get('mb_per_sec', 0):,.1f} | {lat.get('p50', 0):.1f} | {lat.get('p90', 0):.1f} | "
               f"{lat.get('p99', 0):.1f} | {lat.get('p999', 0):.1f} | {lat.get('max', 0):.0f} | {j.get('errors')} |")
out.append("")
stalled = [k for k in order if k[1].endswith("(stalled, retried)")]
if stalled:
    out.append("**Stalled runs:** " + ", ".join(f"`{k[0]}` / {k[1].split(' ')[0]}" for k in stalled) +
               " connected and reported no error, yet no reply came back in the whole run; "
               "the table's goal row uses the retry.\n")
out.append("Workload names: `tcp_CxKxS` = C connections x K requests in flight each x S bytes of payload; "
           "`bulk_1x4x1M` = 1 connection, 4 messages of 1 MiB in flight (MB/s counts the echoed direction); "
           "`rate_*_half` = open loop over 100 connections at half the closed-loop rate of the same server "
           "at 100 x 1 (latency from the intended send time).\n")
out.append(f"![throughput](bench/throughput-t{threads}.png)\n")
out.append(f"![latency](bench/latency-t{threads}.png)\n")
out.append(f"![bulk](bench/bulk-t{threads}.png)\n")

begin = f"<!-- BEGIN bench/compare.sh threads={threads} -->"
end = f"<!-- END bench/compare.sh threads={threads} -->"
block = begin + "\n" + "\n".join(out) + "\n" + end
if os.path.exists(md_path):
    md = open(md_path).read()
else:
    md = ("# Benchmarks\n\nGenerated by `bench/compare.sh` (the sections between the markers) and "
          "`bench/conn_scale.sh`; everything else is written by hand.\nThese are shared 2-core machines: "
          "absolute numbers drift by +-20% from run to run, so every claim is a ratio within one run.\n\n"
          "## Throughput and latency\n\n## Reading\n")
if begin in md and end in md:
    md = md[:md.index(begin)] + block + md[md.index(end) + len(end):]
else:
    anchor = "## Reading"
    if anchor in md:
        md = md.replace(anchor, block + "\n\n" + anchor, 1)
    else:
        md += "\n" + block + "\n"
open(md_path, "w").write(md)

# --- plots ------------------------------------------------------------------------------
short = {"raw": "raw echo", "msgtrans_tcp": "msgtrans TCP", "msgtrans_ws": "msgtrans WS",
         "msgtrans_quic": "msgtrans QUIC", "quic_raw": "raw QUIC", "msgtrans_tls": "msgtrans tls", "node_ws": "Node ws"}
with open(os.path.join(work, "throughput.dat"), "w") as f:
    for key in order:
        if key[0].startswith(("rate_", "bulk_")):
            continue
        f.write(f"\"{key[0]}\\n{short.get(key[1], key[1])}\" {runs[key].get('messages_per_sec', 0):.0f}\n")
with open(os.path.join(work, "latency.dat"), "w") as f:
    for key in order:
        if key[0].startswith("bulk_"):
            continue
        lat = runs[key].get("latency_us", {})
        f.write(f"\"{key[0]}\\n{short.get(key[1], key[1])}\" {max(lat.get('p50', 0), 0.1):.1f} "
                f"{max(lat.get('p99', 0), 0.1):.1f}\n")
with open(os.path.join(work, "bulk.dat"), "w") as f:
    for key in order:
        if key[0].startswith("bulk_"):
            f.write(f"\"{short.get(key[1], key[1])}\" {runs[key].get('mb_per_sec', 0) * 8 / 1000:.3f}\n")

common = ("set terminal pngcairo size 1400,700 font 'sans,10' noenhanced\nset style data histograms\n"
          "set style fill solid 0.8 border -1\nset boxwidth 0.8\nset xtics rotate by -45 scale 0\n"
          "set grid ytics\nset key top right\nset bmargin 8\n")
with open(os.path.join(work, "throughput.gp"), "w") as f:
    f.write(common + f"set output '{plot_dir}/throughput-t{threads}.png'\n"
            f"set title 'messages/s, server threads = {threads} ({date})'\nset logscale y\nset ylabel 'messages/s'\n"
            f"plot '{work}/throughput.dat' using 2:xtic(1) title 'messages/s' lc rgb '#3070b0'\n")
with open(os.path.join(work, "latency.gp"), "w") as f:
    f.write(common + f"set output '{plot_dir}/latency-t{threads}.png'\n"
            f"set title 'latency, server threads = {threads} ({date})'\nset logscale y\nset ylabel 'microseconds'\n"
            "set style histogram clustered gap 1\n"
            f"plot '{work}/latency.dat' using 2:xtic(1) title 'p50' lc rgb '#3070b0', "
            f"'' using 3 title 'p99' lc rgb '#d04030'\n")
with open(os.path.join(work, "bulk.gp"), "w") as f:
    f.write(common.replace("1400,700", "700,500") + f"set output '{plot_dir}/bulk-t{threads}.png'\n"
            f"set title '1 connection, 1 MiB messages, 4 in flight ({date})'\nset ylabel 'Gbit/s (echoed direction)'\n"
            "set yrange [0:*]\n"
            f"plot '{work}/bulk.dat' using 2:xtic(1) title 'Gbit/s' lc rgb '#3070b0'\n")
