#!/usr/bin/env python3
"""Makes the small committed Fashion-MNIST subset in train/data/fashion-mnist-subset/ from the
Debian package files (apt-get install dataset-fashion-mnist): the first 2,000 training and
the first 500 test images with their labels, as IDX gz files. Deterministic output
(gzip mtime 0). Usage: python3 train/scripts/make_subset.py [SRC_DIR] [DST_DIR]"""
import gzip, struct, sys, os

src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "data", "fashion-mnist-subset")
os.makedirs(dst, exist_ok=True)
for prefix, count in (("train", 2000), ("t10k", 500)):
    for kind, ndims in (("images-idx3", 3), ("labels-idx1", 1)):
        name = f"{prefix}-{kind}-ubyte.gz"
        data = gzip.open(os.path.join(src, name)).read()
        header = 4 + 4 * ndims
        dims = list(struct.unpack(">" + "I" * ndims, data[4:header]))
        per = 1
        for d in dims[1:]:
            per *= d
        dims[0] = count
        out = data[:4] + struct.pack(">" + "I" * ndims, *dims) + data[header:header + count * per]
        with open(os.path.join(dst, name), "wb") as f:
            f.write(gzip.compress(out, mtime=0))
        print(name, dims)
