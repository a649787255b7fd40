#!/usr/bin/env bash
# emoji-read on Debian's Noto Color Emoji font and Unicode's emoji-test.txt:
# counts, names, pixels, glyph ids against hb-shape, the PNG bytes against
# an independent reader written here in Python, and bad inputs.
source "$(dirname "$0")/lib.sh"

FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
NAMES=/usr/share/unicode/emoji/emoji-test.txt
if [ ! -r $FONT ] || [ ! -r $NAMES ]; then
	skip emoji_read "needs $FONT (fonts-noto-color-emoji) and $NAMES (unicode-data)"
	exit 0
fi

# One line per record: id, glyph, image shape, group|subgroup|text.
summary() {
	"$PY" -c '
import sys, msgpack
for r in msgpack.Unpacker(sys.stdin.buffer, raw=False):
    print(r["id"], r["glyph"], "x".join(map(str, r["image"]["shape"])),
          "|".join((r["group"], r["subgroup"], r["text"], r["codepoints"])))'
}

emoji-read >all.ts
summary <all.ts >all.txt
want_count=$(grep -c '; fully-qualified' $NAMES)
check all_fully_qualified_resolve test "$(wc -l <all.txt)" -eq "$want_count"
check about_3655 test "$want_count" -gt 3600
# (Glyph ids depend on the font's version: they are checked against hb-shape below.)
check first_record \
	test "$(head -1 all.txt | cut -d' ' -f1,3-)" = "1f600 128x136x3 Smileys & Emotion|face-smiling|grinning face|😀"
check red_heart test "$(grep '^2764-fe0f ' all.txt | cut -d' ' -f1,3-)" = "2764-fe0f 128x136x3 Smileys & Emotion|heart|red heart|❤️"
check flag_us grep -q '^1f1fa-1f1f8 [0-9]* 128x136x3 Flags|country-flag|flag: United States|' all.txt
check flag_england grep -q '^1f3f4-e0067-e0062-e0065-e006e-e0067-e007f .*|flag: England|' all.txt
check keycap_hash grep -q '^23-fe0f-20e3 .*|keycap: #|#️⃣$' all.txt
check zwj_family grep -q '^1f468-200d-1f469-200d-1f467-200d-1f466 .*|family: man, woman, girl, boy|' all.txt
check skin_tone grep -q '^1f44b-1f3fd .*|waving hand: medium skin tone|' all.txt
check ids_unique test "$(cut -d' ' -f1 all.txt | sort -u | wc -l)" -eq "$want_count"
check ids_are_file_names test -z "$(cut -d' ' -f1 all.txt | grep -v '^[0-9a-f][0-9a-f-]*$')"
check file_order test "$(cut -d' ' -f1 all.txt | sed -n '1p;2p;$p' | tr '\n' ' ')" = "1f600 1f603 1f3f4-e0067-e0062-e0077-e006c-e0073-e007f "

# Pixels: the red heart's centre is red; every sticker has some non-white ink.
pixels() {
	"$PY" -c '
import sys, msgpack, numpy as np
for r in msgpack.Unpacker(sys.stdin.buffer, raw=False):
    im = r["image"]; a = np.frombuffer(im["data"], np.uint8).reshape(im["shape"])
    h, w = a.shape[:2]
    print(r["id"], *a[h // 2, w // 2], int((a[..., :3] < 250).any(axis=-1).sum()))'
}
pixels <all.ts >pixels.txt
check red_heart_centre_is_red test "$(awk '$1 == "2764-fe0f" { print ($2 > 200 && $3 < 80 && $4 < 80) }' pixels.txt)" = 1
check every_sticker_has_ink test "$(awk '$5 >= 100' pixels.txt | wc -l)" -eq "$want_count"

# Glyph ids agree with HarfBuzz for a sample of every kind of sequence.
samples='1f600 2764-fe0f 1f468-200d-1f469-200d-1f467-200d-1f466 23-fe0f-20e3 2a-fe0f-20e3 1f1fa-1f1f8
1f1ef-1f1f5 1f1e6-1f1e8 1f3f4-e0067-e0062-e0065-e006e-e0067-e007f 1f44b-1f3fd 1f3f3-fe0f-200d-1f308
1f9d1-1f3fb-200d-1f91d-200d-1f9d1-1f3ff 1f441-fe0f-200d-1f5e8-fe0f 263a-fe0f 1faf6-1f3fb
1f469-1f3fe-200d-2764-fe0f-200d-1f48b-200d-1f468-1f3fb 1f6b5-1f3ff-200d-2640-fe0f 1f415-200d-1f9ba
1f43b-200d-2744-fe0f 1f9d4-1f3fc-200d-2642-fe0f'
if command -v hb-shape >/dev/null; then
	for id in $samples; do
		"$PY" -c 'import sys; print("".join(chr(int(c, 16)) for c in sys.argv[1].split("-")))' $id
	done >samples.utf8
	hb-shape --no-glyph-names --no-positions --font-file=$FONT --text-file=samples.utf8 |
		sed 's/^\[\([0-9]*\)=0\]$/\1/' >hb.txt
	for id in $samples; do grep "^$id " all.txt | cut -d' ' -f2; done >ours.txt
	check glyphs_agree_with_hb_shape cmp hb.txt ours.txt
	check twenty_samples test "$(wc -l <hb.txt)" -eq 20
else
	skip glyphs_agree_with_hb_shape "hb-shape (libharfbuzz-bin) is not installed"
fi

# The PNG of 1f600 read out of the font by a separate reader (CBLC index
# format 1, image format 17, as Noto Color Emoji has them), through img-read.
"$PY" - $FONT "$(head -1 all.txt | cut -d' ' -f2)" >1f600.png <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read(); glyph = int(sys.argv[2])
tables = {d[12 + 16 * i:16 + 16 * i]: struct.unpack(">II", d[20 + 16 * i:28 + 16 * i])
          for i in range(struct.unpack(">H", d[4:6])[0])}
cblc, cbdt = tables[b"CBLC"][0], tables[b"CBDT"][0]
array, nsub = struct.unpack(">I4xI", d[cblc + 8:cblc + 20])
start, end = struct.unpack(">HH", d[cblc + 48:cblc + 52])
for i in range(nsub):
    first, last, add = struct.unpack(">HHI", d[cblc + array + 8 * i:cblc + array + 8 * i + 8])
    if first <= glyph <= last:
        ist = cblc + array + add
        fmt, img, base = struct.unpack(">HHI", d[ist:ist + 8])
        assert (fmt, img) == (1, 17)
        off = struct.unpack(">I", d[ist + 8 + 4 * (glyph - first):ist + 12 + 4 * (glyph - first)])[0]
        at = cbdt + base + off + 5
        n = struct.unpack(">I", d[at:at + 4])[0]
        sys.stdout.buffer.write(d[at + 4:at + 4 + n])
PY
same_image() {
	"$PY" -c '
import sys, msgpack
a, b = (next(iter(msgpack.Unpacker(open(p, "rb"), raw=False)))["image"] for p in sys.argv[1:])
sys.exit(not (a["shape"] == b["shape"] and a["data"] == b["data"]))' "$@"
}
emoji-read --keep-alpha -n 1 >1f600-alpha.ts
img-read --keep-alpha 1f600.png >1f600-img-read.ts
check png_is_136x128 test "$("$PY" -c 'import sys, struct; d = open(sys.argv[1], "rb").read(24); print(d[:8] == b"\x89PNG\r\n\x1a\n", *struct.unpack(">II", d[16:24]))' 1f600.png)" = "True 136 128"
check keep_alpha_is_img_read same_image 1f600-alpha.ts 1f600-img-read.ts
emoji-read -n 1 >1f600.ts
img-read 1f600.png >1f600-white.ts
check on_white_is_img_read same_image 1f600.ts 1f600-white.ts
check keep_alpha_shape test "$(summary <1f600-alpha.ts | cut -d' ' -f3)" = 128x136x4

# Options.
check count_option test "$(emoji-read -n 5 | summary | wc -l)" -eq 5
check size_32 test "$(emoji-read --size 32 -n 2 | summary | cut -d' ' -f3 | sort -u)" = 32x32x3
check size_32_alpha test "$(emoji-read --size 32 --keep-alpha -n 2 | summary | cut -d' ' -f3 | sort -u)" = 32x32x4
check size_keeps_red_heart test "$(emoji-read --size 32 --group 'Smileys & Emotion' | pixels | grep '^2764-fe0f ' |
	awk '{ print ($2 > 200 && $3 < 80 && $4 < 80) }')" = 1
flags_want=$(awk '/^# group:/ { g = $0 } /; fully-qualified/ && g == "# group: Flags"' $NAMES | wc -l)
check group_filter test "$(emoji-read --group Flags --size 4 | summary | wc -l)" -eq "$flags_want"
check two_groups test "$(emoji-read --group Flags --group Component --size 4 | summary | cut -d' ' -f4- | cut -d'|' -f1 | sort -u | tr '\n' ,)" = "Flags,"
# Every status, counted in two groups (the whole list would be slow under ASan).
all_want=$(awk '/^# group:/ { g = $0 } /^[0-9A-F].*;/ && (g == "# group: Flags" || g == "# group: Component")' $NAMES | wc -l)
check status_all test "$(emoji-read --status all --group Flags --group Component --size 4 | summary | wc -l)" -eq "$all_want"
check progress_on_stderr bash -c "emoji-read --progress --group Flags 2>&1 >/dev/null | grep -q '^emoji-read: $flags_want emoji written, 0 skipped$'"

# Sticker files named by id, as the man page shows.
emoji-read -n 3 | img-write --dir stickers >/dev/null
check png_dir_by_id test "$(ls stickers | tr '\n' ' ')" = "1f600.png 1f603.png 1f604.png "

# Bad inputs.
check_fails missing_font '^emoji-read: /nonexistent/font\.ttf: No such file or directory$' \
	emoji-read --font /nonexistent/font.ttf
head -c 100000 $FONT >cut.ttf
check_fails truncated_font '^emoji-read: cut\.ttf: truncated: table .* ends past the file' emoji-read --font cut.ttf
check_fails names_as_font '^emoji-read: .*emoji-test\.txt: not an OpenType font' emoji-read --font $NAMES
: >empty.ttf
check_fails empty_font '^emoji-read: empty\.ttf: empty file, not a font$' emoji-read --font empty.ttf
check_fails missing_names '^emoji-read: /nonexistent/names: No such file or directory$' \
	emoji-read --names /nonexistent/names
printf '# group: G\n# subgroup: S\n1F6G0 ; fully-qualified # x E1.0 oops\n' >bad-names.txt
check_fails corrupt_names_line '^emoji-read: bad-names\.txt:3: bad code point .1F6G0.$' emoji-read --names bad-names.txt
printf '# group: G\n# subgroup: S\n1F600 ; fully-qualified # 😀 E1.0 grinning face\n1F600 1F600 ; fully-qualified # 😀😀 E1.0 double grin\n2764 FE0F ; fully-qualified # ❤️ E0.6 red heart\n' >missing.txt
check_fails missing_glyph '^emoji-read: 1f600-1f600 \(double grin, missing\.txt line 4\): the sequence does not join into one glyph \(2 remain\)$' \
	emoji-read --names missing.txt
check skip_missing test "$(emoji-read --names missing.txt --skip-missing 2>warn.txt | summary | cut -d' ' -f1 | tr '\n' ' ')" = "1f600 2764-fe0f "
check skip_missing_warns grep -q '^emoji-read: 1f600-1f600 (double grin): .* (skipped)$' warn.txt
check_fails bad_status 'status' emoji-read --status none
check_fails bad_size "size" emoji-read --size 0
check_fails stray_argument 'unexpected argument' emoji-read foo
check closed_pipe_quiet bash -c "emoji-read 2>err | head -c 100 >/dev/null; test ! -s err"
