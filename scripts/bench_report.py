#!/usr/bin/env python3
"""Turn simdnorm_bench's Google Benchmark JSON into a terminal table, report.md and throughput plots.

Usage: scripts/bench_report.py RESULTS.json [--out DIR] [--no-plot] [--command TEXT]

Standard library only (runs with Debian's /usr/bin/python3); the plots are drawn by gnuplot when it is installed.

Everything is computed from one run:
  speed-up vs naive   = naive time / simdnorm time           (same op, layout, tensor)
  speed-up vs oneDNN  = oneDNN time / simdnorm time, from the paired benchmark (paired_onednn: the two timed in
                        alternation, the median of the per-iteration ratios) where the run has one, else the ratio
                        of the two benchmarks' median times
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

OPS = ["train_fwd", "infer_fwd", "backward"]
LAYOUTS = ["nchw", "nhwc"]
IMPLS = ["simdnorm", "naive", "onednn"]

OP_TITLES = {"train_fwd": "training forward", "infer_fwd": "inference forward", "backward": "backward"}
BYTES_NOTE = {
    "train_fwd": "GB/s counts 3 tensors per call: x read twice (statistics, then normalisation), y written once",
    "infer_fwd": "GB/s counts 2 tensors per call: x read once, y written once",
    "backward": "GB/s counts 3 tensors per call: x and dy read once, dx written once",
}

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

    def vs_onednn(self, op, layout, c, hw, n):
        """oneDNN time / simdnorm time: paired where measured so, else the ratio of the medians."""
        r, _ = self.paired_ratio(op, layout, "paired_onednn", "onednn_per_simdnorm", c, hw, n)
        if r is not None:
            return r
        return ratio(self.t(op, layout, "onednn", c, hw, n), self.t(op, layout, "simdnorm", c, hw, n))


def ratio(a, b):
    return a / b if a is not None and b is not None and b > 0 else None


def shape_label(c, hw):
    return "%d (N x C)" % c if hw == 1 else "%dx%dx%d" % (c, hw, hw)


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


def detail_table(res, op, layout, with_onednn):
    header = ["layer (CxHxW)", "N", "MB", "simdnorm ms", "GB/s", "naive ms"]
    align = ["l", "r", "r", "r", "r", "r"]
    if with_onednn:
        header += ["oneDNN ms", "GB/s"]
        align += ["r", "r"]
    header += ["stream GB/s", "vs naive"]
    align += ["r", "r"]
    if with_onednn:
        header += ["vs oneDNN"]
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
        row = [shape_label(c, hw), n, fmt_mb(c * hw * hw * n), cell_ms("simdnorm"), cell_gbs("simdnorm"),
               cell_ms("naive")]
        if with_onednn:
            row += [cell_ms("onednn"), cell_gbs("onednn")]
        row += [fmt_gbs(res.stream_gbs(c, hw, n)) + res.noise_mark(("stream", "flat", "stream", c, hw, n)), fmt_x(ratio(res.t(op, layout, "naive", c, hw, n), t_fast))]
        if with_onednn:
            row += [fmt_x(res.vs_onednn(op, layout, c, hw, n))]
        row += [fmt_pct(ratio(res.gbs(op, layout, "simdnorm", c, hw, n), res.stream_gbs(c, hw, n)))]
        table.add(row)
    return table


def summarise(res, op, layout):
    """Geometric means and worst cases of the ratios over every tensor of this op and layout."""
    vs_naive, vs_onednn, of_stream = [], [], []
    for c, hw, n in res.tensors(op, layout):
        t_fast = res.t(op, layout, "simdnorm", c, hw, n)
        where = "%s N=%d" % (shape_label(c, hw), n)
        r = ratio(res.t(op, layout, "naive", c, hw, n), t_fast)
        if r is not None:
            vs_naive.append((r, where))
        r = res.vs_onednn(op, layout, c, hw, n)
        if r is not None:
            vs_onednn.append((r, where))
        r = ratio(res.gbs(op, layout, "simdnorm", c, hw, n), res.stream_gbs(c, hw, n))
        if r is not None:
            of_stream.append((r, where))

    def stats(pairs):
        if not pairs:
            return None, None
        return geomean([p[0] for p in pairs]), min(pairs)

    return {"cases": len(res.tensors(op, layout)), "naive": stats(vs_naive), "onednn": stats(vs_onednn),
            "stream": stats(of_stream)}


def summary_table(res, with_onednn):
    header = ["op", "layout", "tensors", "vs naive (geomean)", "worst vs naive"]
    align = ["l", "l", "r", "r", "l"]
    if with_onednn:
        header += ["vs oneDNN (geomean)", "worst vs oneDNN"]
        align += ["r", "l"]
    header += ["of stream (geomean)", "lowest of stream"]
    align += ["r", "l"]
    table = Table(header, align)
    for op in OPS:
        for layout in LAYOUTS:
            if not res.tensors(op, layout):
                continue
            s = summarise(res, op, layout)

            def worst(pair, fmt):
                return "-" if pair is None else "%s at %s" % (fmt(pair[0]), pair[1])

            row = [op, layout.upper(), s["cases"], fmt_x(s["naive"][0]), worst(s["naive"][1], fmt_x)]
            if with_onednn:
                row += [fmt_x(s["onednn"][0]), worst(s["onednn"][1], fmt_x)]
            row += [fmt_pct(s["stream"][0]), worst(s["stream"][1], fmt_pct)]
            table.add(row)
    return table


# The targets for tensors beyond the last-level cache: time of the operation over the time of one in-place
# streaming pass over the same tensor.
STREAM_TARGETS = {("train_fwd", "nchw"): 1.3, ("train_fwd", "nhwc"): 1.6, ("infer_fwd", "nchw"): 1.1,
                  ("infer_fwd", "nhwc"): 1.1, ("backward", "nchw"): 2.0, ("backward", "nhwc"): 2.5}


# The two-pass floor of an operation ("floor/flat/<impl>/..."): raw loops of a read pass then a read-write pass,
# which NHWC training and backward cannot avoid. Inference has one pass, the streaming pass itself.
FLOOR_IMPL = {"train_fwd": "train", "backward": "backward"}


def stream_table(res):
    """Time over the streaming pass, in place and out of place, for every tensor that ran in place, with the time of
    the two-pass floor over it where the run measured one: from the paired benchmark where the run has one, else
    from the separate benchmarks' medians."""
    table = Table(["op", "layout", "tensor", "MB", "in place / stream", "out of place / stream",
                   "two-pass floor / stream", "target", "measured"],
                  ["l", "l", "l", "r", "r", "r", "r", "r", "l"])
    for op in OPS:
        for layout in LAYOUTS:
            for c, hw, n in res.tensors(op, layout):
                if (op, layout, "paired_stream", c, hw, n) in res.paired:

                    def cell(counter):
                        r, spread = res.paired_ratio(op, layout, "paired_stream", counter, c, hw, n)
                        return "-" if r is None else fmt_x(r) + ("~" if spread else "")

                    table.add([op, layout.upper(), "%s N=%d" % (shape_label(c, hw), n), fmt_mb(n * c * hw * hw),
                               cell("inplace_per_stream"), cell("simdnorm_per_stream"),
                               cell("floor_per_stream") if op in FLOOR_IMPL else "-",
                               "%.1fx" % STREAM_TARGETS[(op, layout)], "paired"])
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
                table.add([op, layout.upper(), "%s N=%d" % (shape_label(c, hw), n), fmt_mb(n * c * hw * hw),
                           fmt_x(ratio(t_in, t_stream)) + mark_in, fmt_x(ratio(t_out, t_stream)) + mark_out,
                           floor, "%.1fx" % STREAM_TARGETS[(op, layout)], "separately"])
    return table


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
        ("threads", "%s (simdnorm, oneDNN, streaming baseline); the naive reference is single-threaded"
         % ctx.get("threads", "?")),
        ("simdnorm", "%s, kernels: %s" % (ctx.get("simdnorm_version", "?"), ctx.get("simdnorm_isa", "?"))),
        ("oneDNN", ctx.get("onednn", "?")),
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


def write_plots(res, out_dir, with_onednn):
    """One PNG per layer measured at three batch sizes or more: GB/s against N, a panel per op and layout."""
    gnuplot = shutil.which("gnuplot")
    layers = []
    for c, hw in res.layer_order:
        batches = sorted({k[5] for k in res.time_ms if k[3] == c and k[4] == hw and k[2] == "simdnorm"})
        if len(batches) >= 3:
            layers.append((c, hw, batches))
    if not layers:
        return [], "no layer was measured at three batch sizes or more; no plot"
    if gnuplot is None:
        return [], "gnuplot is not installed; no plot (apt-get install gnuplot-nox)"

    data_dir = os.path.join(out_dir, "plot-data")
    os.makedirs(data_dir, exist_ok=True)
    pngs = []
    threads = res.context.get("threads", "?")
    for c, hw, batches in layers:
        stem = "throughput_C%d_HW%d" % (c, hw)
        panels = []
        top = 0.0
        for op in OPS:
            for layout in LAYOUTS:
                path = os.path.join(data_dir, "%s_%s_%s.dat" % (stem, op, layout))
                with open(path, "w") as f:
                    f.write("# N simdnorm naive onednn stream (GB/s; ? = not measured)\n")
                    for n in batches:
                        values = [res.gbs(op, layout, impl, c, hw, n) for impl in IMPLS] + [res.stream_gbs(c, hw, n)]
                        top = max([top] + [v for v in values if v is not None])
                        f.write("%d %s\n" % (n, " ".join("?" if v is None else "%.4f" % v for v in values)))
                panels.append((op, layout, path))
        png = os.path.join(out_dir, stem + ".png")
        script = os.path.join(data_dir, stem + ".gnuplot")
        with open(script, "w") as g:
            g.write('set terminal pngcairo size 1400,1500 font "DejaVu Sans,12" noenhanced\n')
            g.write("set output %s\n" % json.dumps(png))
            g.write("set datafile missing '?'\n")
            g.write("set logscale x 2\n")
            g.write("set xtics (%s)\n" % ", ".join('"%d" %d' % (n, n) for n in batches))
            g.write("set xrange [%g:%g]\n" % (batches[0] / 1.25, batches[-1] * 1.25))
            g.write("set yrange [0:%g]\n" % (top * 1.3 if top > 0 else 1))
            g.write("set grid lc rgb '#dddddd'\n")
            g.write("set key top right maxrows 2 samplen 2.5 opaque font ',11'\n")
            g.write("set xlabel 'batch size N'\nset ylabel 'GB/s (minimum traffic / time)'\n")
            g.write("set multiplot layout 3,2 title %s font ',15'\n" % json.dumps(
                "Throughput against batch size: %s, %s threads, simdnorm %s kernels" % (
                    "N x C matrix, C=%d" % c if hw == 1 else "ResNet-50 BN layer C=%d, %dx%d" % (c, hw, hw),
                    threads, res.context.get("simdnorm_isa", "?"))))
            for op, layout, path in panels:
                g.write("set title %s\n" % json.dumps("%s, %s" % (OP_TITLES[op], layout.upper())))
                q = json.dumps(path)
                parts = [
                    "%s using 1:5 with lines dt 2 lw 3 lc rgb '#000000' title 'stream (roofline)'" % q,
                    "%s using 1:2 with linespoints pt 7 ps 1.3 lw 3 lc rgb '#1f77b4' title 'simdnorm'" % q,
                ]
                if with_onednn:
                    parts.append("%s using 1:4 with linespoints pt 5 ps 1.2 lw 2 lc rgb '#ff7f0e' title 'oneDNN'" % q)
                parts.append("%s using 1:3 with linespoints pt 9 ps 1.2 lw 2 lc rgb '#7f7f7f' title 'naive'" % q)
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
    with_onednn = res.has_impl("onednn")

    # Terminal: the detail tables, then the summary, so that the verdict is what stays on screen.
    info = run_info(res, args.command, args.load_after)
    print()
    for key, value in info:
        print("  %-22s %s" % (key + ":", value))
    for op in OPS:
        for layout in LAYOUTS:
            if not res.tensors(op, layout):
                continue
            print()
            print("%s, %s   (%s)" % (OP_TITLES[op], layout.upper(), BYTES_NOTE[op]))
            print(detail_table(res, op, layout, with_onednn).text())
    print()
    print("Summary: speed-up of simdnorm (time ratio) and its fraction of the streaming baseline (GB/s ratio)")
    print(summary_table(res, with_onednn).text())
    streams = stream_table(res)
    if streams.rows:
        print()
        print("Against the streaming pass (time / time of one in-place pass over the same tensor):")
        print(streams.text())
    noisy, timed = res.noisy_count()
    if noisy:
        print()
        print("%d of %d measurements are noisy. %s." % (noisy, timed, NOISE_NOTE))
    if res.errors:
        print()
        print("%d benchmark(s) failed:" % len(res.errors))
        for key, message in sorted(res.errors.items()):
            print("  %s/%s/%s/C:%d/HW:%d/N:%d: %s" % (key + (message,)))

    pngs, plot_note = ([], "plots skipped (--no-plot)") if args.no_plot else write_plots(res, out_dir, with_onednn)

    # report.md: the same tables, with the context and the method.
    md = ["# simdnorm benchmark report", ""]
    md += ["| | |", "|:---|:---|"] + ["| %s | %s |" % (k, str(v).replace("|", "\\|")) for k, v in info]
    md += ["", "## Summary", "",
           "Speed-up = time of the other implementation / time of simdnorm, geometric mean over the tensors "
           "measured; worst = the smallest ratio and where it occurs. *Of stream* = simdnorm's GB/s over the "
           "streaming baseline's GB/s on a tensor of the same size.", "",
           summary_table(res, with_onednn).markdown(), ""]
    if noisy:
        md += ["%d of %d measurements are noisy. %s." % (noisy, timed, NOISE_NOTE.replace("~", "\\~")), ""]
    streams = stream_table(res)
    if streams.rows:
        md += ["## Against the streaming pass", "",
               "Tensors beyond the last-level cache: the time of simdnorm, in place (y = x, dx = dy) and out of "
               "place, over the time of one in-place streaming pass `x = a*x + b` over a tensor of the same size; "
               "the target is the issue's. *Paired*: the streaming pass, simdnorm in place and out of place and "
               "the floor ran in alternation in one benchmark (a block of calls each, about 1 ms, in rotating "
               "order), and each figure is the median over the rounds of the median of the per-iteration ratios, "
               "so that the machine's swings in bandwidth (up to 2x from one second to the next when shared) "
               "cancel out; *separately*: the ratio of the separate benchmarks' median times. NHWC training and "
               "backward read the tensor twice by necessity (every row's statistics come before the first row can be normalised), so "
               "1.5x and 2.5x are their floor when a read-only pass costs half a read-write one. *Two-pass floor* "
               "measures it: raw loops, threaded like the streaming pass, that read the tensor (x; x and dy) and "
               "then make one read-write pass over it (x = a*x + b; dy = a*dy + b*x), nothing else, in the same "
               "round. NCHW can go below it, since each channel's second pass finds the channel in L2.", "",
               streams.markdown(), ""]
    if pngs:
        md += ["## Throughput against batch size", "",
               "GB/s of each implementation against N, one panel per operation and layout; the dashed line is the "
               "streaming baseline, the roofline of one read and one write of the tensor.", ""]
        md += ["![%s](%s)" % (os.path.basename(p), os.path.basename(p)) for p in pngs] + [""]
    elif plot_note:
        md += ["*%s*" % plot_note, ""]
    md += ["## How to read these figures", "",
           "- **Times** are wall-clock (Google Benchmark `UseRealTime`) per call, the median over the rounds (the "
           "whole grid runs several times over, so the measurements of one benchmark are minutes apart).",
           "- **GB/s** is the *minimum* memory traffic of the operation divided by the time, counted the same way for "
           "every implementation: training forward 3 tensor sizes (x read for the statistics and again to normalise, "
           "y written), inference forward 2 (x read, y written), backward 3 (x and dy read, dx written); per-channel "
           "arrays are ignored. A backward that reads x and dy twice (statistics, then dx) cannot exceed 3/5 of the "
           "streaming baseline on tensors larger than the caches.",
           "- **Streaming baseline**: one in-place pass `x = a*x + b` over a tensor of the same size, vectorised and "
           "threaded like the kernels: one read and one write per element, what the memory system allows. Small "
           "tensors (up to a few MB) stay in the caches between iterations for every implementation alike.",
           "- **Naive** is simdnorm's scalar reference (`simdnorm_reference_*`, double accumulation, single thread; "
           "in NHWC it walks the tensor one channel at a time with a stride of C). It is timed for a short minimum "
           "time in the first round only, to bound the run time (see *timing* above).",
           "- **oneDNN** runs its batch normalisation primitive (created before timing) on the same buffers; the "
           "N x C matrix is described to it as NHWC in both layouts, the description that reaches its JIT kernel "
           "for those bytes. Its plain-NCHW kernel is the generic `ncsp` one.",
           "- All implementations run out of place on the same 64-byte aligned, deterministically filled buffers.",
           "- **Speed-ups against oneDNN** come from paired benchmarks where the run has them: simdnorm and oneDNN "
           "timed in alternation in one benchmark, blocks of about 1 ms each in rotating order, the median of the "
           "per-iteration ratios, then the median over the rounds. The times in the tables are those of the "
           "separate benchmarks.",
           ""]
    labels = {}
    for key, label in res.labels.items():
        if key[2] == "onednn":
            labels.setdefault((key[0], key[1]), set()).add(label)
    if labels:
        md += ["oneDNN implementations selected: " + "; ".join(
            "%s %s: %s" % (op, layout.upper(), ", ".join(sorted(labels[(op, layout)])))
            for op in OPS for layout in LAYOUTS if (op, layout) in labels) + ".", ""]
    for op in OPS:
        for layout in LAYOUTS:
            if not res.tensors(op, layout):
                continue
            md += ["## %s, %s" % (OP_TITLES[op].capitalize(), layout.upper()), "", BYTES_NOTE[op] + ".", "",
                   detail_table(res, op, layout, with_onednn).markdown(), ""]
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
