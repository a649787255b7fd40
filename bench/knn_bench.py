#!/usr/bin/python3
"""FAISS side of bench/knn_bench.sh (issue 5): data, ground truth, python3-faiss
timings, and the recall of knn-query's output.

  knn_bench.py gen DIR N [streams]
                                  clustered unit vectors: base.npy [N,512], the
                                  image-like and text-like queries, one query
                                  alone (q_one: knn-query's start-up), and with
                                  "streams" the same as tensor streams (*.ts)
  knn_bench.py exact DIR T        exact search with T threads: gt_*.npy and
                                  one "exact" result line per query kind
  knn_bench.py faiss DIR FACTORY K_FACTOR NPROBES THREADS
                                  build FACTORY, re-ranked exactly over
                                  k * K_FACTOR candidates (IndexRefineFlat),
                                  then one "result" line per thread count,
                                  query kind and nprobe
  knn_bench.py recall DIR KIND OUT.ts
                                  recall@10 of knn-query's knn_ids in OUT.ts

Result lines, read by knn_bench.sh:
  build  faiss SECONDS BASE_BYTES_PER_VEC REFINE_BYTES_PER_VEC
  exact  THREADS KIND QPS
  result faiss THREADS KIND NPROBE RECALL QPS
  recall KIND RECALL
"""
import sys
import time

import msgpack
import numpy as np

D = 512
CLUSTERS = 1000
QUERIES = 1000
K = 10
NOISE = 1.0      # norm of a vector's offset from its cluster centre (centre norm 1)
GAP = 0.8        # norm of the constant text offset (the modality gap)
KINDS = ("image", "text")


def unit(a):
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def samples(rng, centres, n):
    """n vectors around centres picked at random, in chunks to bound memory."""
    out = np.empty((n, D), np.float32)
    for s in range(0, n, 100000):
        e = min(n, s + 100000)
        c = centres[rng.integers(0, len(centres), e - s)]
        out[s:e] = unit(c + rng.standard_normal((e - s, D), np.float32) * (NOISE / np.sqrt(D)))
    return out


def tensor(a):
    return {"dtype": "float32", "shape": list(a.shape), "data": a.astype("<f4").tobytes()}


def write_stream(path, vecs):
    with open(path, "wb") as f:
        pack = msgpack.Packer(use_bin_type=True).pack
        for i, v in enumerate(vecs):
            f.write(pack({"id": "%08d" % i, "emb": tensor(v)}))


def gen(d, n, streams):
    rng = np.random.default_rng(5)
    centres = unit(rng.standard_normal((CLUSTERS, D), np.float32))
    base = samples(rng, centres, n)
    image = samples(rng, centres, QUERIES)
    one = image[:1]
    gap = unit(rng.standard_normal((1, D), np.float32)) * GAP
    text = unit(samples(rng, centres, QUERIES) + gap)
    for name, a in (("base", base), ("q_image", image), ("q_text", text), ("q_one", one)):
        np.save(f"{d}/{name}.npy", a)
        if streams:
            write_stream(f"{d}/{name}.ts", a)


def queries(d):
    return {k: np.load(f"{d}/q_{k}.npy") for k in KINDS}


def timed_search(index, q):
    t = time.perf_counter()
    _, ids = index.search(q, K)
    return ids, len(q) / (time.perf_counter() - t)


def recall(ids, gt):
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, gt)]))


def exact(d, threads):
    import faiss
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatIP(D)
    index.add(np.load(f"{d}/base.npy", mmap_mode="r"))
    for kind, q in queries(d).items():
        ids, qps = timed_search(index, q)
        np.save(f"{d}/gt_{kind}.npy", ids)
        print(f"exact {threads} {kind} {qps:.1f}", flush=True)


def serialized_bytes(faiss, index):
    return len(faiss.serialize_index(index))


def run_faiss(d, factory, k_factor, nprobes, threads):
    """FACTORY finds candidates; IndexRefineFlat rescores k * K_FACTOR of them
    exactly, as knn-query's --refine does over its stored vectors."""
    import faiss
    base = np.load(f"{d}/base.npy")
    n = len(base)
    ntrain = min(n, int(factory_lists(factory) * 50) or n)
    faiss.omp_set_num_threads(max(threads))
    index = faiss.index_factory(D, factory, faiss.METRIC_INNER_PRODUCT)
    t = time.perf_counter()
    index.train(base[np.random.default_rng(1).choice(n, ntrain, replace=False)])
    index.add(base)
    seconds = time.perf_counter() - t
    base_bytes = serialized_bytes(faiss, index)
    searched = index
    if k_factor > 0:
        searched = faiss.IndexRefineFlat(index, faiss.swig_ptr(base))
        searched.k_factor = k_factor
    print(f"build faiss {seconds:.1f} {base_bytes / n:.1f} {4 * D if k_factor > 0 else 0:.1f}", flush=True)
    gt = {k: np.load(f"{d}/gt_{k}.npy") for k in KINDS}
    params = faiss.ParameterSpace()
    for t_count in threads:
        faiss.omp_set_num_threads(t_count)
        for kind, q in queries(d).items():
            for p in nprobes:
                params.set_index_parameter(index, "nprobe", p)
                ids, qps = timed_search(searched, q)
                print(f"result faiss {t_count} {kind} {p} {recall(ids, gt[kind]):.4f} {qps:.1f}", flush=True)


def factory_lists(factory):
    for part in factory.split(","):
        if part.startswith("IVF") and part[3:].isdigit():
            return int(part[3:])
    return 0


def ours_recall(d, kind, out):
    gt = np.load(f"{d}/gt_{kind}.npy")
    ids = []
    with open(out, "rb") as f:
        for rec in msgpack.Unpacker(f, raw=False, max_buffer_size=1 << 30):
            v = rec["knn_ids"]
            if isinstance(v, dict):   # a tensor of row numbers
                ids.append(np.frombuffer(v["data"], dtype=np.dtype(v["dtype"]).newbyteorder("<")).tolist())
            else:                     # a list of the neighbours' ids ("%08d" = row)
                ids.append([int(x) for x in v])
    if len(ids) != len(gt):
        sys.exit(f"knn_bench.py: {out}: {len(ids)} records, expected {len(gt)}")
    print(f"recall {kind} {recall(ids, gt):.4f}")


def main(a):
    if a[0] == "gen":
        gen(a[1], int(a[2]), a[3:] == ["streams"])
    elif a[0] == "exact":
        exact(a[1], int(a[2]))
    elif a[0] == "faiss":
        run_faiss(a[1], a[2], int(a[3]), [int(x) for x in a[4].split(",")], [int(x) for x in a[5].split(",")])
    elif a[0] == "recall":
        ours_recall(a[1], a[2], a[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
