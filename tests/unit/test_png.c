/* Image I/O: PNG and PNM decoding corner cases, malformed files, the PNG
 * writer, records and contact sheets. Test PNGs are made here with libpng's
 * own writer, so every color type and bit depth is exercised. */
#include <png.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "image/contact_sheet.h"
#include "image/font.h"
#include "image/image.h"
#include "stream/record.h"
#include "test.h"

/* ---- making test PNGs ---- */

struct png_spec {
	int width, height, color_type, bit_depth;
	bool interlace;
	const png_color *palette;
	int npalette;
	const png_byte *trns; /* palette alpha */
	int ntrns;
	const png_color_16 *trns_color; /* gray or RGB key */
	const char *text;               /* a tEXt chunk, to corrupt */
};

static int spec_channels(const struct png_spec *s)
{
	switch (s->color_type) {
	case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
	case PNG_COLOR_TYPE_RGB: return 3;
	case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
	default: return 1;
	}
}

/* Encodes samples (one unsigned per sample, row-major, at the spec's bit
 * depth) as a PNG in memory; returns its length and sets *out (free it). */
static size_t make_png(const struct png_spec *s, const unsigned *samples, uint8_t **out)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	png_init_io(png, fp);
	png_set_IHDR(png, info, s->width, s->height, s->bit_depth, s->color_type,
	             s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
	             PNG_FILTER_TYPE_DEFAULT);
	if (s->palette)
		png_set_PLTE(png, info, s->palette, s->npalette);
	if (s->trns || s->trns_color)
		png_set_tRNS(png, info, s->trns, s->ntrns, s->trns_color);
	if (s->text) {
		png_text t = { .compression = PNG_TEXT_COMPRESSION_NONE, .key = "Comment", .text = (char *)s->text };
		png_set_text(png, info, &t, 1);
	}
	png_write_info(png, info);
	int per_row = s->width * spec_channels(s);
	size_t row_bytes = ((size_t)per_row * s->bit_depth + 7) / 8;
	png_bytep rows = calloc(s->height, row_bytes);
	for (int y = 0; y < s->height; y++)
		for (int i = 0; i < per_row; i++) {
			unsigned v = samples[y * per_row + i];
			png_bytep row = rows + y * row_bytes;
			if (s->bit_depth == 16) {
				row[2 * i] = v >> 8;
				row[2 * i + 1] = v & 0xff;
			} else if (s->bit_depth == 8) {
				row[i] = v;
			} else { /* packed, leftmost sample in the high bits */
				int bit = i * s->bit_depth;
				row[bit / 8] |= v << (8 - s->bit_depth - bit % 8);
			}
		}
	png_bytep row_ptrs[s->height];
	for (int y = 0; y < s->height; y++)
		row_ptrs[y] = rows + y * row_bytes;
	png_write_image(png, row_ptrs);
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	fclose(fp);
	free(rows);
	*out = (uint8_t *)buf;
	return len;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/* Offset of the length field of the first chunk of this type, or 0. */
static size_t find_chunk(const uint8_t *p, size_t len, const char *type)
{
	for (size_t off = 8; off + 12 <= len;) {
		uint32_t n = get_be32(p + off);
		if (!memcmp(p + off + 4, type, 4))
			return off;
		off += 12 + (size_t)n;
	}
	return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* Recomputes the CRC of the chunk at off, after editing its data. */
static void fix_crc(uint8_t *p, size_t off)
{
	uint32_t n = get_be32(p + off);
	put_be32(p + off + 8 + n, crc32(0, p + off + 4, 4 + n));
}

/* A valid PNG whose IHDR claims another size. */
static size_t png_claiming(uint32_t width, uint32_t height, int color_type, uint8_t **out)
{
	struct png_spec s = { 2, 2, color_type, 8 };
	unsigned samples[16] = { 0 };
	size_t len = make_png(&s, samples, out);
	size_t ihdr = find_chunk(*out, len, "IHDR");
	put_be32(*out + ihdr + 8, width);
	put_be32(*out + ihdr + 12, height);
	fix_crc(*out, ihdr);
	return len;
}

/* ---- stderr must stay silent: libpng may not print ---- */

static int saved_stderr = -1;
static FILE *captured;

static void capture_stderr(void)
{
	fflush(stderr);
	captured = tmpfile();
	saved_stderr = dup(2);
	dup2(fileno(captured), 2);
}

/* Restores stderr; returns how many bytes were written meanwhile. */
static long captured_bytes(void)
{
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	long n = lseek(fileno(captured), 0, SEEK_END);
	fclose(captured);
	return n;
}

/* ---- decoding helpers ---- */

static int decode(const struct png_spec *s, const unsigned *samples, enum image_alpha alpha, struct image *img)
{
	uint8_t *buf;
	size_t len = make_png(s, samples, &buf);
	int rc = image_decode(buf, len, alpha, img);
	free(buf);
	return rc;
}

static bool pixels_equal(const struct image *img, const uint8_t *want, size_t n)
{
	return img->pixels && image_bytes(img) == n && !memcmp(img->pixels, want, n);
}

/* Decodes s's samples and checks the channel count and the n bytes of
 * pixels. */
static void check_decoded(const struct png_spec *s, const unsigned *samples, enum image_alpha alpha,
                          int channels, const uint8_t *want, size_t n)
{
	struct image img;
	CHECK_MSG(decode(s, samples, alpha, &img) == 0, "%s", error_message());
	CHECK(img.channels == channels && pixels_equal(&img, want, n));
	image_free(&img);
}

/* ---- PNG color types and bit depths ---- */

static void test_gray8(void)
{
	struct png_spec s = { 3, 2, PNG_COLOR_TYPE_GRAY, 8 };
	unsigned in[] = { 0, 1, 127, 128, 254, 255 };
	const uint8_t want[] = { 0, 1, 127, 128, 254, 255 };
	struct image img;
	for (int mode = IMAGE_ON_WHITE; mode <= IMAGE_KEEP_ALPHA; mode++) {
		CHECK_MSG(decode(&s, in, mode, &img) == 0, "%s", error_message());
		CHECK(img.width == 3 && img.height == 2 && img.channels == 1 && !strcmp(img.mode, "L"));
		CHECK(pixels_equal(&img, want, sizeof want));
		image_free(&img);
	}
}

/* 1, 2 and 4-bit gray scale up to 0..255 (v * 255 / (2^depth - 1)). */
static void test_gray_low_bit_depths(void)
{
	for (int depth = 1; depth <= 4; depth *= 2) {
		int levels = 1 << depth;
		struct png_spec s = { levels, 3, PNG_COLOR_TYPE_GRAY, depth };
		unsigned in[48];
		for (int i = 0; i < 3 * levels; i++)
			in[i] = i % levels;
		struct image img;
		CHECK_MSG(decode(&s, in, IMAGE_ON_WHITE, &img) == 0, "depth %d: %s", depth, error_message());
		CHECK(img.width == levels && img.channels == 1 && !strcmp(img.mode, depth == 1 ? "1" : "L"));
		for (int i = 0; i < 3 * levels && img.pixels; i++)
			CHECK_MSG(img.pixels[i] == in[i] * 255 / (levels - 1), "depth %d sample %d: %d", depth, i,
			          img.pixels[i]);
		image_free(&img);
	}
}

static void test_gray16_keeps_high_byte(void)
{
	struct png_spec s = { 4, 1, PNG_COLOR_TYPE_GRAY, 16 };
	unsigned in[] = { 0x0000, 0x00ff, 0x1234, 0xffff };
	const uint8_t want[] = { 0x00, 0x00, 0x12, 0xff };
	struct image img;
	CHECK_MSG(decode(&s, in, IMAGE_ON_WHITE, &img) == 0, "%s", error_message());
	CHECK(img.channels == 1 && pixels_equal(&img, want, sizeof want) && !strcmp(img.mode, "I"));
	image_free(&img);
}

static void test_rgb16_keeps_high_byte(void)
{
	struct png_spec s = { 2, 1, PNG_COLOR_TYPE_RGB, 16 };
	unsigned in[] = { 0xabcd, 0x0102, 0xff00, 0x80ff, 0x7f80, 0x0001 };
	const uint8_t want[] = { 0xab, 0x01, 0xff, 0x80, 0x7f, 0x00 };
	for (int mode = IMAGE_ON_WHITE; mode <= IMAGE_KEEP_ALPHA; mode++)
		check_decoded(&s, in, mode, 3, want, sizeof want);
}

static void test_gray_alpha(void)
{
	struct png_spec s = { 3, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8 };
	unsigned in[] = { 0, 0, 0, 128, 100, 255 };
	const uint8_t kept[] = { 0, 0, 0, 128, 100, 255 };
	const uint8_t composited[] = { 255, (255 * 127 + 127) / 255, 100 };
	check_decoded(&s, in, IMAGE_KEEP_ALPHA, 2, kept, sizeof kept);
	check_decoded(&s, in, IMAGE_ON_WHITE, 1, composited, sizeof composited);
}

static void test_rgba(void)
{
	struct png_spec s = { 2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8 };
	unsigned in[] = { 10, 20, 30, 255, 200, 100, 0, 64 };
	const uint8_t kept[] = { 10, 20, 30, 255, 200, 100, 0, 64 };
	uint8_t composited[6] = { 10, 20, 30 };
	for (int k = 0; k < 3; k++)
		composited[3 + k] = (uint8_t)((in[4 + k] * 64 + 255 * 191 + 127) / 255);
	check_decoded(&s, in, IMAGE_KEEP_ALPHA, 4, kept, sizeof kept);
	check_decoded(&s, in, IMAGE_ON_WHITE, 3, composited, sizeof composited);
}

static void test_rgba16(void)
{
	struct png_spec s = { 1, 1, PNG_COLOR_TYPE_RGB_ALPHA, 16 };
	unsigned in[] = { 0x1111, 0x2222, 0x3333, 0x80ff };
	const uint8_t kept[] = { 0x11, 0x22, 0x33, 0x80 };
	check_decoded(&s, in, IMAGE_KEEP_ALPHA, 4, kept, sizeof kept);
}

static const png_color test_palette[4] = { { 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 }, { 9, 8, 7 } };

static void test_palette_without_trns(void)
{
	/* 2-bit indices also exercise unpacking. */
	struct png_spec s = { 5, 1, PNG_COLOR_TYPE_PALETTE, 2, .palette = test_palette, .npalette = 4 };
	unsigned in[] = { 0, 1, 2, 3, 1 };
	const uint8_t want[] = { 255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7, 0, 255, 0 };
	struct image img;
	for (int mode = IMAGE_ON_WHITE; mode <= IMAGE_KEEP_ALPHA; mode++) {
		CHECK_MSG(decode(&s, in, mode, &img) == 0, "%s", error_message());
		CHECK(img.channels == 3 && pixels_equal(&img, want, sizeof want) && !strcmp(img.mode, "P"));
		image_free(&img);
	}
}

static void test_palette_with_trns(void)
{
	/* Entries past the tRNS list are opaque. */
	static const png_byte alpha[2] = { 0, 128 };
	struct png_spec s = { 4, 1, PNG_COLOR_TYPE_PALETTE, 8, .palette = test_palette, .npalette = 4,
	                      .trns = alpha, .ntrns = 2 };
	unsigned in[] = { 0, 1, 2, 3 };
	const uint8_t kept[] = { 255, 0, 0, 0, 0, 255, 0, 128, 0, 0, 255, 255, 9, 8, 7, 255 };
	const uint8_t composited[] = { 255, 255, 255, 127, 255, 127, 0, 0, 255, 9, 8, 7 };
	check_decoded(&s, in, IMAGE_KEEP_ALPHA, 4, kept, sizeof kept);
	check_decoded(&s, in, IMAGE_ON_WHITE, 3, composited, sizeof composited);
}

/* A gray or RGB key color is transparency only when compositing; keep-alpha
 * leaves the channels and samples as they are (Pillow keeps mode L/RGB). */
static void test_color_key_trns(void)
{
	png_color_16 gray_key = { .gray = 50 };
	struct png_spec gray = { 2, 1, PNG_COLOR_TYPE_GRAY, 8, .trns_color = &gray_key };
	unsigned gray_in[] = { 50, 60 };
	struct image img;
	CHECK_MSG(decode(&gray, gray_in, IMAGE_ON_WHITE, &img) == 0, "%s", error_message());
	CHECK(pixels_equal(&img, (const uint8_t[]){ 255, 60 }, 2));
	image_free(&img);
	check_decoded(&gray, gray_in, IMAGE_KEEP_ALPHA, 1, (const uint8_t[]){ 50, 60 }, 2);

	png_color_16 rgb_key = { .red = 1, .green = 2, .blue = 3 };
	struct png_spec rgb = { 2, 1, PNG_COLOR_TYPE_RGB, 8, .trns_color = &rgb_key };
	unsigned rgb_in[] = { 1, 2, 3, 1, 2, 4 };
	check_decoded(&rgb, rgb_in, IMAGE_ON_WHITE, 3, (const uint8_t[]){ 255, 255, 255, 1, 2, 4 }, 6);
	check_decoded(&rgb, rgb_in, IMAGE_KEEP_ALPHA, 3, (const uint8_t[]){ 1, 2, 3, 1, 2, 4 }, 6);
}

/* Adam7 decodes to the same pixels as the plain encoding, at odd sizes. */
static void test_interlaced_adam7(void)
{
	enum { W = 13, H = 11 };
	unsigned in[W * H * 3];
	for (int i = 0; i < W * H * 3; i++)
		in[i] = (i * 37 + i / 3) & 0xff;
	struct png_spec plain = { W, H, PNG_COLOR_TYPE_RGB, 8 }, laced = plain;
	laced.interlace = true;
	struct image a, b;
	CHECK_MSG(decode(&plain, in, IMAGE_ON_WHITE, &a) == 0, "%s", error_message());
	CHECK_MSG(decode(&laced, in, IMAGE_ON_WHITE, &b) == 0, "%s", error_message());
	CHECK(a.pixels && b.pixels && pixels_equal(&b, a.pixels, image_bytes(&a)));
	for (int i = 0; i < W * H * 3 && a.pixels; i++)
		CHECK(a.pixels[i] == in[i]);
	image_free(&a);
	image_free(&b);
}

/* ---- compositing and exactness ---- */

static void test_composite_math(void)
{
	CHECK(composite_on_white(0, 0) == 255);
	CHECK(composite_on_white(123, 0) == 255);
	CHECK(composite_on_white(0, 128) == 127);
	CHECK(composite_on_white(200, 1) == 255);
	/* Opaque samples are unchanged, and the formula matches rounding of the
	 * exact value (halves round down, as in (x + 127) / 255). */
	for (int c = 0; c < 256; c++)
		for (int a = 0; a < 256; a++) {
			int x = c * a + 255 * (255 - a);
			int want = x / 255 + (x % 255 > 127);
			CHECK_MSG(composite_on_white(c, a) == want, "c=%d a=%d", c, a);
			if (a == 255)
				CHECK(composite_on_white(c, a) == c);
		}
	uint8_t px[] = { 10, 20, 30, 0, 40, 50, 60, 255 };
	struct image img = { 2, 1, 4, px };
	image_composite_on_white(&img);
	CHECK(img.channels == 3 && !memcmp(px, (const uint8_t[]){ 255, 255, 255, 40, 50, 60 }, 6));
}

/* Keep-alpha returns every RGBA byte exactly as stored. */
static void test_keep_alpha_is_exact(void)
{
	enum { N = 64 };
	unsigned in[N * N * 4];
	uint8_t want[N * N * 4];
	for (int i = 0; i < N * N * 4; i++)
		want[i] = (uint8_t)(in[i] = (unsigned)(i * 2654435761u >> 13) & 0xff);
	struct png_spec s = { N, N, PNG_COLOR_TYPE_RGB_ALPHA, 8 };
	check_decoded(&s, in, IMAGE_KEEP_ALPHA, 4, want, sizeof want);
}

/* ---- malformed PNGs ---- */

static size_t sample_png(uint8_t **out)
{
	enum { W = 9, H = 7 };
	unsigned in[W * H * 3];
	for (int i = 0; i < W * H * 3; i++)
		in[i] = i * 7 & 0xff;
	struct png_spec s = { W, H, PNG_COLOR_TYPE_RGB, 8 };
	return make_png(&s, in, out);
}

/* Every prefix of a valid file is an error, never a crash, and libpng never
 * writes to stderr. */
static void test_truncated_png(void)
{
	uint8_t *buf;
	size_t len = sample_png(&buf);
	struct image img;
	CHECK(image_decode(buf, len, IMAGE_ON_WHITE, &img) == 0);
	image_free(&img);
	capture_stderr();
	for (size_t n = 0; n < len; n++) {
		CHECK_MSG(image_decode(buf, n, IMAGE_ON_WHITE, &img) < 0, "prefix of %zu bytes decoded", n);
		CHECK(img.pixels == NULL);
	}
	CHECK(captured_bytes() == 0);
	CHECK(image_decode(buf, len / 2, IMAGE_ON_WHITE, &img) < 0 && strstr(error_message(), "truncated"));
	free(buf);
}

static void test_corrupt_crc(void)
{
	uint8_t *buf;
	size_t len = sample_png(&buf);
	struct image img;
	size_t ihdr = find_chunk(buf, len, "IHDR"), idat = find_chunk(buf, len, "IDAT");
	CHECK(ihdr && idat);
	capture_stderr();
	buf[ihdr + 8 + 13] ^= 1; /* IHDR's CRC */
	int rc_ihdr = image_decode(buf, len, IMAGE_ON_WHITE, &img);
	buf[ihdr + 8 + 13] ^= 1;
	buf[idat + 8 + get_be32(buf + idat)] ^= 1; /* IDAT's CRC */
	int rc_idat = image_decode(buf, len, IMAGE_ON_WHITE, &img);
	char idat_msg[256];
	snprintf(idat_msg, sizeof idat_msg, "%s", error_message());
	CHECK(captured_bytes() == 0);
	CHECK(rc_ihdr < 0 && rc_idat < 0);
	CHECK_MSG(strstr(idat_msg, "IDAT: CRC error"), "message: %s", idat_msg);
	free(buf);
}

/* Compressed data damaged under a correct CRC: zlib's check catches it. */
static void test_corrupt_idat_data(void)
{
	uint8_t *buf;
	size_t len = sample_png(&buf);
	size_t idat = find_chunk(buf, len, "IDAT");
	uint32_t n = get_be32(buf + idat);
	struct image img;
	capture_stderr();
	int failures = 0;
	for (uint32_t i = 2; i < n; i++) {
		buf[idat + 8 + i] ^= 0xa5;
		fix_crc(buf, idat);
		if (image_decode(buf, len, IMAGE_ON_WHITE, &img) < 0)
			failures++;
		image_free(&img);
		buf[idat + 8 + i] ^= 0xa5;
	}
	CHECK(captured_bytes() == 0);
	/* Nearly every flip breaks inflate or the Adler-32; none may crash. */
	CHECK_MSG(failures >= (int)(n - 2) / 2, "%d of %u damaged files decoded", (int)(n - 2) - failures, n - 2);
	free(buf);
}

/* A damaged ancillary chunk is only a libpng warning: decoding goes on, and
 * the warning is not printed. */
static void test_bad_ancillary_chunk_is_quiet(void)
{
	struct png_spec s = { 1, 1, PNG_COLOR_TYPE_GRAY, 8, .text = "hello" };
	unsigned in[] = { 42 };
	uint8_t *buf;
	size_t len = make_png(&s, in, &buf);
	size_t text = find_chunk(buf, len, "tEXt");
	CHECK(text);
	buf[text + 9] ^= 1;
	struct image img;
	capture_stderr();
	int rc = image_decode(buf, len, IMAGE_ON_WHITE, &img);
	CHECK(captured_bytes() == 0);
	CHECK_MSG(rc == 0 && img.pixels && img.pixels[0] == 42, "%s", error_message());
	image_free(&img);
	free(buf);
}

static void test_not_an_image(void)
{
	struct image img;
	CHECK(image_decode("hello world", 11, IMAGE_ON_WHITE, &img) < 0);
	CHECK(strstr(error_message(), "not a PNG or PNM"));
	CHECK(image_decode("", 0, IMAGE_ON_WHITE, &img) < 0);
	CHECK(strstr(error_message(), "empty"));
	CHECK(image_decode("\x89PNG\r\n\x1a\n", 8, IMAGE_ON_WHITE, &img) < 0);
	CHECK(image_read_file("/nonexistent/nope.png", IMAGE_ON_WHITE, &img) < 0);
	CHECK(strstr(error_message(), "No such file"));
}

static void test_zero_size_png(void)
{
	uint8_t *buf;
	struct image img;
	capture_stderr();
	size_t len = png_claiming(0, 5, PNG_COLOR_TYPE_GRAY, &buf);
	CHECK(image_decode(buf, len, IMAGE_ON_WHITE, &img) < 0 && strstr(error_message(), "zero size"));
	free(buf);
	len = png_claiming(5, 0, PNG_COLOR_TYPE_GRAY, &buf);
	CHECK(image_decode(buf, len, IMAGE_ON_WHITE, &img) < 0 && strstr(error_message(), "zero size"));
	free(buf);
	CHECK(captured_bytes() == 0);
}

/* Absurd claimed sizes fail before any allocation (else this test would be
 * slow or run out of memory). */
static void test_huge_claimed_dimensions(void)
{
	uint8_t *buf;
	struct image img;
	size_t len = png_claiming(100000, 100000, PNG_COLOR_TYPE_RGB, &buf);
	CHECK(image_decode(buf, len, IMAGE_ON_WHITE, &img) < 0);
	CHECK_MSG(strstr(error_message(), "limit"), "message: %s", error_message());
	free(buf);
	len = png_claiming(60000, 60000, PNG_COLOR_TYPE_RGB_ALPHA, &buf);
	CHECK(image_decode(buf, len, IMAGE_KEEP_ALPHA, &img) < 0);
	CHECK_MSG(strstr(error_message(), "bytes"), "message: %s", error_message());
	free(buf);
	CHECK(image_check_size(65535, 65535, 1) < 0);
	CHECK(image_check_size(32768, 32768, 1) == 0);
	CHECK(image_check_size(65536, 1, 1) < 0);
}

/* ---- PNM ---- */

static int decode_pnm(const char *header, const void *data, size_t n, struct image *img)
{
	size_t hl = strlen(header);
	uint8_t *buf = malloc(hl + n + 1);
	memcpy(buf, header, hl);
	memcpy(buf + hl, data, n);
	int rc = image_decode(buf, hl + n, IMAGE_ON_WHITE, img);
	free(buf);
	return rc;
}

static void test_pnm_p5_p6(void)
{
	struct image img;
	const uint8_t gray[] = { 0, 1, 2, 3, 4, 255 };
	CHECK_MSG(decode_pnm("P5\n# a comment\n3 2\n255\n", gray, 6, &img) == 0, "%s", error_message());
	CHECK(img.width == 3 && img.height == 2 && img.channels == 1 && pixels_equal(&img, gray, 6));
	image_free(&img);
	const uint8_t rgb[] = { 1, 2, 3, 4, 5, 6 };
	CHECK_MSG(decode_pnm("P6 2#c\n1 255 ", rgb, 6, &img) == 0, "%s", error_message());
	CHECK(img.width == 2 && img.height == 1 && img.channels == 3 && pixels_equal(&img, rgb, 6));
	image_free(&img);
	/* Raster bytes that look like whitespace are data. */
	const uint8_t ws[] = { ' ', '\n' };
	CHECK(decode_pnm("P5 2 1 255\n", ws, 2, &img) == 0 && pixels_equal(&img, ws, 2));
	image_free(&img);
}

/* maxval other than 255 scales as round(v * 255 / maxval). */
static void test_pnm_maxval_scaling(void)
{
	struct image img;
	const uint8_t four_bit[] = { 0, 1, 8, 15 };
	CHECK(decode_pnm("P5 4 1 15\n", four_bit, 4, &img) == 0);
	CHECK(pixels_equal(&img, (const uint8_t[]){ 0, 17, 136, 255 }, 4));
	image_free(&img);
	const uint8_t sixteen[] = { 0x00, 0x00, 0xff, 0xff, 0x80, 0x80, 0x01, 0x00 };
	CHECK_MSG(decode_pnm("P5 4 1 65535\n", sixteen, 8, &img) == 0, "%s", error_message());
	CHECK(pixels_equal(&img, (const uint8_t[]){ 0, 255, 128, 1 }, 4));
	image_free(&img);
	const uint8_t rgb16[] = { 0x03, 0xe8, 0x01, 0xf4, 0x00, 0x00 };
	CHECK(decode_pnm("P6 1 1 1000\n", rgb16, 6, &img) == 0);
	CHECK(img.channels == 3 && pixels_equal(&img, (const uint8_t[]){ 255, 128, 0 }, 3));
	image_free(&img);
	const uint8_t one_bit[] = { 0, 1 };
	CHECK(decode_pnm("P5 2 1 1\n", one_bit, 2, &img) == 0 && pixels_equal(&img, (const uint8_t[]){ 0, 255 }, 2));
	image_free(&img);
}

static void test_pnm_bad_headers(void)
{
	static const struct { const char *header, *why; } bad[] = {
		{ "P5", "truncated" },
		{ "P5 3", "truncated" },
		{ "P5 x 2 255\n", "width" },
		{ "P5 -1 2 255\n", "width" },
		{ "P5 2 2 0\n", "maxval" },
		{ "P5 2 2 70000\n", "maxval" },
		{ "P5 2 2 255", "whitespace" },
		{ "P5 0 2 255\n", "zero" },
		{ "P6 99999999999 2 255\n", "width" },
		{ "P5 70000 1 255\n", "limit" },
		{ "P2 2 2 255\n", "unsupported" },
		{ "P3 2 2 255\n", "unsupported" },
		{ "P4 2 2\n", "unsupported" },
	};
	const uint8_t data[16] = { 0 };
	struct image img;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		CHECK_MSG(decode_pnm(bad[i].header, data, strchr(bad[i].header, '\n') ? 16 : 0, &img) < 0,
		          "'%s' decoded", bad[i].header);
		CHECK_MSG(strstr(error_message(), bad[i].why), "'%s': %s", bad[i].header, error_message());
	}
}

static void test_pnm_truncated_and_out_of_range(void)
{
	const uint8_t data[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0 };
	struct image img;
	CHECK(decode_pnm("P6 2 2 255\n", data, 11, &img) < 0 && strstr(error_message(), "truncated"));
	CHECK(decode_pnm("P5 2 2 65535\n", data, 7, &img) < 0 && strstr(error_message(), "truncated"));
	CHECK(decode_pnm("P5 2 2 10\n", data + 8, 4, &img) < 0 && strstr(error_message(), "exceeds maxval"));
	CHECK(img.pixels == NULL);
}

/* ---- writing ---- */

static void test_write_read_round_trip(void)
{
	for (int c = 1; c <= 4; c++) {
		struct image img, back;
		image_alloc(&img, 17, 5, c);
		for (size_t i = 0; i < image_bytes(&img); i++)
			img.pixels[i] = (uint8_t)(i * 31 + c);
		char *buf = NULL;
		size_t len = 0;
		FILE *fp = open_memstream(&buf, &len);
		CHECK_MSG(png_write(fp, &img) == 0, "%s", error_message());
		fclose(fp);
		CHECK_MSG(image_decode(buf, len, IMAGE_KEEP_ALPHA, &back) == 0, "C=%d: %s", c, error_message());
		CHECK_MSG(back.channels == c && back.width == 17 && back.height == 5, "C=%d", c);
		CHECK_MSG(pixels_equal(&back, img.pixels, image_bytes(&img)), "C=%d pixels differ", c);
		image_free(&back);
		image_free(&img);
		free(buf);
	}
	struct image five = { 1, 1, 5, (uint8_t[5]){ 0 } };
	CHECK(png_write(stdout, &five) < 0);
}

/* ---- records ---- */

static void test_image_record_fields(void)
{
	struct record r = RECORD_INIT;
	struct image img, view;
	image_alloc(&img, 4, 3, 2);
	img.pixels[5] = 77;
	image_to_record(&r, "image", &img);
	CHECK(img.pixels == NULL);
	struct tensor *t = record_tensor(&r, "image");
	CHECK(t && t->dtype == DT_UINT8 && t->ndim == 3 && t->shape[0] == 3 && t->shape[1] == 4 && t->shape[2] == 2);
	CHECK(image_from_record(&r, "image", &view) == 0 && view.width == 4 && view.height == 3 &&
	      view.channels == 2 && view.pixels[5] == 77);

	CHECK(image_from_record(&r, "missing", &view) < 0 && strstr(error_message(), "no 'missing' field"));
	record_new_tensor(&r, "f", DT_FLOAT32, 3, (const int64_t[]){ 2, 2, 3 });
	CHECK(image_from_record(&r, "f", &view) < 0 && strstr(error_message(), "float32 [2,2,3]"));
	record_new_tensor(&r, "flat", DT_UINT8, 2, (const int64_t[]){ 2, 2 });
	CHECK(image_from_record(&r, "flat", &view) < 0 && strstr(error_message(), "uint8 [2,2]"));
	record_new_tensor(&r, "five", DT_UINT8, 3, (const int64_t[]){ 2, 2, 5 });
	CHECK(image_from_record(&r, "five", &view) < 0);
	record_new_tensor(&r, "empty", DT_UINT8, 3, (const int64_t[]){ 0, 2, 3 });
	CHECK(image_from_record(&r, "empty", &view) < 0 && strstr(error_message(), "zero size"));
	record_set_str(&r, "s", "x");
	CHECK(image_from_record(&r, "s", &view) < 0 && strstr(error_message(), "not a tensor"));
	record_free(&r);
}

static void test_id_from_path(void)
{
	static const char *cases[][2] = {
		{ "a.png", "a" }, { "dir/sub/b.x.png", "b.x" }, { "noext", "noext" },
		{ ".png", ".png" }, { "d.ir/file", "file" }, { "/abs/c.PPM", "c" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *id = image_id_from_path(cases[i][0]);
		CHECK_MSG(!strcmp(id, cases[i][1]), "%s -> %s", cases[i][0], id);
		free(id);
	}
}

/* ---- contact sheets and the font ---- */

static void fill_image(struct image *img, int w, int h, int c, uint8_t v)
{
	image_alloc(img, w, h, c);
	memset(img->pixels, v, image_bytes(img));
}

static const uint8_t *sheet_pixel(const struct contact_sheet *s, int x, int y)
{
	return s->canvas.pixels + ((size_t)y * s->canvas.width + x) * 3;
}

static void test_sheet_fit(void)
{
	struct sheet_fit f = sheet_fit(28, 28, 128); /* whole-factor enlargement */
	CHECK(f.width == 112 && f.height == 112 && f.x == 8 && f.y == 8);
	f = sheet_fit(300, 150, 100);
	CHECK(f.width == 100 && f.height == 50 && f.x == 0 && f.y == 25);
	f = sheet_fit(10, 40, 32);
	CHECK(f.width == 8 && f.height == 32 && f.x == 12);
	f = sheet_fit(65535, 1, 64);
	CHECK(f.width == 64 && f.height == 1);
}

static void test_sheet_dimensions(void)
{
	struct contact_sheet s;
	struct image img;
	fill_image(&img, 28, 28, 1, 0);
	CHECK(sheet_init(&s, 4, 32, false) == 0);
	for (int i = 0; i < 10; i++)
		CHECK(sheet_add(&s, &img, "ignored") == 0);
	sheet_finish(&s);
	CHECK(s.canvas.width == SHEET_GAP + 4 * (32 + SHEET_GAP));
	CHECK(s.canvas.height == SHEET_GAP + 3 * (32 + SHEET_GAP));
	CHECK(s.canvas.channels == 3);
	/* 28 -> 28 (factor 1) centered: (2,2) of the first cell is black. */
	CHECK(sheet_pixel(&s, SHEET_GAP + 2, SHEET_GAP + 2)[0] == 0);
	CHECK(sheet_pixel(&s, SHEET_GAP + 1, SHEET_GAP + 1)[0] == 255);
	CHECK(sheet_pixel(&s, 0, 0)[0] != 0 && sheet_pixel(&s, 0, 0)[0] != 255);
	sheet_free(&s);

	/* Fewer images than columns: the sheet is trimmed to them. */
	CHECK(sheet_init(&s, 8, 16, true) == 0);
	for (int i = 0; i < 3; i++)
		CHECK(sheet_add(&s, &img, "x") == 0);
	sheet_finish(&s);
	CHECK(s.canvas.width == SHEET_GAP + 3 * (16 + SHEET_GAP));
	CHECK(s.canvas.height == SHEET_GAP + 16 + s.caption_height + SHEET_GAP);
	CHECK(s.caption_height >= FONT_HEIGHT);
	sheet_free(&s);
	image_free(&img);
}

static void test_sheet_limits(void)
{
	struct contact_sheet s;
	CHECK(sheet_init(&s, 4096, 4096, false) < 0);
	CHECK(sheet_init(&s, 1, 4, false) < 0);
	/* One narrow column grows until the height limit: rows of 8 + gap. */
	struct image img;
	fill_image(&img, 1, 1, 1, 0);
	CHECK(sheet_init(&s, 1, 8, false) == 0);
	int rc = 0, n = 0;
	while (n < 10000 && (rc = sheet_add(&s, &img, NULL)) == 0)
		n++;
	CHECK_MSG(rc < 0 && n == (IMAGE_MAX_SIDE - SHEET_GAP) / (8 + SHEET_GAP), "placed %d", n);
	CHECK(strstr(error_message(), "contact sheet at image"));
	sheet_free(&s);
	image_free(&img);
}

/* Downscaling averages (box filter); alpha goes onto white; gray becomes RGB. */
static void test_sheet_scaling_and_alpha(void)
{
	struct image stripes, clear;
	image_alloc(&stripes, 64, 64, 1);
	for (size_t i = 0; i < image_bytes(&stripes); i++)
		stripes.pixels[i] = i % 2 ? 255 : 0;
	fill_image(&clear, 8, 8, 4, 0); /* black, fully transparent */
	struct contact_sheet s;
	CHECK(sheet_init(&s, 2, 32, false) == 0);
	CHECK(sheet_add(&s, &stripes, NULL) == 0 && sheet_add(&s, &clear, NULL) == 0);
	const uint8_t *p = sheet_pixel(&s, SHEET_GAP + 16, SHEET_GAP + 16);
	CHECK_MSG(p[0] == 128 && p[1] == 128 && p[2] == 128, "got %d %d %d", p[0], p[1], p[2]);
	p = sheet_pixel(&s, 2 * SHEET_GAP + 32 + 16, SHEET_GAP + 16);
	CHECK(p[0] == 255 && p[1] == 255 && p[2] == 255);
	sheet_free(&s);
	image_free(&stripes);
	image_free(&clear);
}

/* Dark pixels in the caption band of cell `col`, and in the gap after it. */
static void count_caption_ink(const struct contact_sheet *s, int col, int *in_cell, int *in_gap)
{
	*in_cell = *in_gap = 0;
	int x0 = SHEET_GAP + col * (s->cell + SHEET_GAP);
	for (int y = SHEET_GAP + s->cell; y < SHEET_GAP + s->cell + s->caption_height; y++) {
		for (int x = x0; x < x0 + s->cell; x++)
			*in_cell += sheet_pixel(s, x, y)[0] < 100;
		for (int x = x0 + s->cell; x < x0 + s->cell + SHEET_GAP; x++)
			*in_gap += sheet_pixel(s, x, y)[0] < 100;
	}
}

static void test_sheet_captions(void)
{
	struct image img;
	fill_image(&img, 8, 8, 3, 200);
	struct contact_sheet s;
	CHECK(sheet_init(&s, 3, 32, true) == 0);
	CHECK(sheet_add(&s, &img, "Ab") == 0);
	CHECK(sheet_add(&s, &img, "a caption much wider than the cell") == 0);
	CHECK(sheet_add(&s, &img, "") == 0);
	int ink, gap;
	count_caption_ink(&s, 0, &ink, &gap);
	CHECK(ink > 10 && gap == 0);
	count_caption_ink(&s, 1, &ink, &gap);
	CHECK_MSG(ink > 30 && gap == 0, "ink %d, gap %d", ink, gap);
	count_caption_ink(&s, 2, &ink, &gap);
	CHECK(ink == 0);
	/* "Ab" is drawn centered: the first ink column is (32 - 11) / 2 in. */
	int first = -1;
	for (int x = SHEET_GAP; x < SHEET_GAP + 32 && first < 0; x++)
		for (int y = SHEET_GAP + 32; y < SHEET_GAP + 32 + s.caption_height; y++)
			if (sheet_pixel(&s, x, y)[0] < 100) {
				first = x - SHEET_GAP;
				break;
			}
	CHECK_MSG(first == (32 - (2 * FONT_ADVANCE - 1)) / 2, "first ink at %d", first);
	sheet_free(&s);
	image_free(&img);
}

static void test_font(void)
{
	CHECK(font_text_width("", 100) == 0);
	CHECK(font_text_width("abc", 100) == 3 * FONT_ADVANCE - 1);
	CHECK(font_text_width("abcdefgh", 20) == 3 * FONT_ADVANCE - 1);
	CHECK(font_text_width("\xc3\xa9t\xc3\xa9", 100) == 3 * FONT_ADVANCE - 1); /* UTF-8: one glyph each */
	CHECK(font_glyph('\n') == font_glyph('?'));
	CHECK(font_glyph(0xff) == font_glyph('?'));
	/* Every printable glyph but space has ink, and no two are the same. */
	for (int c = 33; c < 127; c++) {
		const uint8_t *g = font_glyph(c);
		int ink = 0;
		for (int r = 0; r < FONT_HEIGHT; r++)
			ink |= g[r];
		CHECK_MSG(ink && !(ink & ~0x1f), "glyph '%c'", c);
		for (int d = 33; d < c; d++)
			CHECK_MSG(memcmp(g, font_glyph(d), FONT_HEIGHT), "'%c' looks like '%c'", c, d);
	}
	struct image img;
	fill_image(&img, 10, 10, 2, 0);
	CHECK(font_draw_text(&img, -3, 5, 100, "II", 99) == 2 * FONT_ADVANCE - 1); /* clipped, no crash */
	int ink = 0;
	for (size_t i = 0; i < image_bytes(&img); i += 2)
		ink += img.pixels[i] == 99 && img.pixels[i + 1] == 255;
	CHECK(ink > 0);
	image_free(&img);
}

int main(void)
{
	RUN(test_gray8);
	RUN(test_gray_low_bit_depths);
	RUN(test_gray16_keeps_high_byte);
	RUN(test_rgb16_keeps_high_byte);
	RUN(test_gray_alpha);
	RUN(test_rgba);
	RUN(test_rgba16);
	RUN(test_palette_without_trns);
	RUN(test_palette_with_trns);
	RUN(test_color_key_trns);
	RUN(test_interlaced_adam7);
	RUN(test_composite_math);
	RUN(test_keep_alpha_is_exact);
	RUN(test_truncated_png);
	RUN(test_corrupt_crc);
	RUN(test_corrupt_idat_data);
	RUN(test_bad_ancillary_chunk_is_quiet);
	RUN(test_not_an_image);
	RUN(test_zero_size_png);
	RUN(test_huge_claimed_dimensions);
	RUN(test_pnm_p5_p6);
	RUN(test_pnm_maxval_scaling);
	RUN(test_pnm_bad_headers);
	RUN(test_pnm_truncated_and_out_of_range);
	RUN(test_write_read_round_trip);
	RUN(test_image_record_fields);
	RUN(test_id_from_path);
	RUN(test_sheet_fit);
	RUN(test_sheet_dimensions);
	RUN(test_sheet_limits);
	RUN(test_sheet_scaling_and_alpha);
	RUN(test_sheet_captions);
	RUN(test_font);
	TEST_EXIT();
}
