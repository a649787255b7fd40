#!/usr/bin/env bash
# idx-read on the real Fashion-MNIST files (Debian's dataset-fashion-mnist)
# and on small IDX files made here; decoded with Debian's python3-msgpack.
source "$(dirname "$0")/lib.sh"

# One line per record: id label text shape pixel-sum.
summary() {
	"$PY" -c '
import sys, msgpack, numpy as np
for r in msgpack.Unpacker(sys.stdin.buffer, raw=False):
    im = r["image"]
    a = np.frombuffer(im["data"], im["dtype"]).reshape(im["shape"])
    print(r["id"], r.get("label", "-"), r.get("text", "-").replace(" ", "_"),
          "x".join(map(str, im["shape"])), im["dtype"], int(a.sum()))'
}

# Small files need no dataset: 3 images of 2x3, labels 0 9 3.
"$PY" - <<'EOF'
import gzip, struct
px = bytes((i * 31 + y * 7 + x) & 255 for i in range(3) for y in range(2) for x in range(3))
images = struct.pack(">BBBBIII", 0, 0, 8, 3, 3, 2, 3) + px
labels = struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([0, 9, 3])
open("small-images-idx3-ubyte", "wb").write(images)
open("small-labels-idx1-ubyte", "wb").write(labels)
gzip.open("zsmall-images-idx3-ubyte.gz", "wb").write(images)
gzip.open("zsmall-labels-idx1-ubyte.gz", "wb").write(labels)
open("two-labels", "wb").write(struct.pack(">BBBBI", 0, 0, 8, 1, 2) + bytes([1, 2]))
open("bad-magic", "wb").write(b"P5\n2" + images[4:])
EOF

small_want='small-000000 0 T-shirt/top 2x3x1 uint8 27
small-000001 9 Ankle_boot 2x3x1 uint8 213
small-000002 3 Dress 2x3x1 uint8 399'
check small_records_with_sibling_labels \
	test "$(idx-read small-images-idx3-ubyte | summary)" = "$small_want"
check small_gzip_same_as_plain \
	test "$(idx-read zsmall-images-idx3-ubyte.gz | summary | sed 's/^z//')" = "$small_want"
check small_explicit_labels_file \
	test "$(idx-read zsmall-images-idx3-ubyte.gz small-labels-idx1-ubyte | summary | sed 's/^z//')" = "$small_want"
check small_no_labels \
	test "$(idx-read --no-labels small-images-idx3-ubyte | summary | cut -d' ' -f2,3 | sort -u)" = "- -"
check small_stdin \
	test "$(idx-read - <small-images-idx3-ubyte | summary | cut -d' ' -f1)" = "stdin-000000
stdin-000001
stdin-000002"
check small_start_count \
	test "$(idx-read --start 1 -n 1 small-images-idx3-ubyte | summary)" = "small-000001 9 Ankle_boot 2x3x1 uint8 213"
check small_start_past_end \
	test "$(idx-read --start 7 small-images-idx3-ubyte | wc -c)" -eq 0
printf 'zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n' >digits.txt
check small_classes_file \
	test "$(idx-read --classes digits.txt small-images-idx3-ubyte | summary | cut -d' ' -f3 | tr '\n' ' ')" = "zero nine three "

check_fails missing_file '^idx-read: nope-images-idx3-ubyte\.gz: No such file or directory$' \
	idx-read nope-images-idx3-ubyte.gz
check_fails count_mismatch '^idx-read: two-labels: 2 labels for 3 images in small-images-idx3-ubyte$' \
	idx-read small-images-idx3-ubyte two-labels
check_fails wrong_magic '^idx-read: bad-magic: not an IDX file \(magic bytes 50 35 0a 32\)$' \
	idx-read bad-magic
check_fails labels_as_images 'small-labels-idx1-ubyte: images need 3 dimensions \(count, rows, cols\), not 1$' \
	idx-read small-labels-idx1-ubyte
head -c 25 small-images-idx3-ubyte >cut-images-idx3-ubyte
check_fails truncated_plain '^idx-read: cut-images-idx3-ubyte: truncated at image 1 of 3$' \
	idx-read cut-images-idx3-ubyte
check_fails usage_no_file 'missing IMAGES' idx-read
check_fails usage_bad_count "-n: 'x' is not an integer" idx-read -n x small-images-idx3-ubyte
check_fails usage_labels_and_no_labels 'no-labels' idx-read --no-labels small-images-idx3-ubyte two-labels
check_fails unknown_class_label 'label 9 of image 1 has no class name \(3 classes\)' \
	idx-read --classes <(printf 'a\nb\nc\n') small-images-idx3-ubyte

# The real dataset: values checked against numpy reading the same files.
D=/usr/share/datasets/fashion-mnist
if [ ! -r $D/t10k-images-idx3-ubyte.gz ] || [ ! -r $D/t10k-labels-idx1-ubyte.gz ]; then
	skip fashion_mnist "dataset-fashion-mnist is not installed ($D)"
	exit 0
fi

t10k_first='t10k-000000 9 Ankle_boot 28x28x1 uint8 33456
t10k-000001 2 Pullover 28x28x1 uint8 100994
t10k-000002 1 Trouser 28x28x1 uint8 51520
t10k-000003 1 Trouser 28x28x1 uint8 35377
t10k-000004 6 Shirt 28x28x1 uint8 62655'
check t10k_first_records \
	test "$(idx-read -n 5 $D/t10k-images-idx3-ubyte.gz | summary)" = "$t10k_first"
check t10k_tail_range_is_10_records \
	test "$(idx-read --start 9990 -n 100 $D/t10k-images-idx3-ubyte.gz | summary | cut -d' ' -f1,2 | tr '\n' ' ')" \
	= "t10k-009990 5 t10k-009991 6 t10k-009992 8 t10k-009993 9 t10k-009994 1 t10k-009995 9 t10k-009996 1 t10k-009997 8 t10k-009998 1 t10k-009999 5 "
check t10k_all_10000_records \
	test "$(idx-read $D/t10k-images-idx3-ubyte.gz | summary | wc -l)" -eq 10000

# Uncompressed copies give the same bytes.
zcat $D/t10k-images-idx3-ubyte.gz >t10k-images-idx3-ubyte
zcat $D/t10k-labels-idx1-ubyte.gz >t10k-labels-idx1-ubyte
idx-read --start 5000 -n 300 $D/t10k-images-idx3-ubyte.gz >from-gz
idx-read --start 5000 -n 300 t10k-images-idx3-ubyte >from-plain
check t10k_plain_equals_gzip cmp from-gz from-plain

# A closed pipe ends it quietly.
check closed_pipe_is_quiet \
	test -z "$(idx-read $D/t10k-images-idx3-ubyte.gz 2>&1 >/dev/null | head -c 1)"
check closed_pipe_no_message \
	bash -c "idx-read $D/t10k-images-idx3-ubyte.gz 2>err | head -c 100 >/dev/null; test ! -s err"

head -c 2000000 $D/t10k-images-idx3-ubyte.gz >cut-t10k-images-idx3-ubyte.gz
check_fails truncated_gzip '^idx-read: cut-t10k-images-idx3-ubyte\.gz: truncated at image [0-9]+ of 10000 \(unexpected end of file\)$' \
	idx-read --no-labels cut-t10k-images-idx3-ubyte.gz
check_fails real_count_mismatch 'train-labels-idx1-ubyte\.gz: 60000 labels for 10000 images' \
	idx-read $D/t10k-images-idx3-ubyte.gz $D/train-labels-idx1-ubyte.gz
