/* Minimal PNG writer for the examples (8-bit grey/RGB/RGBA, uncompressed deflate blocks), so
 * they need nothing beyond the C library. Header-only: static functions. */
#ifndef PNG_WRITE_H
#define PNG_WRITE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t png_crc(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void png_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int png_chunk(FILE *f, const char *type, const unsigned char *data, uint32_t n) {
    unsigned char head[8];
    png_be32(head, n);
    memcpy(head + 4, type, 4);
    uint32_t crc = png_crc(png_crc(0, head + 4, 4), data, n);
    unsigned char tail[4];
    png_be32(tail, crc);
    return fwrite(head, 1, 8, f) == 8 && (n == 0 || fwrite(data, 1, n, f) == n) && fwrite(tail, 1, 4, f) == 4;
}

/* Writes `pixels` (height rows of width * channels bytes) to `path`. Returns 0 on success. */
static int png_write(const char *path, const unsigned char *pixels, uint32_t width, uint32_t height,
                     uint32_t channels) {
    static const unsigned char color_type[5] = {0, 0, 4, 2, 6};
    if (channels < 1 || channels > 4) return -1;
    size_t row = (size_t)width * channels + 1, raw_n = row * height;
    size_t blocks = (raw_n + 65534) / 65535;
    size_t z_n = 2 + raw_n + 5 * blocks + 4;
    unsigned char *raw = (unsigned char *)malloc(raw_n), *z = (unsigned char *)malloc(z_n);
    if (!raw || !z) {
        free(raw);
        free(z);
        return -1;
    }
    for (uint32_t y = 0; y < height; y++) {
        raw[y * row] = 0; /* filter: none */
        memcpy(raw + y * row + 1, pixels + (size_t)y * (row - 1), row - 1);
    }
    size_t o = 0;
    z[o++] = 0x78;
    z[o++] = 0x01;
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < raw_n; i += 65535) {
        size_t n = raw_n - i < 65535 ? raw_n - i : 65535;
        z[o++] = i + n == raw_n; /* BFINAL, stored */
        z[o++] = (unsigned char)n;
        z[o++] = (unsigned char)(n >> 8);
        z[o++] = (unsigned char)~n;
        z[o++] = (unsigned char)(~n >> 8);
        memcpy(z + o, raw + i, n);
        o += n;
    }
    for (size_t i = 0; i < raw_n; i++) {
        a = (a + raw[i]) % 65521;
        b = (b + a) % 65521;
    }
    png_be32(z + o, (b << 16) | a);
    o += 4;
    unsigned char ihdr[13];
    png_be32(ihdr, width);
    png_be32(ihdr + 4, height);
    ihdr[8] = 8;
    ihdr[9] = color_type[channels];
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite("\x89PNG\r\n\x1a\n", 1, 8, f) == 8 && png_chunk(f, "IHDR", ihdr, 13) &&
             png_chunk(f, "IDAT", z, (uint32_t)o) && png_chunk(f, "IEND", NULL, 0);
    if (f && fclose(f) != 0) ok = 0;
    free(raw);
    free(z);
    return ok ? 0 : -1;
}

/* Lays `count` images of size x size x channels out in a grid of `cols` columns. */
static unsigned char *png_grid(const unsigned char *images, uint32_t count, uint32_t size, uint32_t channels,
                               uint32_t cols, uint32_t *width, uint32_t *height) {
    uint32_t rows = (count + cols - 1) / cols;
    *width = cols * size;
    *height = rows * size;
    unsigned char *g = (unsigned char *)calloc((size_t)*width * *height * channels, 1);
    if (!g) return NULL;
    for (uint32_t i = 0; i < count; i++)
        for (uint32_t y = 0; y < size; y++)
            memcpy(g + (((size_t)(i / cols) * size + y) * *width + (size_t)(i % cols) * size) * channels,
                   images + ((size_t)i * size + y) * size * channels, (size_t)size * channels);
    return g;
}

#endif
