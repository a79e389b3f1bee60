#!/usr/bin/env bash
# Room fan-out (issue 16, section 5): one room of MEMBERS members and a publisher, on one
# node with rooms in process against the same room split over 2 nodes on NATS, and the
# limit (the same members and publisher with no msgtrans), interleaved in one run. Tool: bench/room_fanout.cpp (see its header for what is
# measured). Starts its own nats-server on a random loopback port, measures its CPU, and
# writes the "Room fan-out" section of docs/benchmarks.md (between the generated markers)
# and docs/bench/room_fanout.jsonl. bench/compare.sh runs it last.
#
# Usage: bench/room_fanout.sh [-m MEMBERS] [-d SECS] [-r RATE] [-w WINDOW] [-p ROUNDS]
# Needs a release build (room_fanout) and nats-server (scripts/setup.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
members=1000 dur=5 rate=200 window=8 pairs=3  # rounds
while getopts "m:d:r:w:p:" opt; do
  case "$opt" in
    m) members="$OPTARG" ;; d) dur="$OPTARG" ;; r) rate="$OPTARG" ;; w) window="$OPTARG" ;; p) pairs="$OPTARG" ;;
    *) echo "usage: $0 [-m MEMBERS] [-d SECS] [-r RATE] [-w WINDOW] [-p ROUNDS]" >&2; exit 2 ;;
  esac
done
tool="$root/build/bin/room_fanout"
[ -x "$tool" ] || { echo "room_fanout: $tool missing: cmake --build --preset release --target room_fanout" >&2; exit 1; }
nats="$(command -v nats-server || echo /usr/sbin/nats-server)"
[ -x "$nats" ] || { echo "room_fanout: nats-server missing: bash scripts/setup.sh" >&2; exit 1; }

work="$(mktemp -d /tmp/msgtrans-fanout.XXXXXX)"
"$nats" -a 127.0.0.1 -p -1 2>"$work/nats.log" &
nats_pid=$!
trap 'kill $nats_pid 2>/dev/null || true; wait $nats_pid 2>/dev/null || true' EXIT INT TERM
url=""
for _ in $(seq 100); do
  url="$(sed -n 's/.*Listening for client connections on \([0-9.]*:[0-9]*\).*/nats:\/\/\1/p' "$work/nats.log" | head -1)"
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "room_fanout: nats-server did not start:" >&2; cat "$work/nats.log" >&2; exit 1; }
nats_version="$("$nats" --version 2>&1 | head -1)"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

results="$work/results.jsonl"
: >"$results"
for i in $(seq "$pairs"); do
  for nodes in 0 1 2; do
    echo "room_fanout: round $i, nodes=$nodes (0: the raw limit)" >&2
    out="$("$tool" --members "$members" --nodes "$nodes" --nats "$url" --nats-pid "$nats_pid" \
             --seconds "$dur" --rate "$rate" --window "$window")"
    echo "  $out" >&2
    echo "$out" >>"$results"
  done
done

# The hop alone: one member per node, no fan-out burst to wait behind.
hops="$work/hops.jsonl"
: >"$hops"
for i in $(seq "$pairs"); do
  echo "room_fanout: hop $i (1 member per node)" >&2
  "$tool" --members 2 --nodes 2 --nats "$url" --seconds "$dur" --rate 500 --saturate 0 >>"$hops"
done

mkdir -p docs/bench
cp "$results" docs/bench/room_fanout.jsonl
cat "$hops" >>docs/bench/room_fanout.jsonl
python3 - "$results" "$hops" docs/benchmarks.md "$(date -u '+%Y-%m-%d %H:%M UTC')" "$nats_version" \
  "$load_before / $(cut -d' ' -f1-3 /proc/loadavg)" "$members" "$dur" "$rate" "$window" <<'EOF'
import json, statistics, sys
res, hopfile, doc, when, natsv, load, members, dur, rate, window = sys.argv[1:]
hop = [json.loads(l)["steady"] for l in open(hopfile)]
hop_diff = [h["remote_p50_us"] - h["local_p50_us"] for h in hop]
hop_remote = " / ".join("%.0f" % h["remote_p50_us"] for h in hop)
hop_local = " / ".join("%.0f" % h["local_p50_us"] for h in hop)
hop_added = " / ".join("%+.0f" % d for d in hop_diff)
hop_p99 = " / ".join("%.0f" % h["remote_p99_us"] for h in hop)
runs = [json.loads(l) for l in open(res)]
raw = [r for r in runs if r["nodes"] == 0]
one = [r for r in runs if r["nodes"] == 1]
two = [r for r in runs if r["nodes"] == 2]
med = lambda xs: statistics.median(xs)
def cell(rs, f): return " / ".join(f(r) for r in rs)
vs_raw = [a["saturate"]["deliveries_per_sec"] / r["saturate"]["deliveries_per_sec"] for r, a in zip(raw, one)]
ratios = [b["saturate"]["deliveries_per_sec"] / a["saturate"]["deliveries_per_sec"] for a, b in zip(one, two)]
added = [b["steady"]["remote_p50_us"] - a["steady"]["p50_us"] for a, b in zip(one, two)]
added_same = [b["steady"]["remote_p50_us"] - b["steady"]["local_p50_us"] for b in two]
k = lambda v: f"{v/1000:,.0f}k"
rows = [
  ("deliveries/s, saturated (window %s publishes)" % window, lambda r: k(r["saturate"]["deliveries_per_sec"])),
  ("  p50 / p99 publish-to-delivery, saturated (us)", lambda r: f'{r["saturate"]["p50_us"]:.0f} / {r["saturate"]["p99_us"]:.0f}'),
  ("  lost deliveries, stalls", lambda r: f'{r["saturate"]["lost"]}, {r["saturate"]["stalls"]}'),
  ("  CPU: this process / nats-server (% of one core)", lambda r: f'{r["saturate"]["cpu_self_pct"]} / {r["saturate"]["cpu_nats_pct"] if r["nodes"] == 2 else "-"}'),
  ("steady %s publishes/s: deliveries/s" % rate, lambda r: k(r["steady"]["deliveries_per_sec"])),
  ("  p50 / p99, all members (us)", lambda r: f'{r["steady"]["p50_us"]:.0f} / {r["steady"]["p99_us"]:.0f}'),
  ("  p50 / p99, members on the publisher's node (us)", lambda r: f'{r["steady"]["local_p50_us"]:.0f} / {r["steady"]["local_p99_us"]:.0f}'),
  ("  p50 / p99, members on the other node (us)", lambda r: f'{r["steady"]["remote_p50_us"]:.0f} / {r["steady"]["remote_p99_us"]:.0f}' if r["nodes"] == 2 else "-"),
  ("  lost deliveries", lambda r: str(r["steady"]["lost"])),
  ("  CPU: this process / nats-server (% of one core)", lambda r: f'{r["steady"]["cpu_self_pct"]} / {r["steady"]["cpu_nats_pct"] if r["nodes"] == 2 else "-"}'),
]
out = [f"<!-- BEGIN bench/room_fanout.sh -->",
       f"Generated by `bench/room_fanout.sh -m {members} -d {dur} -r {rate} -w {window}` on {when}; "
       f"{natsv}; load average before / after: {load}. "
       f"{len(one)} interleaved rounds; each cell lists the runs in order. Raw figures: `docs/bench/room_fanout.jsonl`.", "",
       "| | limit: no msgtrans, the publisher writes to every socket | 1 node, rooms in process | 2 nodes on NATS (half the members each) |",
       "| --- | --- | --- | --- |"]
for name, f in rows:
    out.append(f"| {name} | {cell(raw, f)} | {cell(one, f)} | {cell(two, f)} |")
ok1 = med(ratios) >= 0.5
ok2 = med(added) <= 300
out += ["",
        f"- **1 node / the limit, saturated deliveries/s**: {' / '.join(f'{x:.2f}x' for x in vs_raw)} (median {med(vs_raw):.2f}x).",
        f"- **2 nodes / 1 node, saturated deliveries/s**: {' / '.join(f'{x:.2f}x' for x in ratios)} "
        f"(median {med(ratios):.2f}x; goal >= 0.5x: **{'met' if ok1 else 'not met'}**).",
        f"- **Added cross-node p50** (steady; other-node members of the 2-node run minus all members of the "
        f"1-node run): {' / '.join(f'{x:+.0f}' for x in added)} us (median {med(added):+.0f} us; goal <= 300 us: "
        f"**{'met' if ok2 else 'not met'}**). Within the 2-node run, other node minus publisher's node: "
        f"{' / '.join(f'{x:+.0f}' for x in added_same)} us.",
        f"- **The cross-node hop alone** (1 member per node, 500 publishes/s): other node p50 "
        f"{hop_remote} us against the publisher's node {hop_local} us: {hop_added} us added "
        f"(median {med(hop_diff):+.0f} us; goal <= 300 us: **{'met' if med(hop_diff) <= 300 else 'not met'}**); "
        f"other node p99 {hop_p99} us.",
        "<!-- END bench/room_fanout.sh -->"]
text = open(doc).read()
b, e = "<!-- BEGIN bench/room_fanout.sh -->", "<!-- END bench/room_fanout.sh -->"
section = "\n".join(out)
if b in text:
    text = text[:text.index(b)] + section + text[text.index(e) + len(e):]
else:
    text = text.rstrip("\n") + "\n\n## Room fan-out (issue 16)\n\n" + section + "\n"
open(doc, "w").write(text)
print("room_fanout: wrote docs/benchmarks.md and docs/bench/room_fanout.jsonl", file=sys.stderr)
EOF
