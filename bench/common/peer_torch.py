"""What the PyTorch sides of the benchmarks share (bench/*_torch.py, which
find this folder by putting it on sys.path): timing a case, torch's profiler
table, and the little of safetensors the weights files need."""

import json
import os
import statistics
import struct
import time

import numpy as np
import torch


def time_case(fn, warmup, runs, sync=lambda: None):
    """Runs fn `warmup` times untimed, then `runs` times timed; returns the
    best and the median ms. sync waits for a device that runs ahead of the
    host, before and after each timed run."""
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(runs):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ms.append(1e3 * (time.perf_counter() - t0))
    return min(ms), statistics.median(ms)


def print_profile(fn, runs, row_limit):
    """Runs fn `runs` times under torch's profiler and prints its table of
    operators by their own time, as "#" lines."""
    with torch.autograd.profiler.profile() as prof:
        for _ in range(runs):
            fn()
    for line in prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit).splitlines():
        print("#   " + line)


def write_safetensors(path, tensors, metadata):
    """float32 tensors, written to path.tmp and moved into place."""
    header, offset = {"__metadata__": metadata}, 0
    for name, t in tensors.items():
        n = t.numel() * 4
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for t in tensors.values():
            f.write(t.detach().contiguous().numpy().astype("<f4").tobytes())
    os.replace(path + ".tmp", path)


def read_safetensors(path):
    """The tensors (float32 only) and the metadata of a file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", name
        lo, hi = e["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(data[lo:hi], dtype="<f4").copy()).reshape(e["shape"])
    return tensors, meta
