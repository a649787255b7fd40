#!/usr/bin/env bash
# img-read and img-write in real pipelines, their records, and their errors.
source "$(dirname "$0")/lib.sh"
export LC_ALL=C PY  # PY for the functions bash -c runs

# Test images, written byte by byte so they do not depend on our encoder.
$PY - <<'EOF'
import struct, zlib
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
def png(path, w, h, color, rows, extra=b''):
    raw = b''.join(b'\0' + bytes(r) for r in rows)
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, color, 0, 0, 0))
                           + extra + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
png('a.png', 2, 2, 2, [[255, 0, 0, 0, 255, 0], [0, 0, 255, 10, 20, 30]])       # RGB
png('b.png', 2, 1, 4, [[100, 255, 100, 0]])                                     # gray+alpha
png('c.png', 3, 1, 3, [[0, 1, 1]], chunk(b'PLTE', bytes([1, 2, 3, 4, 5, 6])) + chunk(b'tRNS', b'\x00'))
open('d.ppm', 'wb').write(b'P6\n1 1\n255\n' + bytes([7, 8, 9]))
EOF
cp d.ppm d_really_ppm.png

# show STREAM: one line per record, "id CxHxW first-pixels path".
show() {
	$PY -c '
import sys, msgpack
for r in msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False):
    im = r.get("image")
    desc = "%s %s" % (im["dtype"], "x".join(map(str, im["shape"]))) if im else "-"
    print(r.get("id", "-"), desc, list(im["data"][:8]) if im else "-", r.get("path", "-"))
' "$1"
}

expect() { # expect FILE LINE...: FILE's show output is exactly the lines
	local f=$1; shift
	diff <(show "$f") <(printf '%s\n' "$@")
}
export -f show expect

img-read a.png b.png c.png d.ppm >abc.ts
check read_fields expect abc.ts \
	"a uint8 2x2x3 [255, 0, 0, 0, 255, 0, 0, 0] a.png" \
	"b uint8 1x2x1 [100, 255] b.png" \
	"c uint8 1x3x3 [255, 255, 255, 4, 5, 6, 4, 5] c.png" \
	"d uint8 1x1x3 [7, 8, 9] d.ppm"

img-read --keep-alpha b.png c.png >keep.ts
check read_keep_alpha expect keep.ts \
	"b uint8 1x2x2 [100, 255, 100, 0] b.png" \
	"c uint8 1x3x4 [1, 2, 3, 0, 4, 5, 6, 255] c.png"

printf 'a.png\n\nd_really_ppm.png\n' | img-read >stdin.ts
check read_paths_from_stdin expect stdin.ts \
	"a uint8 2x2x3 [255, 0, 0, 0, 255, 0, 0, 0] a.png" \
	"d_really_ppm uint8 1x1x3 [7, 8, 9] d_really_ppm.png"

check_fails read_stream_as_paths '^img-read: stdin: line 1 holds a NUL byte' sh -c 'img-read a.png | img-read'
check_fails read_missing '^img-read: .*nope.png: No such file' img-read a.png nope.png
echo 'just text' >bad.png
check_fails read_not_an_image '^img-read: bad.png: not a PNG or PNM image' img-read bad.png
head -c 60 a.png >trunc.png
check_fails read_truncated '^img-read: trunc.png: bad PNG' img-read trunc.png
: >empty.png
check_fails read_empty '^img-read: empty.png: empty file' img-read empty.png
printf 'P5 70000 2 255\n' >huge.pgm
check_fails read_huge '^img-read: huge.pgm: .*limit' img-read huge.pgm
check_fails read_bad_option 'unrecognized|invalid' img-read --nope a.png

skip_bad() {
	img-read --skip-bad a.png bad.png b.png >skip.ts 2>skip.err &&
	expect skip.ts "a uint8 2x2x3 [255, 0, 0, 0, 255, 0, 0, 0] a.png" "b uint8 1x2x1 [100, 255] b.png" &&
	grep -q '^img-read: bad.png: not a PNG or PNM image (skipped)$' skip.err
}
check read_skip_bad skip_bad

# A closed pipe ends img-read quietly, by SIGPIPE and without a message.
closed_pipe() {
	local many=() i
	for i in $(seq 3000); do many+=(a.png); done
	img-read "${many[@]}" 2>pipe.err | head -c 1 >/dev/null
	local rc=${PIPESTATUS[0]}
	[ "$rc" -eq 0 ] || [ "$rc" -eq 141 ] && [ ! -s pipe.err ]
}
check read_closed_pipe closed_pipe
if command -v ts-head >/dev/null; then
	check read_into_ts_head bash -c 'img-read [abc].png | ts-head -n 1 >one.ts && [ "$(show one.ts | wc -l)" = 1 ]'
else
	skip read_into_ts_head "ts-head is not built yet"
fi

# Writing files: names, round trip, passthrough.
round_trip() {
	img-read a.png b.png d.ppm | img-write --dir out/sub &&
	[ "$(ls out/sub | tr '\n' ' ')" = "a.png b.png d.png " ] &&
	img-read out/sub/a.png out/sub/b.png out/sub/d.png >back.ts &&
	expect back.ts \
		"a uint8 2x2x3 [255, 0, 0, 0, 255, 0, 0, 0] out/sub/a.png" \
		"b uint8 1x2x1 [100, 255] out/sub/b.png" \
		"d uint8 1x1x3 [7, 8, 9] out/sub/d.png"
}
check write_round_trip round_trip

keep_round_trip() {
	img-write --dir kept <keep.ts && img-read --keep-alpha kept/b.png kept/c.png >keep2.ts &&
	[ "$(show keep.ts | sed 's/ [^ ]*$//')" = "$(show keep2.ts | sed 's/ [^ ]*$//')" ]
}
check write_keeps_alpha keep_round_trip

# mkstream OUT: records from Python literals, one per remaining argument.
mkstream() {
	local out=$1; shift
	$PY -c '
import sys, msgpack
def img(h, w, c, dtype="uint8", size=1):
    return {"dtype": dtype, "shape": [h, w, c], "data": bytes(h * w * c * size)}
with open(sys.argv[1], "wb") as f:
    for lit in sys.argv[2:]:
        f.write(msgpack.packb(eval(lit), use_bin_type=True))
' "$out" "$@"
}

mkstream named.ts '{"id": "x/y", "image": img(1,1,1)}' '{"id": ".hidden", "image": img(1,1,2)}' \
	'{"path": "p/q.jpg", "image": img(1,1,3)}' '{"image": img(1,1,4)}' '{"id": 7, "image": img(2,2,1)}'
names() {
	img-write --dir names named.ts >stdout.txt && [ ! -s stdout.txt ] &&
	[ "$(cd names && ls | tr '\n' ' ')" = "000003.png 7.png _hidden.png q.png x_y.png " ]
}
check write_names names

passthrough() {
	img-read a.png b.png | img-write --dir pt --passthrough >pt.ts &&
	expect pt.ts \
		"a uint8 2x2x3 [255, 0, 0, 0, 255, 0, 0, 0] pt/a.png" \
		"b uint8 1x2x1 [100, 255] pt/b.png" &&
	[ -f pt/a.png ] && [ -f pt/b.png ]
}
check write_passthrough passthrough
check write_max bash -c 'img-read a.png b.png c.png | img-write --dir mx --max 2 && [ "$(ls mx | wc -l)" = 2 ]'

# A bad record stops img-write with a message naming it, after the good ones,
# and leaves no partial or temporary file behind.
mkstream bad.ts '{"id": "good", "image": img(2,2,3)}' '{"id": "bad", "image": img(2,2,3, "float32", 4)}'
check_fails write_float_image '^img-write: record 1: .*float32 \[2,2,3\]' img-write --dir fail bad.ts
check write_no_partial_file bash -c '[ "$(ls -A fail)" = good.png ]'
mkstream rank.ts '{"id": "flat", "image": {"dtype": "uint8", "shape": [2, 2], "data": bytes(4)}}'
check_fails write_wrong_rank '^img-write: record 0: .*uint8 \[2,2\], expected uint8 \[H,W,C\]' img-write --dir fail rank.ts
mkstream noimage.ts '{"id": "none"}'
check_fails write_no_image "^img-write: record 0: no 'image' field" img-write --dir fail noimage.ts
check write_nothing_partial bash -c '[ "$(ls -A fail)" = good.png ]'
check_fails write_dir_is_a_file '^img-write: a.png: (cannot create directory|not a directory)' img-write --dir a.png abc.ts
check_fails write_needs_mode 'exactly one of --dir' img-write abc.ts
check_fails write_two_modes 'exactly one of --dir' img-write --dir x --sheet y.png abc.ts
check_fails write_bad_cols '^img-write: --cols' img-write --sheet s.png --cols 0 abc.ts

# Contact sheets: size from the layout (4-pixel gaps), captions, limits.
sheet_size() { # sheet_size FILE: "HxWxC"
	img-read "$1" | $PY -c 'import sys, msgpack; r = next(msgpack.Unpacker(sys.stdin.buffer, raw=False)); print("x".join(map(str, r["image"]["shape"])))'
}
export -f sheet_size
check sheet_plain bash -c 'img-read a.png b.png c.png d.ppm | img-write --sheet s.png --cols 3 --cell 32 &&
	[ "$(sheet_size s.png)" = "76x112x3" ]'
mkstream texts.ts '{"text": "one", "image": img(8,8,1)}' '{"text": "two", "label": 2, "image": img(8,8,3)}'
check sheet_default_caption bash -c 'img-write --sheet t.png --cell 16 texts.ts && [ "$(sheet_size t.png)" = "36x44x3" ]'
check sheet_int_caption bash -c 'img-write --sheet t.png --cell 16 --caption label texts.ts && [ "$(sheet_size t.png)" = "36x44x3" ]'
check sheet_no_caption bash -c "img-write --sheet t.png --cell 16 --caption '' texts.ts && [ \"\$(sheet_size t.png)\" = 24x44x3 ]"
check sheet_passthrough bash -c 'img-write --sheet t.png --passthrough texts.ts | cmp - texts.ts'
check_fails sheet_empty 'no images' img-write --sheet e.png /dev/null
check sheet_empty_leaves_nothing bash -c '[ ! -e e.png ] && ! ls e.png.tmp* 2>/dev/null'
check_fails sheet_too_large '^img-write: contact sheet .*limit' img-write --sheet big.png --cols 4096 --cell 4096 texts.ts
fm=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
if [ -r "$fm" ] && command -v idx-read >/dev/null; then
	check sheet_fashion_mnist bash -c "idx-read $fm ${fm/images-idx3/labels-idx1} | img-write --sheet fm.png --max 20 --cols 10 --cell 56 &&
		[ \"\$(sheet_size fm.png)\" = 148x604x3 ]"
else
	skip sheet_fashion_mnist "needs idx-read and $fm"
fi
check no_temp_files_left bash -c '! find . -name "*.tmp.*" | grep -q .'

check help_read bash -c 'img-read --help | grep -q "^Usage: img-read"'
check help_write bash -c 'img-write --help | grep -q "^Usage: img-write"'
check version_read bash -c 'img-read --version | grep -q knnd'
