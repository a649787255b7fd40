# Streams written by Python (msgpack + numpy, through tensor_stream.py) pass
# through our tools unchanged, and streams our tools write read back in Python.
source "$(dirname "$0")/lib.sh"
if ! "$PY" -c 'import msgpack, numpy' 2>/dev/null; then
	skip python_interop "$PY lacks msgpack or numpy (python3-msgpack, python3-numpy)"
	exit 0
fi
export PYTHONPATH=$KNND_ROOT/tests/shell

# The records both directions are checked against: every numpy dtype we
# support (bfloat16 has no numpy dtype), with extremes and non-finite floats.
cat >records.py <<'EOF'
import numpy as np
def records():
    out = []
    for i, dt in enumerate(["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32",
                            "uint64", "int64", "float16", "float32", "float64"]):
        info = np.finfo(dt) if dt.startswith("float") else np.iinfo(dt) if dt != "bool" else None
        vals = [0, 1] if info is None else [info.min, info.max, 0, 1]
        if dt.startswith("float"):
            vals += [np.nan, np.inf, -np.inf, -0.0, info.tiny, 0.1]
        a = np.resize(np.array(vals, dt), 24).reshape(2, 3, 4)
        out.append({"id": f"r{i}-{dt} é", "label": i - 5, "score": i / 7, "t": a,
                    "scalar": np.array(vals[-1], dt), "empty": np.zeros((0, 3), dt),
                    "big": 2**64 - 1, "neg": -2**63, "none": None, "ok": True,
                    "tags": ["x", [1, {"k": 2.5}]], "raw": b"\x00\xff"})
    return out
def same(a, b):
    assert a.keys() == b.keys(), (a.keys(), b.keys())
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert a[k].tobytes() == b[k].tobytes(), (k, a[k], b[k])
        else:
            assert type(a[k]) is type(b[k]) and a[k] == b[k], (k, a[k], b[k])
EOF

# Python -> stream -> our tools -> Python.
"$PY" -c 'import records, tensor_stream; tensor_stream.write(records.records())' >py.ts
verify() { "$PY" -c '
import sys, records, tensor_stream
got = list(tensor_stream.read(open(sys.argv[1], "rb")))
want = records.records()
assert len(got) == len(want), len(got)
for a, b in zip(want, got): records.same(a, b)' "$1"; }
check python_reads_its_own_stream verify py.ts
ts-cat --raw py.ts >raw.ts
check raw_pass_through_reads_back verify raw.ts
check raw_pass_through_same_bytes cmp py.ts raw.ts
ts-cat --full py.ts | ts-pack >packed.ts
check json_round_trip_reads_back verify packed.ts
check json_round_trip_same_bytes cmp py.ts packed.ts
ts-head -n 100 py.ts | ts-cat --raw -k id,t,label,score >some.ts
check keys_subset_reads_back "$PY" -c '
import records, tensor_stream
got = list(tensor_stream.read(open("some.ts", "rb")))
for a, b in zip(records.records(), got):
    records.same({k: a[k] for k in ("id", "label", "score", "t")}, b)'

# Our tools -> Python: a stream made by ts-pack from JSON.
cat >ours.jsonl <<'EOF'
{"id":"a","emb":{"dtype":"float32","shape":[2,2],"data":[0.5,-1.0,"inf",1e-45]},"label":3}
{"id":"b\n\u00e9","image":{"dtype":"uint8","shape":[1,2,3],"data":[0,1,2,253,254,255]},"x":-0.25,"n":[1,"two",{"three":3.0}]}
EOF
ts-pack ours.jsonl >ours.ts
check python_reads_ours "$PY" -c '
import numpy as np, tensor_stream
a, b = tensor_stream.read(open("ours.ts", "rb"))
assert a["id"] == "a" and a["label"] == 3 and list(a) == ["id", "emb", "label"]
assert a["emb"].dtype == np.float32 and a["emb"].shape == (2, 2)
assert a["emb"].tobytes() == np.array([[0.5, -1], [np.inf, 1e-45]], np.float32).tobytes()
assert b["id"] == "b\n\u00e9" and b["x"] == -0.25 and b["n"] == [1, "two", {"three": 3.0}]
assert b["image"].dtype == np.uint8 and b["image"].shape == (1, 2, 3)
assert b["image"].tobytes() == bytes([0, 1, 2, 253, 254, 255])'
check python_sees_same_summary test "$(ts-cat ours.ts | sed -n 1p)" = \
	'{"id":"a","emb":{"dtype":"float32","shape":[2,2],"min":-1.0,"max":"inf","mean":"inf"},"label":3}'
