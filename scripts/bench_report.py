#!/usr/bin/env python3
"""Turn simdnorm_bench's Google Benchmark JSON into terminal tables, report.md and throughput plots.

Usage: scripts/bench_report.py RESULTS.json [--out DIR] [--no-plot] [--command TEXT]

Standard library only (runs with Debian's /usr/bin/python3); the plots are drawn by gnuplot when it is installed.

Everything is computed from one run:
  speed-up vs naive   = naive time / simdnorm time           (same op, layout, tensor)
  speed-up vs oneDNN  = oneDNN time / simdnorm time, from the paired benchmark (paired_peers, or paired_onednn in
                        runs before PyTorch joined: simdnorm and its peers timed in alternation, the median of the
                        per-iteration ratios) where the run has one, else the ratio of the two benchmarks' median
                        times
  speed-up vs PyTorch = PyTorch time / simdnorm time, likewise
  of stream           = simdnorm GB/s / streaming baseline GB/s on a tensor of the same size
  against the streaming pass: from the paired benchmark (paired_stream) where the run has one
Times are the median of a benchmark's measurements: its rounds (simdnorm_bench --rounds, names ending in
/round:<k>) and its repetitions (Google Benchmark's "median" aggregate when only that is in the file). A paired
ratio is the median over the rounds of each round's median.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys

NAME_RE = re.compile(r"^(?P<op>[a-z_]+)/(?P<layout>[a-z]+)/(?P<impl>[a-z_]+)/C:(?P<c>\d+)/HW:(?P<hw>\d+)/N:(?P<n>\d+)(?:/|$)")

BN_OPS = ["train_fwd", "infer_fwd", "backward"]
ROW_OPS = ["layer_norm_fwd", "layer_norm_bwd", "rms_norm_fwd", "rms_norm_bwd"]
GROUP_OPS = ["group_norm_fwd", "group_norm_bwd"]
OPS = BN_OPS + ROW_OPS + GROUP_OPS
LAYOUTS = ["nchw", "nhwc", "rows"]
IMPLS = ["simdnorm", "naive", "onednn", "torch"]
PEERS = [("onednn", "oneDNN"), ("torch", "PyTorch")]

OP_TITLES = {"train_fwd": "batch norm, training forward", "infer_fwd": "batch norm, inference forward",
             "backward": "batch norm, backward", "layer_norm_fwd": "LayerNorm forward",
             "layer_norm_bwd": "LayerNorm backward", "rms_norm_fwd": "RMSNorm forward",
             "rms_norm_bwd": "RMSNorm backward", "group_norm_fwd": "GroupNorm forward",
             "group_norm_bwd": "GroupNorm backward"}
_BWD_NOTE = "GB/s counts 3 tensors per call: x and dy read once, dx written once"
BYTES_NOTE = {
    "train_fwd": "GB/s counts 3 tensors per call: x read twice (statistics, then normalisation), y written once",
    "infer_fwd": "GB/s counts 2 tensors per call: x read once, y written once",
    "backward": _BWD_NOTE,
    "layer_norm_fwd": "GB/s counts 2 tensors per call: x read once (a row is normalised while in cache), y written "
                      "once",
    "rms_norm_fwd": "GB/s counts 2 tensors per call: x read once, y written once",
    "group_norm_fwd": "GB/s counts 2 tensors per call: x read once, y written once",
    "layer_norm_bwd": _BWD_NOTE,
    "rms_norm_bwd": _BWD_NOTE,
    "group_norm_bwd": _BWD_NOTE + "; 32 groups",
}
BYTES_NOTE["group_norm_fwd"] += "; 32 groups"


def family(op):
    return "bn" if op in BN_OPS else "rows" if op in ROW_OPS else "group"


def layouts_of(op):
    return ["rows"] if op in ROW_OPS else ["nchw", "nhwc"]


def layout_title(layout):
    return layout if layout == "rows" else layout.upper()


# A time is marked "~" in the tables when its measurements spread more than NOISY_CV (standard deviation / mean) or
# when the calling thread was on its CPU for less than WAITED_CPU_SHARE of the wall time.
NOISY_CV = 0.10
WAITED_CPU_SHARE = 0.8
NOISE_NOTE = ("~ marks a time whose measurements vary by more than %d%%, or during which the calling thread was on "
              "its CPU for less than %d%% of the wall time (it waited for threads that another process had pushed "
              "off their cores): the machine was busy, read those figures with care"
              % (100 * NOISY_CV, 100 * WAITED_CPU_SHARE))

TIME_UNITS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def median(values):
    values = sorted(values)
    k = len(values)
    if k == 0:
        return None
    return values[k // 2] if k % 2 else 0.5 * (values[k // 2 - 1] + values[k // 2])


def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


class Results:
    """Median time (ms) and rate (bytes/s) per benchmark, keyed by (op, layout, impl, c, hw, n)."""

    def __init__(self, document):
        self.context = document.get("context", {})
        self.time_ms = {}
        self.bytes_per_s = {}
        self.errors = {}
        self.labels = {}
        self.repetitions = set()
        self.cv = {}  # coefficient of variation of the time over the measurements, where there were several
        # CPU time of the calling thread / wall time. The calling thread works (or spins at the OpenMP barrier) for
        # the whole call, so a share well below 1 means it waited: a thread was off its CPU, the machine was busy.
        self.cpu_share = {}
        self.layer_order = []  # (c, hw) in the order the run registered them
        # Paired benchmarks (impl "paired_..."): each counter's value in every round, keyed like the times.
        self.paired = {}
        first_family = {}
        medians = {}
        cvs = {}
        samples = {}
        paired_medians = {}
        for run in document.get("benchmarks", []):
            name = run.get("run_name") or run.get("name", "")
            m = NAME_RE.match(name)
            if not m:
                continue
            key = (m["op"], m["layout"], m["impl"], int(m["c"]), int(m["hw"]), int(m["n"]))
            layer = (key[3], key[4])
            # Registration order (family_index), not the order of the runs, which random interleaving shuffles.
            rank = run.get("family_index", len(first_family))
            first_family[layer] = min(first_family.get(layer, rank), rank)
            if run.get("error_occurred"):
                self.errors[key] = run.get("error_message", "error")
                continue
            if run.get("label"):
                self.labels[key] = run["label"]
            if key[2].startswith("paired_"):
                # Only the counters: the time of a paired benchmark is the sum of its contenders' blocks, whose
                # sizes each run calibrates anew, and says nothing. Every round's value where the file has them,
                # else (--benchmark_report_aggregates_only) the median aggregate's.
                counters = {k: v for k, v in run.items() if k.endswith("_ms") or "_per_" in k}
                if run.get("run_type") != "aggregate":
                    for counter, v in counters.items():
                        self.paired.setdefault(key, {}).setdefault(counter, []).append(v)
                elif run.get("aggregate_name") == "median":
                    paired_medians[key] = counters
                continue
            scale = TIME_UNITS.get(run.get("time_unit", "ns"), 1e-6)
            value = (run["real_time"] * scale, run.get("bytes"), run.get("cpu_time", 0.0) * scale)
            if run.get("run_type") == "aggregate":
                if run.get("aggregate_name") == "median":
                    medians[key] = value
                    self.repetitions.add(int(run.get("repetitions", 1)))
                elif run.get("aggregate_name") == "cv":
                    cvs[key] = run["real_time"]  # a fraction, whatever the time unit
            else:
                samples.setdefault(key, []).append(value)
        self.layer_order = sorted(first_family, key=lambda layer: first_family[layer])
        for key, counters in paired_medians.items():
            if key not in self.paired:
                self.paired[key] = {counter: [v] for counter, v in counters.items()}
        for key in set(medians) | set(samples):
            # Every measurement of every round when the file has them (it does unless Google Benchmark ran with
            # --benchmark_report_aggregates_only), else the median aggregate.
            if key in samples:
                t = median([s[0] for s in samples[key]])
                rates = [s[1] for s in samples[key] if s[1] is not None]
                b = median(rates) if rates else None
                cpu = median([s[2] for s in samples[key]])
                self.repetitions.add(len(samples[key]))
            else:
                t, b, cpu = medians[key]
            self.time_ms[key] = t
            self.bytes_per_s[key] = b
            self.cpu_share[key] = cpu / t if t > 0 else None
            times = [x[0] for x in samples.get(key, [])]
            if len(times) >= 2:
                mean = sum(times) / len(times)
                var = sum((x - mean) ** 2 for x in times) / (len(times) - 1)
                self.cv[key] = math.sqrt(var) / mean if mean > 0 else None
            elif key in cvs:
                self.cv[key] = cvs[key]

    def tensors(self, op, layout):
        """(c, hw, n) measured for this op and layout by any implementation, in grid order."""
        found = set()
        for key in list(self.time_ms) + list(self.errors):
            if key[0] == op and key[1] == layout:
                found.add((key[3], key[4], key[5]))
        order = {layer: i for i, layer in enumerate(self.layer_order)}
        return sorted(found, key=lambda t: (order.get((t[0], t[1]), 0), t[2]))

    def has_impl(self, impl):
        return any(k[2] == impl for k in list(self.time_ms) + list(self.errors))

    def t(self, op, layout, impl, c, hw, n):
        return self.time_ms.get((op, layout, impl, c, hw, n))

    def gbs(self, op, layout, impl, c, hw, n):
        b = self.bytes_per_s.get((op, layout, impl, c, hw, n))
        return None if b is None else b / 1e9

    def stream_gbs(self, c, hw, n):
        return self.gbs("stream", "flat", "stream", c, hw, n)

    def noisy(self, key):
        cv = self.cv.get(key)
        share = self.cpu_share.get(key)
        return (cv is not None and cv > NOISY_CV) or (share is not None and share < WAITED_CPU_SHARE)

    def noise_mark(self, key):
        return "~" if self.noisy(key) else ""

    def noisy_count(self):
        return sum(1 for key in self.time_ms if self.noisy(key)), len(self.time_ms)

    def error(self, op, layout, impl, c, hw, n):
        return (op, layout, impl, c, hw, n) in self.errors

    def paired_ratio(self, op, layout, pair, counter, c, hw, n):
        """Median over the rounds of a paired benchmark's counter, and whether the rounds spread more than
        NOISY_CV; (None, False) when the run has no such pair."""
        values = self.paired.get((op, layout, pair, c, hw, n), {}).get(counter)
        if not values:
            return None, False
        spread = False
        if len(values) >= 2:
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            spread = mean > 0 and sd / mean > NOISY_CV
        return median(values), spread

    def has_op_impl(self, op, impl):
        return any(k[0] == op and k[2] == impl for k in list(self.time_ms) + list(self.errors))

    def vs_peer(self, op, layout, peer, c, hw, n):
        """peer time / simdnorm time: paired where measured so (paired_peers; paired_onednn in runs before PyTorch
        joined), else the ratio of the medians."""
        for pair in ("paired_peers", "paired_onednn"):
            r, _ = self.paired_ratio(op, layout, pair, peer + "_per_simdnorm", c, hw, n)
            if r is not None:
                return r
        return ratio(self.t(op, layout, peer, c, hw, n), self.t(op, layout, "simdnorm", c, hw, n))

    def vs_onednn(self, op, layout, c, hw, n):
        return self.vs_peer(op, layout, "onednn", c, hw, n)


def ratio(a, b):
    return a / b if a is not None and b is not None and b > 0 else None


def shape_label(c, hw):
    return "%d (N x C)" % c if hw == 1 else "%dx%dx%d" % (c, hw, hw)


def tensor_label(op, c, hw, n):
    """rows x cols for LayerNorm and RMSNorm, "<layer> N=<n>" otherwise."""
    if op in ROW_OPS:
        return "%d x %d" % (n, c)
    return "%s N=%d" % (shape_label(c, hw), n)


def three_figures(v, places_below_1):
    """v with three significant figures from 1 up; below 1, with places_below_1 decimal places."""
    for limit, places in ((100, 0), (10, 1), (1, 2)):
        if v >= limit:
            return "%.*f" % (places, v)
    return "%.*f" % (places_below_1, v)


def fmt_ms(v):
    return "-" if v is None else three_figures(v, 3 if v >= 0.1 else 4)


def fmt_gbs(v):
    return "-" if v is None else ("%.0f" % v if v >= 100 else "%.1f" % v)


def fmt_x(v):
    return "-" if v is None else three_figures(v, 2) + "x"


def fmt_pct(v):
    return "-" if v is None else "%.0f%%" % (100 * v)


def fmt_mb(elements):
    mb = elements * 4 / 1e6
    return "%.2f" % mb if mb < 1 else "%.1f" % mb if mb < 100 else "%.0f" % mb


class Table:
    """Rows of cells rendered either as aligned text (terminal) or as a Markdown table."""

    def __init__(self, header, align):
        self.header = header
        self.align = align  # 'l' or 'r' per column
        self.rows = []

    def add(self, row):
        self.rows.append(row)

    def text(self, indent="  "):
        widths = [max(len(str(r[i])) for r in [self.header] + self.rows) for i in range(len(self.header))]

        def line(cells):
            out = []
            for cell, w, a in zip(cells, widths, self.align):
                out.append(str(cell).ljust(w) if a == "l" else str(cell).rjust(w))
            return indent + "  ".join(out).rstrip()

        return "\n".join([line(self.header)] + [line(r) for r in self.rows])

    def markdown(self):
        head = "| " + " | ".join(self.header) + " |"
        rule = "|" + "|".join(":---" if a == "l" else "---:" for a in self.align) + "|"
        # "~" escaped: two of them in a row would strike the text between them through in GitHub's Markdown.
        body = ["| " + " | ".join(str(c).replace("~", "\\~") for c in r) + " |" for r in self.rows]
        return "\n".join([head, rule] + body)


def op_peers(res, op):
    """The peers (impl, title) that ran this op in this run."""
    return [(impl, title) for impl, title in PEERS if res.has_op_impl(op, impl)
            or any(k[0] == op and k[2] in ("paired_peers", "paired_onednn") and impl + "_per_simdnorm" in v
                   for k, v in res.paired.items())]


def detail_table(res, op, layout):
    peers = op_peers(res, op)
    if op in ROW_OPS:
        header, align = ["cols", "rows"], ["r", "r"]
    else:
        header, align = ["layer (CxHxW)", "N"], ["l", "r"]
    header += ["MB", "simdnorm ms", "GB/s", "naive ms"]
    align += ["r", "r", "r", "r"]
    for _, title in peers:
        header += ["%s ms" % title, "GB/s"]
        align += ["r", "r"]
    header += ["stream GB/s", "vs naive"]
    align += ["r", "r"]
    for _, title in peers:
        header += ["vs %s" % title]
        align += ["r"]
    header += ["of stream"]
    align += ["r"]
    table = Table(header, align)
    for c, hw, n in res.tensors(op, layout):

        def cell_ms(impl):
            if res.error(op, layout, impl, c, hw, n):
                return "error"
            return fmt_ms(res.t(op, layout, impl, c, hw, n)) + res.noise_mark((op, layout, impl, c, hw, n))

        def cell_gbs(impl):
            if res.error(op, layout, impl, c, hw, n):
                return "error"
            return fmt_gbs(res.gbs(op, layout, impl, c, hw, n))

        t_fast = res.t(op, layout, "simdnorm", c, hw, n)
        row = [c, n] if op in ROW_OPS else [shape_label(c, hw), n]
        row += [fmt_mb(c * hw * hw * n), cell_ms("simdnorm"), cell_gbs("simdnorm"), cell_ms("naive")]
        for impl, _ in peers:
            row += [cell_ms(impl), cell_gbs(impl)]
        row += [fmt_gbs(res.stream_gbs(c, hw, n)) + res.noise_mark(("stream", "flat", "stream", c, hw, n)),
                fmt_x(ratio(res.t(op, layout, "naive", c, hw, n), t_fast))]
        for impl, _ in peers:
            row += [fmt_x(res.vs_peer(op, layout, impl, c, hw, n))]
        row += [fmt_pct(ratio(res.gbs(op, layout, "simdnorm", c, hw, n), res.stream_gbs(c, hw, n)))]
        table.add(row)
    return table


def summarise(res, op, layout):
    """Geometric means and worst cases of the ratios over every tensor of this op and layout."""
    found = {"naive": [], "stream": []}
    for impl, _ in PEERS:
        found[impl] = []
    for c, hw, n in res.tensors(op, layout):
        t_fast = res.t(op, layout, "simdnorm", c, hw, n)
        where = tensor_label(op, c, hw, n)
        r = ratio(res.t(op, layout, "naive", c, hw, n), t_fast)
        if r is not None:
            found["naive"].append((r, where))
        for impl, _ in PEERS:
            r = res.vs_peer(op, layout, impl, c, hw, n)
            if r is not None:
                found[impl].append((r, where))
        r = ratio(res.gbs(op, layout, "simdnorm", c, hw, n), res.stream_gbs(c, hw, n))
        if r is not None:
            found["stream"].append((r, where))

    def stats(pairs):
        if not pairs:
            return None, None
        return geomean([p[0] for p in pairs]), min(pairs)

    summary = {key: stats(pairs) for key, pairs in found.items()}
    summary["cases"] = len(res.tensors(op, layout))
    summary["pairs"] = found
    return summary


def summary_table(res):
    peers = [(impl, title) for impl, title in PEERS if any(op_peers(res, op) and (impl, title) in op_peers(res, op)
                                                           for op in OPS)]
    header = ["op", "layout", "tensors", "vs naive (geomean)", "worst vs naive"]
    align = ["l", "l", "r", "r", "l"]
    for _, title in peers:
        header += ["vs %s (geomean)" % title, "worst vs %s" % title]
        align += ["r", "l"]
    header += ["of stream (geomean)", "lowest of stream"]
    align += ["r", "l"]
    table = Table(header, align)
    for op in OPS:
        for layout in layouts_of(op):
            if not res.tensors(op, layout):
                continue
            s = summarise(res, op, layout)

            def worst(pair, fmt):
                return "-" if pair is None else "%s at %s" % (fmt(pair[0]), pair[1])

            row = [op, layout_title(layout), s["cases"], fmt_x(s["naive"][0]), worst(s["naive"][1], fmt_x)]
            for impl, _ in peers:
                row += [fmt_x(s[impl][0]), worst(s[impl][1], fmt_x)]
            row += [fmt_pct(s["stream"][0]), worst(s["stream"][1], fmt_pct)]
            table.add(row)
    return table


# The targets against the peers for LayerNorm, RMSNorm and GroupNorm, out of place: a geometric-mean
# speed-up of at least 2x over PyTorch (every op) and 1.5x over oneDNN (LayerNorm, the one it has), no case slower.
PEER_TARGETS = [("torch", "PyTorch", ROW_OPS + GROUP_OPS, 2.0),
                ("onednn", "oneDNN", ["layer_norm_fwd", "layer_norm_bwd"], 1.5)]


def peer_targets_table(res):
    """Per peer: the geometric mean of the speed-ups over every case of the new ops it ran, the slowest case, and the
    targets; "-" where the run has none."""
    table = Table(["against", "ops", "cases", "speed-up (geomean)", "target", "slowest case", "target", "met"],
                  ["l", "l", "r", "r", "r", "l", "r", "l"])
    for impl, title, ops, target in PEER_TARGETS:
        pairs = []
        for op in ops:
            for layout in layouts_of(op):
                pairs += [(r, "%s %s %s" % (op, layout_title(layout), where))
                          for r, where in summarise(res, op, layout)["pairs"][impl]]
        if not pairs:
            continue
        g = geomean([r for r, _ in pairs])
        low = min(pairs)
        met = "yes" if g >= target and low[0] >= 1.0 else "no"
        table.add([title, "LayerNorm" if impl == "onednn" else "LayerNorm, RMSNorm, GroupNorm", len(pairs), fmt_x(g),
                   ">= %.1fx" % target, "%s at %s" % (fmt_x(low[0]), low[1]), ">= 1x", met])
    return table


# The issues' targets for tensors beyond the last-level cache: time of the operation in place over the time of one
# in-place streaming pass over a tensor of the same size (GroupNorm's backward has none).
STREAM_TARGETS = {("train_fwd", "nchw"): 1.3, ("train_fwd", "nhwc"): 1.6, ("infer_fwd", "nchw"): 1.1,
                  ("infer_fwd", "nhwc"): 1.1, ("backward", "nchw"): 2.0, ("backward", "nhwc"): 2.5,
                  ("layer_norm_fwd", "rows"): 1.1, ("rms_norm_fwd", "rows"): 1.1, ("layer_norm_bwd", "rows"): 1.8,
                  ("rms_norm_bwd", "rows"): 1.8, ("group_norm_fwd", "nchw"): 1.3, ("group_norm_fwd", "nhwc"): 1.6}


# The two-pass floor of an operation ("floor/flat/<impl>/..."): raw loops of a read pass then a read-write pass,
# which NHWC training and backward cannot avoid, measured with GroupNorm too. Inference has one pass, the streaming
# pass itself; LayerNorm and RMSNorm normalise a row while it is in cache.
FLOOR_IMPL = {"train_fwd": "train", "backward": "backward", "group_norm_fwd": "train", "group_norm_bwd": "backward"}


def fmt_target(op, layout):
    target = STREAM_TARGETS.get((op, layout))
    return "-" if target is None else "%.1fx" % target


def meets(op, layout, r):
    target = STREAM_TARGETS.get((op, layout))
    if target is None or r is None:
        return "-"
    return "yes" if r <= target else "no"


def stream_table(res):
    """Time over the streaming pass, in place and out of place, for every tensor that ran in place, with the time of
    the two-pass floor over it where the run measured one: from the paired benchmark where the run has one, else
    from the separate benchmarks' medians."""
    table = Table(["op", "layout", "tensor", "MB", "in place / stream", "out of place / stream",
                   "two-pass floor / stream", "target (in place)", "met", "measured"],
                  ["l", "l", "l", "r", "r", "r", "r", "r", "l", "l"])
    for op in OPS:
        for layout in layouts_of(op):
            for c, hw, n in res.tensors(op, layout):
                label = tensor_label(op, c, hw, n)
                if (op, layout, "paired_stream", c, hw, n) in res.paired:

                    def cell(counter):
                        r, spread = res.paired_ratio(op, layout, "paired_stream", counter, c, hw, n)
                        return "-" if r is None else fmt_x(r) + ("~" if spread else "")

                    r_in, _ = res.paired_ratio(op, layout, "paired_stream", "inplace_per_stream", c, hw, n)
                    table.add([op, layout_title(layout), label, fmt_mb(n * c * hw * hw),
                               cell("inplace_per_stream"), cell("simdnorm_per_stream"),
                               cell("floor_per_stream") if op in FLOOR_IMPL else "-",
                               fmt_target(op, layout), meets(op, layout, r_in), "paired"])
                    continue
                t_in = res.t(op, layout, "inplace", c, hw, n)
                if t_in is None:
                    continue
                t_stream = res.t("stream", "flat", "stream", c, hw, n)
                t_out = res.t(op, layout, "simdnorm", c, hw, n)
                mark_in = res.noise_mark((op, layout, "inplace", c, hw, n))
                mark_out = res.noise_mark((op, layout, "simdnorm", c, hw, n))
                floor = "-"
                if op in FLOOR_IMPL:
                    key = ("floor", "flat", FLOOR_IMPL[op], c, hw, n)
                    t_floor = res.t(*key)
                    if t_floor is not None:
                        floor = fmt_x(ratio(t_floor, t_stream)) + res.noise_mark(key)
                table.add([op, layout_title(layout), label, fmt_mb(n * c * hw * hw),
                           fmt_x(ratio(t_in, t_stream)) + mark_in, fmt_x(ratio(t_out, t_stream)) + mark_out,
                           floor, fmt_target(op, layout), meets(op, layout, ratio(t_in, t_stream)), "separately"])
    return table


def peers_line(ctx):
    """Which peers ran and which were skipped, and why (the suite's context says "skipped: ..." for those)."""
    ran, skipped = [], []
    for key, title in (("onednn", "oneDNN"), ("torch", "PyTorch")):
        value = ctx.get(key)
        if value is None:
            skipped.append("%s (not known to this run)" % title)
        elif value.startswith("skipped"):
            why = value.split(": ", 1)[-1]
            skipped.append("%s (%s)" % (title, why[len("not built: "):] if why.startswith("not built: ") else why))
        else:
            ran.append("%s %s" % (title, value))
    line = "ran: " + (", ".join(ran) if ran else "none")
    if skipped:
        line += "; skipped: " + ", ".join(skipped)
    return line


def torch_line(ctx):
    value = ctx.get("torch", "? (not in this run)")
    if value.startswith("skipped") or value.startswith("?"):
        return value
    package = ctx.get("torch_package")
    return "%s%s, ATen's kernels (at::native_*), RMSNorm as the composite x * rsqrt(mean(x^2) + eps) * gamma" % (
        value, " (%s)" % package if package else "")


def run_info(res, command, load_after=""):
    ctx = res.context
    min_time = ctx.get("min_time", "")
    caches = ", ".join(
        "L%d %s %d KiB%s" % (cc.get("level", 0), cc.get("type", ""), cc.get("size", 0) // 1024,
                             " (x%d)" % (ctx.get("num_cpus", 1) // max(1, cc.get("num_sharing", 1)))
                             if cc.get("num_sharing", 0) else "")
        for cc in ctx.get("caches", []))
    reps = sorted(res.repetitions)
    lines = [
        ("date", ctx.get("date", "?")),
        ("commit", ctx.get("commit", "? (not run by scripts/bench.sh)")),
        ("CPU", "%s (%s)" % (ctx.get("cpu_model", "?"), ctx.get("cpu_features", "?"))),
        ("host", "%s: %s CPUs at %s MHz; %s" % (ctx.get("host_name", "?"), ctx.get("num_cpus", "?"),
                                                 ctx.get("mhz_per_cpu", "?"), caches)),
        ("load average", "%s at the start%s" % (", ".join("%.2f" % v for v in ctx.get("load_avg", [])),
                                                  ", %s at the end" % load_after if load_after else "")),
        ("threads", "%s (simdnorm, oneDNN, streaming baseline%s); the naive reference is single-threaded"
         % (ctx.get("threads", "?"), ", PyTorch: %s" % ctx["torch_threads"] if "torch_threads" in ctx else "")),
        ("simdnorm", "%s, kernels: %s" % (ctx.get("simdnorm_version", "?"), ctx.get("simdnorm_isa", "?"))),
        ("peers", peers_line(ctx)),
        ("oneDNN", ctx.get("onednn", "?")),
        ("PyTorch", torch_line(ctx)),
        ("check", "every implementation once per op on small tensors against the reference before timing: %s"
         % ctx.get("check", "? (not in this run)")),
        ("streaming baseline", "x = a*x + b in place, %s, threaded" % ctx.get("stream_isa", "?")),
        ("grid", ctx.get("grid", "?")),
        ("timing", "median of %s, each at least %s, after %s (naive: %s)" % (
            "%s rounds" % ctx["rounds"] if int(ctx.get("rounds", 1)) > 1 else
            "%s repetition(s)" % "/".join(str(r) for r in reps) if reps else "?",
            min_time, ctx.get("warmup", "?"), ctx.get("naive_runs", "?"))),
    ]
    if command:
        lines.append(("command", command))
    return lines


# The plots: per family, one PNG per layer (LayerNorm/RMSNorm: per width) measured at three batch sizes (row
# counts) or more, a panel per op and layout.
PLOT_FAMILIES = [
    # ops, layouts, multiplot rows (a panel per op and layout, two a row), file stem, title of a layer, x label
    (BN_OPS, ["nchw", "nhwc"], 3, "throughput_C%(c)d_HW%(hw)d",
     lambda c, hw: "N x C matrix, C=%d" % c if hw == 1 else "ResNet-50 BN layer C=%d, %dx%d" % (c, hw, hw),
     "batch size N"),
    (ROW_OPS, ["rows"], 2, "throughput_rows_C%(c)d",
     lambda c, hw: "LayerNorm and RMSNorm over rows of %d columns" % c, "rows"),
    (GROUP_OPS, ["nchw", "nhwc"], 2, "throughput_groupnorm_C%(c)d_HW%(hw)d",
     lambda c, hw: "GroupNorm (32 groups), C=%d, %dx%d" % (c, hw, hw), "batch size N"),
]
PLOT_STYLE = {
    "simdnorm": ("pt 7 ps 1.3 lw 3 lc rgb '#1f77b4'", "simdnorm"),
    "onednn": ("pt 5 ps 1.2 lw 2 lc rgb '#ff7f0e'", "oneDNN"),
    "torch": ("pt 13 ps 1.3 lw 2 lc rgb '#2ca02c'", "PyTorch"),
    "naive": ("pt 9 ps 1.2 lw 2 lc rgb '#7f7f7f'", "naive"),
}


def write_plots(res, out_dir):
    """One PNG per layer measured at three batch sizes or more: GB/s against N, a panel per op and layout."""
    gnuplot = shutil.which("gnuplot")
    jobs = []
    for ops, layouts, grid_rows, stem_format, title_of, xlabel in PLOT_FAMILIES:
        for c, hw in res.layer_order:
            batches = sorted({k[5] for k in res.time_ms if k[0] in ops and k[3] == c and k[4] == hw
                              and k[2] == "simdnorm"})
            if len(batches) >= 3:
                jobs.append((ops, layouts, grid_rows, stem_format % {"c": c, "hw": hw}, title_of(c, hw), xlabel, c,
                             hw, batches))
    if not jobs:
        return [], "no layer was measured at three batch sizes or more; no plot"
    if gnuplot is None:
        return [], "gnuplot is not installed; no plot (apt-get install gnuplot-nox)"

    data_dir = os.path.join(out_dir, "plot-data")
    os.makedirs(data_dir, exist_ok=True)
    pngs = []
    threads = res.context.get("threads", "?")
    for ops, layouts, grid_rows, stem, title, xlabel, c, hw, batches in jobs:
        panels = []
        top = 0.0
        for op in ops:
            for layout in layouts:
                path = os.path.join(data_dir, "%s_%s_%s.dat" % (stem, op, layout))
                with open(path, "w") as f:
                    f.write("# N %s stream (GB/s; ? = not measured)\n" % " ".join(IMPLS))
                    for n in batches:
                        values = [res.gbs(op, layout, impl, c, hw, n) for impl in IMPLS] + [res.stream_gbs(c, hw, n)]
                        top = max([top] + [v for v in values if v is not None])
                        f.write("%d %s\n" % (n, " ".join("?" if v is None else "%.4f" % v for v in values)))
                panels.append((op, layout, path))
        png = os.path.join(out_dir, stem + ".png")
        script = os.path.join(data_dir, stem + ".gnuplot")
        with open(script, "w") as g:
            g.write('set terminal pngcairo size 1400,%d font "DejaVu Sans,12" noenhanced\n' % (100 + 470 * grid_rows))
            g.write("set output %s\n" % json.dumps(png))
            g.write("set datafile missing '?'\n")
            g.write("set logscale x 2\n")
            g.write("set xtics (%s)\n" % ", ".join('"%d" %d' % (n, n) for n in batches))
            g.write("set xrange [%g:%g]\n" % (batches[0] / 1.25, batches[-1] * 1.25))
            g.write("set yrange [0:%g]\n" % (top * 1.3 if top > 0 else 1))
            g.write("set grid lc rgb '#dddddd'\n")
            g.write("set key top right maxrows 2 samplen 2.5 opaque font ',11'\n")
            g.write("set xlabel '%s'\nset ylabel 'GB/s (minimum traffic / time)'\n" % xlabel)
            g.write("set multiplot layout %d,2 title %s font ',15'\n" % (grid_rows, json.dumps(
                "Throughput against %s: %s, %s threads, simdnorm %s kernels" % (
                    xlabel.replace("batch size N", "batch size"), title, threads,
                    res.context.get("simdnorm_isa", "?")))))
            for op, layout, path in panels:
                panel_title = OP_TITLES[op] if layout == "rows" else "%s, %s" % (OP_TITLES[op], layout.upper())
                g.write("set title %s\n" % json.dumps(panel_title))
                q = json.dumps(path)
                parts = ["%s using 1:%d with lines dt 2 lw 3 lc rgb '#000000' title 'stream (roofline)'"
                         % (q, len(IMPLS) + 2)]
                for column, impl in enumerate(IMPLS, start=2):
                    if impl not in ("simdnorm", "naive") and not res.has_op_impl(op, impl):
                        continue
                    style, name = PLOT_STYLE[impl]
                    parts.append("%s using 1:%d with linespoints %s title '%s'" % (q, column, style, name))
                g.write("plot " + ", \\\n     ".join(parts) + "\n")
            g.write("unset multiplot\n")
        proc = subprocess.run([gnuplot, script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
        if proc.returncode != 0 or not os.path.exists(png):
            return pngs, "gnuplot failed on %s:\n%s" % (script, proc.stdout)
        pngs.append(png)
    return pngs, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="Google Benchmark JSON written by simdnorm_bench --benchmark_out")
    parser.add_argument("--out", help="directory for report.md and the plots (default: the JSON's directory)")
    parser.add_argument("--no-plot", action="store_true", help="skip the gnuplot plots")
    parser.add_argument("--command", default="", help="the command line to record in the report")
    parser.add_argument("--load-after", default="", help="load average when the run ended, to record")
    args = parser.parse_args()

    with open(args.json) as f:
        res = Results(json.load(f))
    out_dir = args.out or os.path.dirname(os.path.abspath(args.json))
    os.makedirs(out_dir, exist_ok=True)
    if not res.time_ms and not res.errors:
        print("bench_report: no simdnorm_bench results in %s" % args.json, file=sys.stderr)
        return 1

    # Terminal: the detail tables, then the summary, so that the verdict is what stays on screen.
    info = run_info(res, args.command, args.load_after)
    print()
    for key, value in info:
        print("  %-22s %s" % (key + ":", value))
    for op in OPS:
        for layout in layouts_of(op):
            if not res.tensors(op, layout):
                continue
            print()
            print("%s%s   (%s)" % (OP_TITLES[op], "" if layout == "rows" else ", " + layout.upper(), BYTES_NOTE[op]))
            print(detail_table(res, op, layout).text())
    print()
    print("Summary: speed-up of simdnorm (time ratio) and its fraction of the streaming baseline (GB/s ratio)")
    print(summary_table(res).text())
    peers = peer_targets_table(res)
    if peers.rows:
        print()
        print("LayerNorm, RMSNorm and GroupNorm against the peers, out of place (the issue's targets):")
        print(peers.text())
    streams = stream_table(res)
    if streams.rows:
        print()
        print("Against the streaming pass (time / time of one in-place pass over a tensor of the same size):")
        print(streams.text())
    noisy, timed = res.noisy_count()
    if noisy:
        print()
        print("%d of %d measurements are noisy. %s." % (noisy, timed, NOISE_NOTE))
    if res.context.get("check", "").startswith("FAILED"):
        print()
        print("The check against the reference failed: %s" % res.context["check"])
    if res.errors:
        print()
        print("%d benchmark(s) failed:" % len(res.errors))
        for key, message in sorted(res.errors.items()):
            print("  %s/%s/%s/C:%d/HW:%d/N:%d: %s" % (key + (message,)))

    pngs, plot_note = ([], "plots skipped (--no-plot)") if args.no_plot else write_plots(res, out_dir)

    # report.md: the same tables, with the context and the method.
    md = ["# simdnorm benchmark report", ""]
    md += ["| | |", "|:---|:---|"] + ["| %s | %s |" % (k, str(v).replace("|", "\\|")) for k, v in info]
    md += ["", "## Summary", "",
           "Speed-up = time of the other implementation / time of simdnorm, geometric mean over the tensors "
           "measured; worst = the smallest ratio and where it occurs. *Of stream* = simdnorm's GB/s over the "
           "streaming baseline's GB/s on a tensor of the same size. Against oneDNN and PyTorch the ratios come "
           "from paired benchmarks where the run has them (see below).", "",
           summary_table(res).markdown(), ""]
    if peers.rows:
        md += ["## LayerNorm, RMSNorm and GroupNorm against the peers", "",
               "Out of place, like the peers: the geometric mean of the speed-ups over every tensor, op and layout of "
               "the three norms that the peer runs, and the slowest case, against the issue's targets (at least 2x "
               "over PyTorch, 1.5x over oneDNN's LayerNorm, and no case slower than either). oneDNN 2.6 has no "
               "GroupNorm or RMSNorm primitive. PyTorch 1.13 has no RMSNorm: its figures are those of the composite "
               "`x * rsqrt(x.pow(2).mean(-1, keepdim) + eps) * gamma` a user writes, whose backward runs through "
               "autograd (the graph built once outside the timing loop, each call `torch::autograd::grad` over it), "
               "so RMSNorm's backward is the one figure that includes autograd's engine and several elementwise "
               "passes, as a user's would.", "", peers.markdown(), ""]
    if noisy:
        md += ["%d of %d measurements are noisy. %s." % (noisy, timed, NOISE_NOTE.replace("~", "\\~")), ""]
    if streams.rows:
        md += ["## Against the streaming pass", "",
               "Tensors beyond the last-level cache: the time of simdnorm, in place (y = x, dx = dy) and out of "
               "place, over the time of one in-place streaming pass `x = a*x + b` over a tensor of the same size as "
               "x; the target is the issues' (*met*: in place within it). The streaming pass moves 2 tensor sizes "
               "(x read and written once), for the backward calls too: a backward call reads x and dy and writes "
               "dx, 3 tensor sizes at the least, so 1.5x is its floor when reads and writes cost the same, and the "
               "1.8x target of LayerNorm and RMSNorm leaves 20 % over it. *Paired*: the streaming pass, simdnorm in "
               "place and out of place and the floor ran in alternation in one benchmark (a block of calls each, "
               "about 1 ms, in rotating order), and each figure is the median over the rounds of the median of the "
               "per-iteration ratios, so that the machine's swings in bandwidth (up to 2x from one second to the "
               "next when shared) cancel out; *separately*: the ratio of the separate benchmarks' median times. NHWC "
               "batch-norm training and backward read the tensor twice by necessity (every row's statistics come "
               "before the first row can be normalised), so 1.5x and 2.5x are their floor when a read-only pass "
               "costs half a read-write one. *Two-pass floor* measures it: raw loops, threaded like the streaming "
               "pass, that read the tensor (x; x and dy) and then make one read-write pass over it (x = a*x + b; "
               "dy = a*dy + b*x), nothing else, in the same round; it is shown for GroupNorm too, whose NHWC groups "
               "span a whole image. NCHW can go below it, since each channel's (group's) second pass finds it in "
               "L2.", "", streams.markdown(), ""]
    if pngs:
        md += ["## Throughput against batch size", "",
               "GB/s of each implementation against N (LayerNorm and RMSNorm: against the number of rows), one "
               "panel per operation and layout; the dashed line is the streaming baseline, the roofline of one read "
               "and one write of the tensor.", ""]
        md += ["![%s](%s)" % (os.path.basename(p), os.path.basename(p)) for p in pngs] + [""]
    elif plot_note:
        md += ["*%s*" % plot_note, ""]
    md += ["## How to read these figures", "",
           "- **Times** are wall-clock (Google Benchmark `UseRealTime`) per call, the median over the rounds (the "
           "whole grid runs several times over, so the measurements of one benchmark are minutes apart).",
           "- **GB/s** is the *minimum* memory traffic of the operation divided by the time, counted the same way for "
           "every implementation: batch-norm training forward 3 tensor sizes (x read for the statistics and again "
           "to normalise, y written), every other forward 2 (x read, y written: inference, and LayerNorm, RMSNorm "
           "and GroupNorm, which can normalise a row or group while it is in cache), every backward 3 (x and dy "
           "read, dx written); per-channel, per-column and per-row arrays are ignored. A backward that reads x and "
           "dy twice (statistics, then dx) cannot exceed 3/5 of the streaming baseline on tensors larger than the "
           "caches.",
           "- **Shapes**: batch norm on ResNet-50's layers (C x H x W at batch N) and an N x C matrix; LayerNorm "
           "and RMSNorm over the rows of a rows x cols matrix (benchmark names `.../C:<cols>/HW:1/N:<rows>`); "
           "GroupNorm with 32 groups on C x H x W at batch N, in both layouts.",
           "- **Streaming baseline**: one in-place pass `x = a*x + b` over a tensor of the same size, vectorised and "
           "threaded like the kernels: one read and one write per element, what the memory system allows. Small "
           "tensors (up to a few MB) stay in the caches between iterations for every implementation alike.",
           "- **Naive** is simdnorm's scalar reference (`simdnorm_reference_*`, double accumulation, single thread; "
           "in NHWC it walks the tensor one channel at a time with a stride of C). It is timed for a short minimum "
           "time in the first round only, to bound the run time (see *timing* above); for LayerNorm, RMSNorm and "
           "GroupNorm on tensors up to 16 MB only.",
           "- **oneDNN** runs its batch normalisation and layer normalisation primitives (created before timing) on "
           "the same buffers; the N x C matrix is described to it as NHWC in both layouts, the description that "
           "reaches its JIT kernel for those bytes. Its plain-NCHW batch-norm kernel is the generic `ncsp` one.",
           "- **PyTorch** runs ATen's CPU kernels directly (`at::native_batch_norm`, `_backward`, "
           "`at::native_layer_norm`, `_backward`, `at::native_group_norm`, `_backward`), under `c10::InferenceMode`, "
           "on tensors that wrap the same buffers (`from_blob`; NHWC as channels_last), so that the timing is the "
           "kernels' and not autograd's graph building; its intra-op threads are set to simdnorm's count "
           "(`at::set_num_threads`, the same OpenMP runtime). Its outputs are allocated by each call, as in "
           "PyTorch, through a caching allocator that the suite installs (a freed block serves the next request of "
           "its size), so that large outputs cost no fresh mmap and page faults at every call. Two exceptions "
           "follow what a 1.13 user gets: RMSNorm (see above), and GroupNorm's NHWC backward, which runs on contiguous copies of x and dy and returns dx in "
           "NCHW, as 1.13's autograd calls it (its kernel reads channels_last inputs as if contiguous: the check "
           "below finds dx wrong by the order of the values).",
           "- **The check**: before timing, every implementation (simdnorm and each peer, through the very code "
           "the benchmarks time) runs once per op and layout on small tensors, and its outputs (y, or dx, dgamma "
           "and dbeta) are compared with the reference's on the same inputs, to 1e-3 of their scale; a failure is "
           "an error of the run. The backward calls of LayerNorm, RMSNorm and GroupNorm get the statistics of x "
           "itself, as the forward pass saves them.",
           "- All implementations run out of place on the same 64-byte aligned, deterministically filled buffers, "
           "except the in-place figures against the streaming pass.",
           "- **Speed-ups against oneDNN and PyTorch** come from paired benchmarks where the run has them: simdnorm "
           "and its peers timed in alternation in one benchmark, blocks of about 1 ms each in rotating order, the "
           "median of the per-iteration ratios, then the median over the rounds. The times in the tables are those "
           "of the separate benchmarks.",
           ""]
    for impl, title in PEERS:
        labels = {}
        for key, label in res.labels.items():
            if key[2] == impl:
                labels.setdefault((key[0], key[1]), set()).add(label)
        if labels:
            md += ["%s implementations: " % title + "; ".join(
                "%s %s: %s" % (op, layout_title(layout), ", ".join(sorted(labels[(op, layout)])))
                for op in OPS for layout in layouts_of(op) if (op, layout) in labels) + ".", ""]
    for op in OPS:
        for layout in layouts_of(op):
            if not res.tensors(op, layout):
                continue
            md += ["## %s%s" % (OP_TITLES[op][0].upper() + OP_TITLES[op][1:],
                                "" if layout == "rows" else ", " + layout.upper()), "", BYTES_NOTE[op] + ".", "",
                   detail_table(res, op, layout).markdown(), ""]
    if res.errors:
        md += ["## Failures", ""] + ["- `%s/%s/%s/C:%d/HW:%d/N:%d`: %s" % (key + (message,))
                                     for key, message in sorted(res.errors.items())] + [""]
    report = os.path.join(out_dir, "report.md")
    with open(report, "w") as f:
        f.write("\n".join(md))

    print()
    print("Wrote %s" % report)
    for p in pngs:
        print("Wrote %s" % p)
    if plot_note:
        print(plot_note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
