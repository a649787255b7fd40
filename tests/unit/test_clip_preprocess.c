/* CLIP preprocessing and the Pillow-exact resampler under it.
 *
 * The golden pixels of ../shared/golden/clip must come out exactly (the
 * README allows 1e-5; one level is 0.015). Beyond them, Pillow itself is the
 * oracle: a Python script (below) resizes random images of every mode with
 * every filter, runs CLIP's whole preprocessing on raw images and on PNG
 * files of each colour type, and streams its results here; every case must
 * match to the byte (the float pixels to the bit). Skipped where
 * /usr/bin/python3 has no Pillow. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tool.h"
#include "image/clip_preprocess.h"
#include "image/image.h"
#include "image/resample.h"
#include "nn/safetensors.h"
#include "test.h"

/* ---- geometry ---- */

static void test_geometry(void)
{
	/* The golden README's table, and round-half-even offsets. */
	static const int cases[][7] = {
		/* w, h, n, resized_w, resized_h, crop_x, crop_y */
		{ 32, 32, 32, 32, 32, 0, 0 }, { 64, 48, 32, 42, 32, 5, 0 },  { 17, 45, 32, 32, 84, 0, 26 },
		{ 38, 29, 32, 41, 32, 4, 0 }, { 45, 38, 32, 37, 32, 2, 0 },  { 200, 150, 32, 42, 32, 5, 0 },
		{ 3, 200, 224, 224, 14933, 0, 7354 }, { 640, 480, 224, 298, 224, 37, 0 },
		{ 500, 375, 224, 298, 224, 37, 0 }, { 1, 1, 5, 5, 5, 0, 0 }, { 29, 28, 28, 29, 28, 0, 0 },
		{ 30, 28, 28, 30, 28, 1, 0 }, { 31, 28, 28, 31, 28, 2, 0 }, { 33, 28, 28, 33, 28, 2, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const int *c = cases[i];
		struct clip_geometry g;
		CHECK(clip_geometry(c[0], c[1], c[2], &g) == 0);
		CHECK_MSG(g.resized_w == c[3] && g.resized_h == c[4] && g.crop_x == c[5] && g.crop_y == c[6],
		          "%dx%d -> %d: got %dx%d at (%d,%d)", c[0], c[1], c[2], g.resized_w, g.resized_h,
		          g.crop_x, g.crop_y);
	}
	struct clip_geometry g;
	CHECK(clip_geometry(0, 5, 32, &g) < 0);
	CHECK(clip_geometry(5, 5, 0, &g) < 0);
	CHECK(clip_geometry(1, 65535, 224, &g) < 0); /* long side past the limit */
}

/* ---- small properties of the resampler ---- */

static void fill_random(struct image *img, uint32_t seed)
{
	for (size_t i = 0; i < image_bytes(img); i++) {
		seed = seed * 1664525u + 1013904223u;
		img->pixels[i] = (uint8_t)(seed >> 24);
	}
}

static void test_resize_properties(void)
{
	struct image src, a, b;
	CHECK(image_alloc(&src, 23, 17, 3) == 0);
	fill_random(&src, 1);

	/* Same size is a copy. */
	CHECK(image_resize(&src, 23, 17, RESAMPLE_BICUBIC, &a) == 0);
	CHECK(memcmp(a.pixels, src.pixels, image_bytes(&src)) == 0);
	image_free(&a);

	/* A window is the same bytes as resize-then-crop, for every filter and
	 * whichever passes run. */
	static const int sizes[][2] = { { 40, 30 }, { 23, 30 }, { 40, 17 }, { 9, 5 } };
	for (int f = 0; f <= 5; f++)
		for (int s = 0; s < 4; s++) {
			int ow = sizes[s][0], oh = sizes[s][1];
			CHECK(image_resize(&src, ow, oh, (enum resample_filter)f, &a) == 0);
			CHECK(image_resize_crop(&src, ow, oh, (enum resample_filter)f, 2, 1, ow - 5, oh - 3, &b) == 0);
			for (int y = 0; y < b.height; y++)
				CHECK_MSG(memcmp(b.pixels + (size_t)y * b.width * 3,
				                 a.pixels + ((size_t)(y + 1) * a.width + 2) * 3, (size_t)b.width * 3) == 0,
				          "filter %d to %dx%d: window row %d differs", f, ow, oh, y);
			image_free(&a);
			image_free(&b);
		}

	/* A constant image stays constant (weights sum to 2^22 up to rounding
	 * that the 2^21 offset absorbs), under every filter. */
	memset(src.pixels, 77, image_bytes(&src));
	for (int f = 0; f <= 5; f++) {
		CHECK(image_resize(&src, 61, 8, (enum resample_filter)f, &a) == 0);
		for (size_t i = 0; i < image_bytes(&a); i++)
			CHECK_MSG(a.pixels[i] == 77, "filter %d: pixel %zu is %d", f, i, a.pixels[i]);
		image_free(&a);
	}

	/* Bad requests fail with a message, and leave dst empty. */
	CHECK(image_resize(&src, 0, 5, RESAMPLE_BICUBIC, &a) < 0 && a.pixels == NULL);
	CHECK(image_resize(&src, 5, 70000, RESAMPLE_BICUBIC, &a) < 0);
	CHECK(image_resize(&src, 5, 5, (enum resample_filter)9, &a) < 0);
	CHECK(strstr(error_message(), "filter") != NULL);
	CHECK(image_resize_crop(&src, 10, 10, RESAMPLE_BICUBIC, 5, 5, 6, 5, &a) < 0);
	struct image five = src;
	five.channels = 5;
	CHECK(image_resize(&five, 5, 5, RESAMPLE_BICUBIC, &a) < 0);
	enum resample_filter f;
	CHECK(resample_filter_from_name("lanczos", &f) == 0 && f == RESAMPLE_LANCZOS);
	CHECK(resample_filter_from_name("cubic", &f) < 0);
	image_free(&src);
}

/* ---- the golden pixels ---- */

static void test_golden_pixels(void)
{
	char dir[512], path[1024];
	snprintf(dir, sizeof dir, "%s/golden/clip", test_shared_dir());
	snprintf(path, sizeof path, "%s/expected.safetensors", dir);
	if (access(path, R_OK) != 0)
		SKIP("%.400s is absent", path);
	struct st_file *st = st_open(path);
	CHECK_MSG(st != NULL, "%s", error_message());
	if (!st)
		return;
	const struct st_entry *e = st_find(st, "image_pixels");
	const char *files = st_metadata(st, "images");
	CHECK(e && e->ndim == 4 && e->shape[0] == 6 && e->shape[1] == 3 && files);
	if (!e || e->ndim != 4 || !files) {
		st_close(st);
		return;
	}
	int n = (int)e->shape[3];
	size_t per = (size_t)3 * n * n;
	float *expected = xmalloc(sizeof(float) * e->numel), *got = xmalloc(sizeof(float) * per);
	CHECK(st_read_f32(e, expected, e->numel) == 0);

	/* "images/a.png,images/b.png,...", in manifest order. */
	char *list = strdup(files), *save = NULL;
	int i = 0;
	double max_err = 0;
	for (char *f = strtok_r(list, ",", &save); f; f = strtok_r(NULL, ",", &save), i++) {
		struct image img;
		snprintf(path, sizeof path, "%s/%s", dir, f);
		CHECK_MSG(i < e->shape[0], "more images than pixel rows");
		if (i >= e->shape[0] || image_read_file(path, IMAGE_KEEP_ALPHA, &img) < 0) {
			CHECK_MSG(0, "%.200s: %.200s", path, error_message());
			break;
		}
		CHECK_MSG(clip_preprocess(&img, n, RESAMPLE_BICUBIC, got) == 0, "%s: %s", f, error_message());
		double err = 0;
		for (size_t j = 0; j < per; j++) {
			double d = fabs((double)got[j] - expected[i * per + j]);
			err = d > err ? d : err;
		}
		CHECK_MSG(err <= 1e-5, "%s: max abs error %g", f, err);
		max_err = err > max_err ? err : max_err;
		image_free(&img);
	}
	CHECK_MSG(i == e->shape[0], "%d images listed, %d expected", i, (int)e->shape[0]);
	printf("# golden image_pixels: %d images, max abs error %g\n", i, max_err);
	free(list);
	free(expected);
	free(got);
	st_close(st);
}

/* ---- Pillow as the oracle ---- */

/* The oracle, run by /usr/bin/python3; its first lines say what it writes. */
static const char pillow_script[] =
	"# Cases for test_clip_preprocess: Pillow's output for random images, written\n"
	"# to stdout as records of 10 little-endian int32 (kind, filter, w, h, c,\n"
	"# out_w, out_h, n_px, in_len, exp_len), the input, then the expected bytes.\n"
	"# kind 0: raw uint8 [h,w,c] resized to out_w x out_h with `filter`.\n"
	"# kind 1: raw image through CLIP's preprocessing at n_px: float32 [3,n,n].\n"
	"# kind 2: the same from PNG bytes; `filter` is what our caller must use.\n"
	"import io, struct, sys, warnings, zlib\n"
	"try:\n"
	"    import numpy as np\n"
	"    from PIL import Image\n"
	"except ImportError:\n"
	"    sys.exit(77)\n"
	"warnings.simplefilter(\"ignore\")  # Pillow on palettes with byte transparency\n"
	"\n"
	"MODES = {1: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA'}\n"
	"MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)\n"
	"STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)\n"
	"rs = np.random.RandomState(20240605)\n"
	"out = sys.stdout.buffer\n"
	"\n"
	"def emit(kind, filt, w, h, c, ow, oh, n, inp, exp):\n"
	"    out.write(struct.pack('<10i', kind, filt, w, h, c, ow, oh, n, len(inp), len(exp)) + inp + exp)\n"
	"\n"
	"def random_image(w, h, c):\n"
	"    # Noise, or blocks of noise (flat areas and hard edges); alpha often 0 or 255.\n"
	"    b = rs.choice([1, 3, 8])\n"
	"    a = rs.randint(0, 256, (h // b + 1, w // b + 1, c)).astype(np.uint8)\n"
	"    a = np.ascontiguousarray(a.repeat(b, 0).repeat(b, 1)[:h, :w])\n"
	"    if c in (2, 4):\n"
	"        pick = rs.randint(0, 4, (h, w))\n"
	"        a[..., -1][pick == 0] = 0\n"
	"        a[..., -1][pick == 1] = 255\n"
	"    return a\n"
	"\n"
	"def pil(a):\n"
	"    return Image.fromarray(a if a.shape[2] > 1 else a[:, :, 0], MODES[a.shape[2]])\n"
	"\n"
	"def clip_reference(im, n):\n"
	"    # torchvision 0.14: Resize(n, BICUBIC), CenterCrop(n), then CLIP's\n"
	"    # convert(\"RGB\"), ToTensor and Normalize in float32.\n"
	"    w, h = im.size\n"
	"    short, long_ = (w, h) if w <= h else (h, w)\n"
	"    nl = int(n * long_ / short)\n"
	"    nw, nh = (n, nl) if w <= h else (nl, n)\n"
	"    im = im.resize((nw, nh), Image.BICUBIC)\n"
	"    left, top = int(round((nw - n) / 2.0)), int(round((nh - n) / 2.0))\n"
	"    im = im.crop((left, top, left + n, top + n)).convert('RGB')\n"
	"    x = np.asarray(im, dtype=np.float32) / np.float32(255)\n"
	"    x = (x - MEAN) / STD\n"
	"    return np.ascontiguousarray(x.transpose(2, 0, 1)).astype('<f4').tobytes()\n"
	"\n"
	"def chunk(t, d):\n"
	"    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))\n"
	"\n"
	"def png(w, h, depth, color, rows, extra=b''):\n"
	"    raw = b''.join(b'\\0' + r for r in rows)\n"
	"    return (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, color, 0, 0, 0))\n"
	"            + extra + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))\n"
	"\n"
	"def pack_bits(v, depth):\n"
	"    # One row of samples < 2^depth, packed big-endian as PNG wants.\n"
	"    per = 8 // depth\n"
	"    v = np.concatenate([v, np.zeros((-len(v)) % per, v.dtype)]).reshape(-1, per)\n"
	"    return bytes(sum(v[:, i].astype(int) << (8 - depth * (i + 1)) for i in range(per)).astype(np.uint8))\n"
	"\n"
	"# kind 0: every mode and filter on up/down-scaling, odd sizes, one axis\n"
	"# only, extreme aspect ratios, 1-pixel images and a same-size copy.\n"
	"SIZES = [(32, 32, 17, 9), (17, 45, 32, 84), (64, 48, 42, 32), (200, 150, 42, 32), (3, 200, 2, 133),\n"
	"         (200, 3, 67, 1), (3, 200, 9, 600), (45, 38, 37, 32), (45, 32, 37, 32), (45, 38, 45, 32),\n"
	"         (7, 5, 7, 5), (256, 256, 224, 224), (31, 29, 64, 61), (101, 97, 13, 11), (2, 2, 1, 1),\n"
	"         (1, 1, 5, 7), (10, 1, 3, 1), (1, 10, 1, 33), (400, 300, 37, 28), (5, 300, 300, 5)]\n"
	"for (w, h, ow, oh) in SIZES:\n"
	"    for c in (1, 2, 3, 4):\n"
	"        a = random_image(w, h, c)\n"
	"        for f in (0, 1, 2, 3, 4, 5):\n"
	"            r = np.asarray(pil(a).resize((ow, oh), f)).reshape(oh, ow, c)\n"
	"            emit(0, f, w, h, c, ow, oh, 0, a.tobytes(), r.tobytes())\n"
	"\n"
	"# kind 1: the whole preprocessing, every mode, several n_px.\n"
	"for (w, h, n) in [(64, 48, 32), (17, 45, 32), (38, 29, 32), (45, 38, 32), (32, 32, 32), (300, 7, 5),\n"
	"                  (256, 256, 224), (250, 333, 224), (13, 13, 40), (41, 40, 40)]:\n"
	"    for c in (1, 2, 3, 4):\n"
	"        a = random_image(w, h, c)\n"
	"        emit(1, 3, w, h, c, n, n, n, a.tobytes(), clip_reference(pil(a), n))\n"
	"\n"
	"# kind 2: PNG files as Pillow opens them; palettes and 1-bit need NEAREST.\n"
	"def png_case(data, n):\n"
	"    im = Image.open(io.BytesIO(data))\n"
	"    if im.mode in ('I', 'I;16', 'I;16B'):\n"
	"        return  # 16-bit gray: Pillow resamples 32-bit ints; we keep the high byte\n"
	"    f = 0 if im.mode in ('P', '1') else 3\n"
	"    emit(2, f, im.size[0], im.size[1], 0, n, n, n, data, clip_reference(im, n))\n"
	"\n"
	"for (w, h, n) in [(37, 23, 16), (12, 50, 32), (64, 64, 20)]:\n"
	"    idx = rs.randint(0, 200, (h, w)).astype(np.uint8)\n"
	"    plte = chunk(b'PLTE', bytes(rs.randint(0, 256, 600).astype(np.uint8)))\n"
	"    trns = chunk(b'tRNS', bytes(rs.randint(0, 256, 150).astype(np.uint8)))\n"
	"    rows8 = [bytes(r) for r in idx]\n"
	"    png_case(png(w, h, 8, 3, rows8, plte), n)\n"
	"    png_case(png(w, h, 8, 3, rows8, plte + trns), n)\n"
	"    png_case(png(w, h, 4, 3, [pack_bits(r % 16, 4) for r in idx], plte), n)\n"
	"    png_case(png(w, h, 1, 0, [pack_bits(r % 2, 1) for r in idx]), n)\n"
	"    png_case(png(w, h, 4, 0, [pack_bits(r % 16, 4) for r in idx]), n)\n"
	"    png_case(png(w, h, 8, 0, rows8, chunk(b'tRNS', b'\\0\\x07')), n)\n"
	"    for color, c in ((2, 3), (6, 4), (4, 2)):\n"
	"        a = rs.randint(0, 65536, (h, w * c)).astype('>u2')\n"
	"        png_case(png(w, h, 16, color, [r.tobytes() for r in a]), n)\n"
	"    a = random_image(w, h, 3)\n"
	"    png_case(png(w, h, 8, 2, [r.tobytes() for r in a], chunk(b'tRNS', b'\\0\\1\\0\\2\\0\\3')), n)\n";

struct pillow_case {
	int kind, filter, w, h, c, out_w, out_h, n_px, in_len, exp_len;
};

/* Runs one case; returns the number of differing bytes (or floats), or -1
 * with a message in why if ours failed outright. */
static long run_case(const struct pillow_case *k, const uint8_t *in, const uint8_t *exp, char *why, size_t nwhy)
{
	struct image img = { k->w, k->h, k->c, (uint8_t *)in }, res;
	long bad = 0;
	if (k->kind == 0) {
		if (image_resize(&img, k->out_w, k->out_h, (enum resample_filter)k->filter, &res) < 0 ||
		    image_bytes(&res) != (size_t)k->exp_len) {
			snprintf(why, nwhy, "%s", error_message());
			return -1;
		}
		for (size_t i = 0; i < image_bytes(&res); i++)
			bad += res.pixels[i] != exp[i];
		image_free(&res);
		return bad;
	}
	if (k->kind == 2 && image_decode(in, (size_t)k->in_len, IMAGE_KEEP_ALPHA, &img) < 0) {
		snprintf(why, nwhy, "decoding: %s", error_message());
		return -1;
	}
	size_t n = (size_t)3 * k->n_px * k->n_px;
	float *got = xmalloc(sizeof *got * n);
	if (n * sizeof *got != (size_t)k->exp_len ||
	    clip_preprocess(&img, k->n_px, (enum resample_filter)k->filter, got) < 0) {
		snprintf(why, nwhy, "%s", error_message());
		bad = -1;
	} else {
		for (size_t i = 0; i < n; i++)
			bad += memcmp(got + i, exp + i * sizeof *got, sizeof *got) != 0;
	}
	free(got);
	if (k->kind == 2)
		image_free(&img);
	return bad;
}

static void test_against_pillow(void)
{
	if (access("/usr/bin/python3", X_OK) != 0)
		SKIP("/usr/bin/python3 is absent");
	char script[] = "/tmp/test_clip_preprocess.XXXXXX";
	int fd = mkstemp(script);
	CHECK(fd >= 0 && write(fd, pillow_script, strlen(pillow_script)) == (ssize_t)strlen(pillow_script));
	if (fd >= 0)
		close(fd);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", script);
	FILE *p = popen(cmd, "r");
	CHECK(p != NULL);
	if (!p) {
		unlink(script);
		return;
	}

	static const char *const kinds[] = { "resize", "preprocess", "png preprocess" };
	int count[3] = { 0 }, mismatched = 0;
	long differing = 0;
	char first[512] = "";
	struct pillow_case k;
	int32_t head[10];
	while (fread(head, sizeof head, 1, p) == 1) {
		memcpy(&k, head, sizeof k);
		if (k.kind < 0 || k.kind > 2 || k.in_len < 0 || k.in_len > (1 << 28) || k.exp_len < 0 ||
		    k.exp_len > (1 << 28)) {
			CHECK_MSG(0, "garbled case header from the script");
			break;
		}
		uint8_t *in = xmalloc((size_t)k.in_len + 1), *exp = xmalloc((size_t)k.exp_len + 1);
		if (fread(in, 1, (size_t)k.in_len, p) != (size_t)k.in_len ||
		    fread(exp, 1, (size_t)k.exp_len, p) != (size_t)k.exp_len) {
			CHECK_MSG(0, "script output ends inside a case");
			free(in);
			free(exp);
			break;
		}
		char why[256];
		long bad = run_case(&k, in, exp, why, sizeof why);
		count[k.kind]++;
		if (bad != 0) {
			mismatched++;
			differing += bad > 0 ? bad : 0;
			if (!*first)
				snprintf(first, sizeof first, "%s, filter %d, %dx%dx%d -> %dx%d (n_px %d): %s%ld differ",
				         kinds[k.kind], k.filter, k.w, k.h, k.c, k.out_w, k.out_h, k.n_px,
				         bad < 0 ? why : "", bad < 0 ? 0L : bad);
		}
		free(in);
		free(exp);
	}
	int status = pclose(p);
	unlink(script);
	if (count[0] + count[1] + count[2] == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 77)
		SKIP("/usr/bin/python3 has no Pillow (PIL) or numpy");
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the Pillow script failed (status %d)", status);
	CHECK_MSG(count[0] > 0 && count[1] > 0 && count[2] > 0, "the script gave too few cases");
	CHECK_MSG(mismatched == 0, "%d cases differ from Pillow (%ld values), first: %s", mismatched, differing,
	          first);
	printf("# pillow: %d resize, %d preprocess and %d png preprocess cases; %d differ (%ld values)\n",
	       count[0], count[1], count[2], mismatched, differing);
}

int main(void)
{
	RUN(test_geometry);
	RUN(test_resize_properties);
	RUN(test_golden_pixels);
	RUN(test_against_pillow);
	TEST_EXIT();
}
