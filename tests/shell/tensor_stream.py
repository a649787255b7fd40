"""Tensor streams (formats/tensor-stream.md) from Python, with msgpack and numpy.

A stream is msgpack maps, one per record; a tensor is {dtype, shape, data}
with data the raw little-endian bytes in C order. numpy arrays map to
tensors, everything else to itself.
"""
import sys

import msgpack
import numpy as np


def write(records, out=sys.stdout.buffer):
    for r in records:
        out.write(msgpack.packb({k: {"dtype": v.dtype.name, "shape": list(v.shape),
                                     "data": np.ascontiguousarray(v, v.dtype.newbyteorder("<")).tobytes()}
                                 if isinstance(v, np.ndarray) else v for k, v in r.items()}))


def read(inp=sys.stdin.buffer):
    for r in msgpack.Unpacker(inp, raw=False):
        yield {k: np.frombuffer(v["data"], np.dtype(v["dtype"]).newbyteorder("<")).reshape(v["shape"])
               if isinstance(v, dict) and set(v) == {"dtype", "shape", "data"} else v for k, v in r.items()}


if __name__ == "__main__":  # python3 tensor_stream.py < x.ts: one line per record
    for r in read():
        print({k: f"{v.dtype}{list(v.shape)}" if isinstance(v, np.ndarray) else v for k, v in r.items()})
