#!/usr/bin/env python3
"""CPU training throughput of lenet5: PyTorch against `satkit train`, measured in one run.

Trains the same model (satkit's `lenet5`: conv5x5 1->8 pad 2, ReLU, maxpool 2, conv5x5 8->16,
ReLU, maxpool 2, fc 400-120-80-10) with the same batch size, optimizer (SGD, momentum 0.9,
weight decay 5e-4) and data (Fashion-MNIST from the Debian package) in PyTorch on the CPU,
then runs `satkit train --json` for dense and BDWP 2:8 and prints training images per
second for each (evaluation excluded on both sides).

PyTorch is not a project dependency: run this with a throwaway virtual environment, e.g.
    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch
    /work/venv-torch/bin/python train/scripts/bench_pytorch.py --satkit target/release/satkit
"""
import argparse, gzip, json, os, struct, subprocess, sys, tempfile, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    data = gzip.open(path).read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims])
    t = torch.frombuffer(bytearray(data[4 + 4 * ndims:]), dtype=torch.uint8)
    return t.reshape(dims)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, padding=2)
        self.conv2 = nn.Conv2d(8, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 80)
        self.fc3 = nn.Linear(80, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def torch_images_per_second(images, labels, batch, epochs, seed):
    torch.manual_seed(seed)
    model = LeNet5()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x_all = ((images.float() / 255.0 - 0.2860) / 0.3530).unsqueeze(1)
    y_all = labels.long()
    n = x_all.shape[0]
    seen, train_time = 0, 0.0
    for _ in range(epochs):
        perm = torch.randperm(n)
        loss_sum = 0.0
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            loss.backward()
            opt.step()
            seen += idx.shape[0]
            loss_sum += loss.detach() * idx.shape[0]
        train_time += time.perf_counter() - t0
    return seen / train_time, float(loss_sum) / n


def satkit_images_per_second(binary, dataset_dir, method, batch, epochs, limit):
    with tempfile.TemporaryDirectory() as out:
        cmd = [binary, "train", "--model", "lenet5", "--method", method, "--nm", "2:8", "--batch", str(batch),
               "--epochs", str(epochs), "--dataset-dir", dataset_dir, "--out", out, "--json"]
        if limit:
            cmd += ["--train-limit", str(limit)]
        report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return report["images_per_second"], report["train_loss"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--satkit", default="target/release/satkit", help="path to the satkit binary")
    ap.add_argument("--dataset-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=0, help="first N training images (0 = all)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch intra-op threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    images = read_idx(os.path.join(args.dataset_dir, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.dataset_dir, "train-labels-idx1-ubyte.gz"))
    if args.train_limit:
        images, labels = images[:args.train_limit], labels[:args.train_limit]

    rows = []
    ips, loss = torch_images_per_second(images, labels, args.batch, args.epochs, args.seed)
    rows.append((f"PyTorch {torch.__version__} dense ({args.threads} threads)", ips, loss))
    for method in ("dense", "bdwp"):
        ips, loss = satkit_images_per_second(args.satkit, args.dataset_dir, method, args.batch, args.epochs, args.train_limit)
        rows.append((f"satkit {method}" + (" 2:8" if method == "bdwp" else ""), ips, loss))
    print(f"lenet5, batch {args.batch}, {len(labels)} images x {args.epochs} epoch(s), {os.cpu_count()} CPUs")
    print("| trainer | training images/s | last epoch mean loss |\n|---|---|---|")
    for name, ips, loss in rows:
        print(f"| {name} | {ips:.0f} | {loss:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
