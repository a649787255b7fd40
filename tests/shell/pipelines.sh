# The Makefile fragments in pipelines/, run as a user's Makefile would.
source "$(dirname "$0")/lib.sh"
G=$KNND_SHARED/golden/clip
if [ ! -f "$G/openai.safetensors" ]; then
	skip embed_mk "no golden CLIP at $G"
	exit 0
fi
mkdir -p photos/sub
cp "$G"/images/*.png photos/
mv photos/tall_17x45.png photos/sub/
cat > Makefile <<EOM
KNND_BIN := $KNND_BIN
IMAGES_DIR := photos
CLIP_MODEL := $G/openai.safetensors
OUT := work
include $KNND_ROOT/pipelines/embed.mk
EOM
check embed_mk_builds make -s work/images.emb.ts
check embed_mk_has_every_image test "$(ts-cat -k id work/images.emb.ts | wc -l)" = 6
check embed_mk_has_emb sh -c "ts-cat -k emb work/images.emb.ts | grep -c '\"shape\":\[32\]' | grep -qx 6"
check embed_mk_no_temp_left test ! -e work/images.emb.ts.tmp
check embed_mk_up_to_date sh -c "make -s work/images.emb.ts && test -z \"\$(make -s -n work/images.emb.ts)\""
printf 'not a png' > photos/broken.png
check_fails embed_mk_fails_on_bad_image 'img-read: .*broken.png' make -s work/images.emb.ts
check embed_mk_keeps_old_output_on_failure test "$(ts-cat -k id work/images.emb.ts | wc -l)" = 6
check embed_mk_no_temp_after_failure test ! -e work/images.emb.ts.tmp
