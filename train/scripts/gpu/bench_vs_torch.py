#!/usr/bin/env python3
"""Benchmark: satkit's CUDA training path against a BDWP implementation in PyTorch (issue 6).

One run trains each (model, method) with both implementations, one after the other, each in
its own process so that its GPU memory is its own: ours as `satkit train --device cuda`, and
PyTorch as this script in `--worker` mode. Both use the same model (the satkit zoo's lenet5
and vgg-small), method (dense or BDWP N:M), batch, optimizer (SGD, momentum 0.9, weight
decay 5e-4, cosine schedule, lr 0.02), Fashion-MNIST held on the GPU, FP32 GEMMs (TF32 off),
and per-epoch evaluation on the test set.

Measured, per run:
- time per iteration and images/s over the training steps of epochs 2..E (epoch 1 warms up:
  cuDNN autotuning, allocator growth), from each implementation's own synchronized epoch
  timers (`history[].train_seconds`);
- peak GPU memory: the device's used memory (NVML) above its level before the process
  started, sampled every 10 ms (PyTorch's allocator peaks are recorded too);
- energy per iteration, where NVML answers: mean board power of the samples taken while
  epochs 2..E ran (from the line that announces epoch 1 to the one that announces epoch E,
  so the short evaluations in between are included), times the time per iteration;
- test accuracy after the last epoch.

The PyTorch BDWP: weight layers other than the first and the last are N:M sparse. Masks are
recomputed from the FP32 master weights after every optimizer step: FF groups of M
consecutive K elements with K in (kh, kw, c_in) order, BP groups of M consecutive output
channels, keep the N largest |w|, ties to the earlier index. The forward GEMM uses W*mask_ff,
the backward-data GEMM W*mask_bp, the weight gradient is dense, and the SR-STE term
lambda*(1-mask_ff)*W is added to the gradient before the SGD step. Dense runs use PyTorch's
own layers and autograd.

Usage (on the GPU machine):
  python3 bench_vs_torch.py --satkit BIN --dataset-dir DIR --out results.json
"""

import argparse
import gzip
import json
import math
import os
import re
import subprocess
import sys
import threading
import time

# ----------------------------------------------------------------------------- PyTorch worker

MEAN, STD = 0.2860, 0.3530


def load_idx(path):
    import torch

    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        raw = f.read()
    ndims = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndims)]
    data = torch.frombuffer(bytearray(raw[4 + 4 * ndims :]), dtype=torch.uint8)
    return data.reshape(dims)


def find(d, stem):
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise SystemExit(f"dataset file {stem}[.gz] not found in {d}")


def worker(args):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dev = torch.device(args.torch_device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(args.seed)

    def split(prefix):
        x = load_idx(find(args.dataset_dir, f"{prefix}-images-idx3-ubyte")).float().div_(255.0)
        y = load_idx(find(args.dataset_dir, f"{prefix}-labels-idx1-ubyte")).long()
        return ((x - MEAN) / STD).unsqueeze(1).to(dev), y.to(dev)

    xtr, ytr = split("train")
    if args.train_limit:
        xtr, ytr = xtr[: args.train_limit], ytr[: args.train_limit]
    xte, yte = split("t10k")
    n_nm, m_nm = (int(v) for v in args.nm.split(":"))
    sparse_method = args.method == "bdwp"

    tri = torch.tril(torch.ones(m_nm, m_nm, dtype=torch.bool, device=dev), diagonal=-1)  # tri[i, j] = j < i

    def keep(groups):
        """groups [..., M] -> bool [..., M]: the N largest |w|, ties to the earlier index."""
        a = groups.abs()
        ai, aj = a.unsqueeze(-1), a.unsqueeze(-2)
        rank = ((aj > ai) | ((aj == ai) & tri)).sum(-1)
        return rank < n_nm

    def k_major(w):
        """The weight as C_out x K with K in (kh, kw, c_in) order."""
        return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1) if w.dim() == 4 else w

    def from_k_major(m, shape):
        if len(shape) == 4:
            return m.reshape(shape[0], shape[2], shape[3], shape[1]).permute(0, 3, 1, 2)
        return m

    class NMLayer(nn.Module):
        """A conv or linear layer whose forward uses W*mask_ff and backward-data W*mask_bp."""

        def __init__(self, mod, sparse):
            super().__init__()
            self.mod, self.sparse = mod, sparse
            if sparse:
                self.register_buffer("mask_ff", torch.ones_like(mod.weight))
                self.register_buffer("mask_bp", torch.ones_like(mod.weight))
                self.refresh()

        @torch.no_grad()
        def refresh(self):
            w = self.mod.weight
            wk = k_major(w)
            co, k = wk.shape
            ff = keep(wk.reshape(co, k // m_nm, m_nm)).reshape(co, k)
            bp = keep(wk.reshape(co // m_nm, m_nm, k).transpose(1, 2)).transpose(1, 2).reshape(co, k)
            self.mask_ff.copy_(from_k_major(ff, w.shape))
            self.mask_bp.copy_(from_k_major(bp, w.shape))

        def forward(self, x):
            if not self.sparse:
                return self.mod(x)
            w = self.mod.weight
            return NMFunction.apply(x, w, self.mod.bias, w * self.mask_ff, w * self.mask_bp, self.mod)

    class NMFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, b, w_ff, w_bp, mod):
            ctx.save_for_backward(x, w_bp)
            ctx.mod = mod
            if isinstance(mod, nn.Conv2d):
                return F.conv2d(x, w_ff, b, mod.stride, mod.padding)
            return F.linear(x, w_ff, b)

        @staticmethod
        def backward(ctx, dy):
            x, w_bp = ctx.saved_tensors
            mod = ctx.mod
            if isinstance(mod, nn.Conv2d):
                dx = dw = None
                dx, dw, db = torch.ops.aten.convolution_backward(
                    dy, x, w_bp, [mod.out_channels], mod.stride, mod.padding, mod.dilation, False, [0, 0], 1,
                    [ctx.needs_input_grad[0], True, True])
                return dx, dw, db, None, None, None
            dx = dy @ w_bp if ctx.needs_input_grad[0] else None
            return dx, dy.t() @ x, dy.sum(0), None, None, None

    def build(name):
        layers = []
        if name == "lenet5":
            layers = [nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 80), nn.ReLU(),
                      nn.Linear(80, 10)]
        elif name == "vgg-small":
            c_prev = 1
            for i, c in enumerate([32, 32, "M", 64, 64, "M", 128]):
                if c == "M":
                    layers.append(nn.MaxPool2d(2))
                    continue
                layers += [nn.Conv2d(c_prev, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
                c_prev = c
            layers += [nn.AvgPool2d(7), nn.Flatten(), nn.Linear(128, 10)]
        else:
            raise SystemExit(f"unknown model {name}")
        weights = [i for i, l in enumerate(layers) if isinstance(l, (nn.Conv2d, nn.Linear))]
        for i in weights:
            l = layers[i].to(dev)
            nn.init.normal_(l.weight, 0.0, math.sqrt(2.0 / (l.weight[0].numel())))
            nn.init.zeros_(l.bias)
            layers[i] = NMLayer(l, sparse_method and i not in (weights[0], weights[-1]))
        return nn.Sequential(*layers).to(dev)

    model = build(args.model)
    nm_layers = [l for l in model if isinstance(l, NMLayer) and l.sparse]
    decay = [l.mod.weight for l in model if isinstance(l, NMLayer)]
    decay_ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in decay_ids]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}],
                          lr=args.lr, momentum=0.9)
    n = xtr.shape[0]
    steps = (n + args.batch - 1) // args.batch
    total = steps * args.epochs
    lam = 2e-4
    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed)
    history, step = [], 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(n, device=dev, generator=gen)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        sync()
        t0 = time.perf_counter()
        for j in range(steps):
            idx = order[j * args.batch : (j + 1) * args.batch]
            x, y = xtr[idx], ytr[idx]
            lr = args.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = lr
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                for l in nm_layers:
                    w = l.mod.weight
                    w.grad.addcmul_(w, 1.0 - l.mask_ff, value=lam)
            opt.step()
            for l in nm_layers:
                l.refresh()
            loss_sum += loss.detach() * idx.numel()
            correct += (out.argmax(1) == y).sum()
            step += 1
        sync()
        secs = time.perf_counter() - t0
        model.eval()
        tl, tc = 0.0, 0
        with torch.no_grad():
            for j in range(0, xte.shape[0], 500):
                o = model(xte[j : j + 500])
                tl += F.cross_entropy(o, yte[j : j + 500], reduction="sum").item()
                tc += (o.argmax(1) == yte[j : j + 500]).sum().item()
        h = {"epoch": epoch, "train_seconds": secs, "train_loss": loss_sum.item() / n,
             "train_accuracy": correct.item() / n, "test_loss": tl / xte.shape[0], "test_accuracy": tc / xte.shape[0]}
        history.append(h)
        print(f"epoch {epoch}: train loss {h['train_loss']:.4f}, test accuracy {100 * h['test_accuracy']:.2f} %",
              file=sys.stderr, flush=True)
    print(json.dumps({"history": history, "test_accuracy": history[-1]["test_accuracy"],
                      "max_memory_allocated": torch.cuda.max_memory_allocated() if dev.type == "cuda" else None,
                      "max_memory_reserved": torch.cuda.max_memory_reserved() if dev.type == "cuda" else None,
                      "torch": torch.__version__}))


# ----------------------------------------------------------------------------- driver


class Sampler:
    """NVML samples of (time, power W, used memory bytes) every 10 ms, where NVML answers."""

    def __init__(self):
        self.ok, self.samples, self.why = False, [], ""
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv = pynvml
            self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.ok = True
        except Exception as e:  # NVML missing or refused: no power or memory figures.
            self.why = str(e)

    def used(self):
        return self.nv.nvmlDeviceGetMemoryInfo(self.h).used if self.ok else None

    def start(self):
        self.samples, self.stop_flag = [], False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag:
            t = time.time()
            try:
                p = self.nv.nvmlDeviceGetPowerUsage(self.h) / 1000.0
            except Exception:
                p = None
            try:
                m = self.used()
            except Exception:
                m = None
            self.samples.append((t, p, m))
            time.sleep(0.01)

    def stop(self):
        self.stop_flag = True
        self.thread.join()


def run_one(cmd, sampler, env):
    """Runs cmd, timestamping its 'epoch N:' stderr lines; returns (json, epoch_times, samples, base)."""
    base = sampler.used() if sampler.ok else None
    if sampler.ok:
        sampler.start()
    t_start = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    epochs, errlines = {}, []

    def read_err():
        for line in p.stderr:
            errlines.append(line.rstrip())
            m = re.match(r"epoch (\d+):", line)
            if m:
                epochs[int(m.group(1))] = time.time()

    th = threading.Thread(target=read_err, daemon=True)
    th.start()
    out = p.stdout.read()
    p.wait()
    th.join()
    wall = time.time() - t_start
    if sampler.ok:
        sampler.stop()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n" + "\n".join(errlines[-20:]))
    start = out.find("{")
    return json.loads(out[start:]), epochs, list(sampler.samples) if sampler.ok else [], base, wall


def measure(kind, cmd, sampler, env, epochs, n, batch):
    rep, t_ep, samples, base, wall = run_one(cmd, sampler, env)
    hist = rep["history"]
    steps = (n + batch - 1) // batch
    timed = hist[1:] if len(hist) > 1 else hist
    secs = sum(h["train_seconds"] for h in timed)
    iters = steps * len(timed)
    r = {"impl": kind, "command": " ".join(cmd), "wall_seconds": wall,
         "time_per_iter_ms": 1000.0 * secs / iters, "images_per_second": n * len(timed) / secs,
         "test_accuracy": rep["test_accuracy"], "epochs_timed": len(timed),
         "epoch_train_seconds": [h["train_seconds"] for h in hist]}
    for k in ("max_memory_allocated", "max_memory_reserved", "torch"):
        if k in rep:
            r[k] = rep[k]
    if samples and base is not None:
        used = [s[2] for s in samples if s[2] is not None]
        r["peak_memory_mib"] = (max(used) - base) / 2**20 if used else None
        lo, hi = t_ep.get(1), t_ep.get(epochs)
        if len(hist) == 1:
            lo, hi = samples[0][0], t_ep.get(1)
        pw = [s[1] for s in samples if s[1] is not None and lo is not None and hi is not None and lo <= s[0] <= hi]
        if pw:
            r["mean_power_w"] = sum(pw) / len(pw)
            r["power_samples"] = len(pw)
            r["energy_per_iter_mj"] = r["mean_power_w"] * r["time_per_iter_ms"]  # W * ms = mJ
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--satkit", help="the satkit binary built with --features cuda")
    ap.add_argument("--dataset-dir", required=True)
    ap.add_argument("--out", default="gpu_bench.json")
    ap.add_argument("--models", default="lenet5,vgg-small")
    ap.add_argument("--methods", default="dense,bdwp")
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--method", default="bdwp")
    ap.add_argument("--nm", default="2:8")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-limit", type=int, default=0, help="train on the first N images only (0: all)")
    ap.add_argument("--torch-device", default="cuda", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if not args.satkit:
        raise SystemExit("--satkit BIN is required")
    sampler = Sampler()
    env = dict(os.environ)
    n = args.train_limit or 60000
    results = {"nm": args.nm, "batch": args.batch, "epochs": args.epochs, "nvml": sampler.ok or sampler.why,
               "argv": sys.argv, "runs": []}
    if sampler.ok:
        results["gpu"] = sampler.nv.nvmlDeviceGetName(sampler.h)
        results["driver"] = sampler.nv.nvmlSystemGetDriverVersion()
    for model in args.models.split(","):
        for method in args.methods.split(","):
            common = ["--model", model, "--method", method, "--nm", args.nm, "--epochs", str(args.epochs),
                      "--batch", str(args.batch), "--lr", str(args.lr), "--seed", str(args.seed),
                      "--dataset-dir", args.dataset_dir] + (["--train-limit", str(args.train_limit)] if args.train_limit else [])
            ours = [args.satkit, "train", "--device", "cuda", "--json", "--out", f"/tmp/satkit-bench-{model}-{method}"]
            torch_cmd = [sys.executable, os.path.abspath(__file__), "--worker"]
            pair = {}
            for kind, cmd in (("satkit", ours + common), ("pytorch", torch_cmd + common)):
                r = measure(kind, cmd, sampler, env, args.epochs, n, args.batch)
                r.update({"model": model, "method": method})
                results["runs"].append(r)
                pair[kind] = r
                print(f"{model:10s} {method:6s} {kind:8s} {r['images_per_second']:10.0f} img/s "
                      f"{r['time_per_iter_ms']:7.3f} ms/iter  peak {r.get('peak_memory_mib', float('nan')):8.1f} MiB  "
                      f"{r.get('energy_per_iter_mj', float('nan')):7.2f} mJ/iter  acc {100 * r['test_accuracy']:.2f} %",
                      flush=True)
            results.setdefault("ratios", []).append({
                "model": model, "method": method,
                "throughput_ratio_satkit_over_pytorch": pair["satkit"]["images_per_second"] / pair["pytorch"]["images_per_second"]})
            print(f"{model:10s} {method:6s} ratio satkit/pytorch = "
                  f"{results['ratios'][-1]['throughput_ratio_satkit_over_pytorch']:.2f}", flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
