#!/usr/bin/env python3
"""Generate tests/scalesim/reference.csv by running SCALE-Sim v3 (pip `scalesim` 3.0.0).

Run with the interpreter of a venv that has `scalesim` and `numpy<2` installed, e.g.

    python3 -m venv /work/venv-scalesim
    /work/venv-scalesim/bin/pip install scalesim "numpy<2"
    /work/venv-scalesim/bin/python tests/scalesim/gen_reference.py [--out tests/scalesim/reference.csv]

For every (array size, dataflow) pair it writes one SCALE-Sim config (CALC bandwidth,
64 kB SRAMs, no sparsity/ramulator/custom layout), one GEMM topology (`-i gemm` form) and,
for a few array sizes, one conv topology, runs SCALE-Sim through its Python API (the same
code path as `python -m scalesim.scale`, but without writing the per-cycle trace files), and
copies every column of COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv and
DETAILED_ACCESS_REPORT.csv into reference.csv, verbatim (as the strings SCALE-Sim printed).

Only one SCALE-Sim run is active at any time.  The shape grid is pruned by a cost estimate so
that the whole generation stays well below ~20 minutes on a 2-core machine.
"""

import argparse
import csv
import itertools
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

ARRAYS = [(4, 4), (8, 8), (16, 16), (32, 32), (8, 32), (32, 8), (128, 128), (4, 16)]
DATAFLOWS = ["os", "ws", "is"]
GEMM_VALUES = [1, 3, 7, 16, 33, 64, 100, 256]
# Always-included GEMM shapes (M, N, K); tiny, odd and the PEERS ones.
GEMM_FIXED = [(1, 1, 1), (3, 7, 1), (1, 33, 100), (16, 16, 16), (33, 33, 33), (100, 7, 64),
              (64, 100, 3), (256, 256, 256), (512, 128, 1024)]
GEMM_RANDOM_PER_ARRAY = 14
# Conv layers: (ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filter, stride)
CONV_LAYERS = [
    (7, 7, 3, 3, 4, 8, 1),
    (9, 9, 3, 3, 3, 16, 2),
    (8, 8, 1, 1, 16, 8, 1),
    (10, 12, 5, 3, 2, 6, 2),
    (12, 12, 3, 3, 2, 4, 2),     # (H-F) % S != 0: SCALE-Sim rounds the ofmap size UP
    (11, 9, 2, 2, 5, 7, 3),
    (15, 15, 7, 7, 3, 10, 2),
    (14, 14, 3, 3, 16, 32, 1),
    (6, 6, 6, 6, 2, 5, 1),       # window == ifmap: one ofmap pixel
    (13, 10, 4, 1, 3, 9, 3),
]
CONV_ARRAYS = [(8, 8), (16, 16), (32, 32), (8, 32), (32, 8)]

# Cost model (elementary Python operations in SCALE-Sim's per-address loops); ~350k/s here.
MAX_LAYER_COST = 4.0e6
MAX_TOTAL_COST = 2.4e8

CONFIG_TEMPLATE = """[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:   64
FilterSramSzkB:  64
OfmapSramSzkB:   64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {df}
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 100
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 100
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

COMPUTE_COLS = ["total_cycles_incl_prefetch", "total_cycles", "stall_cycles",
                "overall_util_pct", "mapping_eff_pct", "compute_util_pct"]
BW_COLS = ["avg_ifmap_sram_bw", "avg_filter_sram_bw", "avg_ofmap_sram_bw",
           "avg_ifmap_dram_bw", "avg_filter_dram_bw", "avg_ofmap_dram_bw"]
DETAIL_COLS = [f"{mem}_{op}_{what}"
               for mem in ("sram", "dram")
               for op in ("ifmap", "filter", "ofmap")
               for what in ("start", "stop", "accesses")]
LAYER_COLS = ["m", "n", "k", "ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels",
              "num_filter", "stride"]
HEADER = (["mode", "dataflow", "array_rows", "array_cols"] + LAYER_COLS
          + ["scalesim_" + c for c in COMPUTE_COLS] + BW_COLS + DETAIL_COLS)


def ceil_div(a, b):
    return -(-a // b)


def conv_to_mnk(h, w, fh, fw, c, nf, s):
    # SCALE-Sim topology_utils: ofmap = ceil((H - F + S) / S); no padding, batch 1.
    eh = ceil_div(h - fh + s, s)
    ew = ceil_div(w - fw + s, s)
    return eh * ew, nf, fh * fw * c


def est_cost(df, r, c, m, n, k):
    """Rough SCALE-Sim run cost; uses the cycle formula only to budget the grid."""
    if df == "os":
        folds, length = ceil_div(m, r) * ceil_div(n, c), r + c + k - 2
    elif df == "ws":
        folds, length = ceil_div(k, r) * ceil_div(n, c), 2 * r + c + m - 2
    else:
        folds, length = ceil_div(k, r) * ceil_div(m, c), 2 * r + c + n - 2
    return folds * length * (r + 2 * c) + 2 * (m * k + k * n + m * n)


def gemm_shapes_for(r, c):
    rng = random.Random(1000 * r + c)
    pool = [s for s in itertools.product(GEMM_VALUES, repeat=3) if s not in GEMM_FIXED]
    shapes = list(GEMM_FIXED) + rng.sample(pool, GEMM_RANDOM_PER_ARRAY)
    return shapes


def read_report(path):
    with open(path) as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    rows = []
    for ln in lines[1:]:
        parts = [p.strip() for p in ln.split(",")]
        assert parts[-1] == "", ln      # every line ends with ','
        rows.append(parts[1:-1])        # drop LayerID and the empty tail
    return rows


def run_scalesim(workdir, r, c, df, layers, gemm):
    """layers: list of tuples; returns list of (compute, bw, detail) per layer."""
    from scalesim.scale_sim import scalesim  # imported lazily (slow import)

    run_name = f"run_{r}x{c}_{df}_{'gemm' if gemm else 'conv'}"
    cfg = os.path.join(workdir, run_name + ".cfg")
    topo = os.path.join(workdir, run_name + ".csv")
    layout = os.path.join(workdir, "layout_header_only.csv")
    with open(cfg, "w") as f:
        f.write(CONFIG_TEMPLATE.format(run_name=run_name, rows=r, cols=c, df=df))
    with open(layout, "w") as f:
        # SCALE-Sim 3.0.0 always opens a layout CSV; with CustomLayout False a header suffices.
        f.write("Layer name, IFMAP Height Intraline Factor,\n")
    with open(topo, "w") as f:
        if gemm:
            f.write("Layer, M, N, K,\n")
            for i, (m, n, k) in enumerate(layers):
                f.write(f"L{i}, {m}, {n}, {k},\n")
        else:
            f.write("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                    "Channels, Num Filter, Strides,\n")
            for i, lay in enumerate(layers):
                f.write(f"L{i}, " + ", ".join(str(x) for x in lay) + ",\n")
    outdir = os.path.join(workdir, "out")
    sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                   layout=layout, input_type_gemm=gemm)
    sim.run_scale(top_path=outdir)
    rep = os.path.join(outdir, run_name)
    comp = read_report(os.path.join(rep, "COMPUTE_REPORT.csv"))
    bw = read_report(os.path.join(rep, "BANDWIDTH_REPORT.csv"))
    det = read_report(os.path.join(rep, "DETAILED_ACCESS_REPORT.csv"))
    assert len(comp) == len(bw) == len(det) == len(layers)
    return list(zip(comp, bw, det))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "reference.csv"))
    ap.add_argument("--max-total-cost", type=float, default=MAX_TOTAL_COST)
    args = ap.parse_args()

    jobs = []   # (mode, df, r, c, layers)
    total = 0.0
    for (r, c) in ARRAYS:
        for df in DATAFLOWS:
            g = []
            for (m, n, k) in gemm_shapes_for(r, c):
                cost = est_cost(df, r, c, m, n, k)
                if cost <= MAX_LAYER_COST or ((m, n, k) in GEMM_FIXED[-2:] and (r, c) == (32, 32)):
                    g.append((m, n, k))
                    total += cost
            jobs.append(("gemm", df, r, c, g))
            if (r, c) in CONV_ARRAYS:
                cl = []
                for lay in CONV_LAYERS:
                    cost = est_cost(df, r, c, *conv_to_mnk(*lay))
                    if cost <= MAX_LAYER_COST:
                        cl.append(lay)
                        total += cost
                jobs.append(("conv", df, r, c, cl))
    nlayers = sum(len(j[4]) for j in jobs)
    print(f"{len(jobs)} SCALE-Sim runs, {nlayers} layers, estimated cost {total:.3g}", flush=True)
    if total > args.max_total_cost:
        sys.exit("grid too expensive; lower the grid")

    workdir = tempfile.mkdtemp(prefix="scalesim_ref_")
    rows = []
    t0 = time.time()
    try:
        for (mode, df, r, c, layers) in jobs:
            if not layers:
                continue
            t = time.time()
            results = run_scalesim(workdir, r, c, df, layers, mode == "gemm")
            for lay, (comp, bw, det) in zip(layers, results):
                if mode == "gemm":
                    lf = list(lay) + [""] * 7
                else:
                    lf = [""] * 3 + list(lay)
                rows.append([mode, df, r, c] + [str(x) for x in lf] + comp + bw + det)
            print(f"{mode} {df} {r}x{c}: {len(layers)} layers in {time.time() - t:.1f}s "
                  f"(total {time.time() - t0:.0f}s)", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    with open(args.out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
