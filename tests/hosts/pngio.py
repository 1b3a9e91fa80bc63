"""A small PNG reader for the host tests (8-bit grey, grey+alpha, RGB and RGBA, not interlaced),
so the tests compare exactly what a host wrote without an imaging library."""

import struct
import zlib
from pathlib import Path

import numpy as np

CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}


def read_png(path: Path) -> np.ndarray:
    """The PNG at `path` as (H, W, C) uint8."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    w, h, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in CHANNELS and interlace == 0, f"{path}: unsupported PNG {header}"
    bpp = CHANNELS[colour]
    stride = w * bpp
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), np.int32)
    for y in range(h):
        kind, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        up = out[y - 1] if y else np.zeros(stride, np.int32)
        if kind == 0:
            out[y] = row
        elif kind == 2:
            out[y] = (row + up) & 0xFF
        else:  # Sub, Average and Paeth depend on the pixel to the left: one pixel at a time
            cur = np.zeros(stride, np.int32)
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                b = up[x]
                c = up[x - bpp] if x >= bpp else 0
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (row[x] + pred) & 0xFF
            out[y] = cur
    return out.astype(np.uint8).reshape(h, w, bpp)


def write_png(path: Path, pixels: np.ndarray):
    """An (H, W, 4) uint8 array as an 8-bit RGBA PNG."""
    h, w, c = pixels.shape
    assert c == 4 and pixels.dtype == np.uint8
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
                          + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
