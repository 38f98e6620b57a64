#!/usr/bin/env python3
"""How the vector unit's pooling reads would collide in a banked buffer, for compiled programs.

Models the RTL's pooling walk (hw/src/rtl/sequencers.rs, `sat_vector_unit`): an instruction's
window elements in the simulator's order (planes, output rows, output columns, then the window
row-major), `--lanes` consecutive elements a cycle from the first. With the buffer split into
`B` banks by the low address bits, a cycle whose distinct elements put `k > 1` in one bank
would take `k` cycles. This prints, per program, the pooling read cycles and the cycles such
waits would add, for each `B` of `--banks`; with `--prefix`, also the cycles a walk would add
that takes, each cycle, the longest prefix of the next `--lanes` elements that falls on
distinct banks (pure Python: seconds per million elements). `maxpool`, `avgpool` and `maxpool_grad` read their
input this way; `avgpool_grad` reads one `dy` per window (no conflicts), and the gradients'
writes follow the reads' pattern.

The model gives exactly the co-simulation's bank profile (`satkit run --device rtl
--bank-profile`, rows `vec maxpool` and `vec maxpool_grad`, operand `a`) on the `tiny` steps
of BENCHMARKS.md ("Pooling windows on `vcu1525`'s banks"), where the RTL can be run; it
extends that measurement to `vcu1525`'s programs, which cannot be co-simulated.

Usage (numpy needed): pool_bank_conflicts.py --lanes 64 --banks 64,128,256,512 DIR/program.s ...
"""
import argparse
import collections
import re

import numpy as np

POOL = re.compile(r"vec op=(maxpool|avgpool|maxpool_grad|avgpool_grad) count=(\d+) .*?\ba=(\d+)"
                  r".*?p0=(\d+) p1=(\d+) p2=(\d+) p3=(\d+)")


def window_elements(planes, h, w, k, s, base):
    """The addresses the walk reads, in its order."""
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    plane = np.arange(planes)[:, None, None, None, None]
    oy = np.arange(oh)[None, :, None, None, None]
    ox = np.arange(ow)[None, None, :, None, None]
    ky = np.arange(k)[None, None, None, :, None]
    kx = np.arange(k)[None, None, None, None, :]
    return (base + plane * h * w + (oy * s + ky) * w + ox * s + kx).reshape(-1)


def cycles_and_waits(addresses, lanes, banks):
    """The walk's cycles, and the cycles its bank conflicts would add."""
    cycles = -(-len(addresses) // lanes)
    chunks = np.full(cycles * lanes, -1, dtype=np.int64)
    chunks[: len(addresses)] = addresses
    chunks = np.sort(chunks.reshape(cycles, lanes), axis=1)
    repeated = np.zeros_like(chunks, dtype=bool)
    repeated[:, 1:] = chunks[:, 1:] == chunks[:, :-1]
    distinct = (chunks >= 0) & ~repeated
    slot = (np.arange(cycles)[:, None] * banks + chunks % banks)[distinct]
    fullest = np.bincount(slot, minlength=cycles * banks).reshape(cycles, banks).max(axis=1)
    return cycles, int(np.clip(fullest - 1, 0, None).sum())


def prefix_walk_cycles(addresses, lanes, banks):
    """Cycles of a walk that takes, each cycle, the longest prefix of the next `lanes`
    elements whose distinct elements fall on distinct banks."""
    cycles, i, n = 0, 0, len(addresses)
    addresses = addresses.tolist()
    while i < n:
        held = {}
        j = i
        while j < n and j - i < lanes:
            bank = addresses[j] % banks
            if held.get(bank, addresses[j]) != addresses[j]:
                break
            held[bank] = addresses[j]
            j += 1
        cycles += 1
        i = j
    return cycles


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--lanes", type=int, required=True, help="vector.lanes")
    args.add_argument("--banks", required=True, help="bank counts, comma-separated")
    args.add_argument("--prefix", action="store_true", help="also count the prefix walk's cycles")
    args.add_argument("programs", nargs="+", help="program.s files (satkit compile)")
    a = args.parse_args()
    banks = [int(b) for b in a.banks.split(",")]
    for program in a.programs:
        pools = collections.Counter()
        with open(program) as text:
            for line in text:
                m = POOL.search(line)
                if m and m.group(1) != "avgpool_grad":
                    pools[tuple(int(x) for x in m.groups()[1:])] += 1
        cycles, waits, prefix = 0, [0] * len(banks), [0] * len(banks)
        for (planes, base, h, w, k, s), repeats in pools.items():
            addresses = window_elements(planes, h, w, k, s, base)
            for i, b in enumerate(banks):
                c, extra = cycles_and_waits(addresses, a.lanes, b)
                waits[i] += repeats * extra
                if a.prefix:
                    prefix[i] += repeats * (prefix_walk_cycles(addresses, a.lanes, b) - c)
            cycles += repeats * c

        def columns(added):
            return "  ".join(f"B={b}: +{x} ({100 * x / max(cycles, 1):.1f} %)" for b, x in zip(banks, added))

        print(f"{program}: {cycles} pooling read cycles; added by waiting for conflicts: {columns(waits)}")
        if a.prefix:
            print(f"{program}: added by the prefix walk: {columns(prefix)}")


if __name__ == "__main__":
    main()
