// Small encoders for the input tests: BMP and GIF written by hand (Chromium's canvas encodes
// only PNG, JPEG and WebP), and an EXIF orientation put into a JPEG.

/** A 24-bit uncompressed BMP (bottom-up rows, each padded to 4 bytes). */
export function bmp(width, height, pixel) {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const out = Buffer.alloc(54 + stride * height);
  out.write('BM', 0, 'ascii');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(stride * height, 34);
  for (let y = 0; y < height; y++) {
    const row = 54 + (height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      out[row + 3 * x] = b; out[row + 3 * x + 1] = g; out[row + 3 * x + 2] = r;
    }
  }
  return out;
}

/**
 * A GIF of gray levels (a 256-entry gray palette; `gray(x, y)` → 0–255). The LZW stream sends a
 * clear code before every 254 pixels, so every code is a literal 9 bits wide — valid, uncompressed.
 */
export function grayGif(width, height, gray) {
  const palette = Buffer.alloc(256 * 3);
  for (let i = 0; i < 256; i++) palette.fill(i, 3 * i, 3 * i + 3);
  const head = Buffer.alloc(13);
  head.write('GIF89a', 0, 'ascii');
  head.writeUInt16LE(width, 6);
  head.writeUInt16LE(height, 8);
  head[10] = 0xf7; // global palette of 2^(7+1) entries
  const descriptor = Buffer.alloc(10);
  descriptor[0] = 0x2c;
  descriptor.writeUInt16LE(width, 5);
  descriptor.writeUInt16LE(height, 7);
  const CLEAR = 256, END = 257;
  const codes = [];
  for (let i = 0; i < width * height; i++) {
    if (i % 254 === 0) codes.push(CLEAR);
    codes.push(gray(i % width, Math.floor(i / width)));
  }
  codes.push(END);
  const packed = [];
  let bits = 0, held = 0;
  for (const code of codes) {
    held |= code << bits;
    bits += 9;
    while (bits >= 8) { packed.push(held & 0xff); held >>= 8; bits -= 8; }
  }
  if (bits > 0) packed.push(held & 0xff);
  const blocks = [];
  for (let o = 0; o < packed.length; o += 255) {
    const part = packed.slice(o, o + 255);
    blocks.push(Buffer.from([part.length, ...part]));
  }
  return Buffer.concat([head, palette, descriptor, Buffer.from([8]), ...blocks, Buffer.from([0, 0x3b])]);
}

/** `jpeg` with an EXIF segment saying orientation `orientation` (6: rotate 90° clockwise to show). */
export function withExifOrientation(jpeg, orientation) {
  const tiff = Buffer.alloc(26);
  tiff.write('MM', 0, 'ascii');
  tiff.writeUInt16BE(42, 2);
  tiff.writeUInt32BE(8, 4); // first IFD
  tiff.writeUInt16BE(1, 8); // one entry
  tiff.writeUInt16BE(0x0112, 10); // Orientation
  tiff.writeUInt16BE(3, 12); // SHORT
  tiff.writeUInt32BE(1, 14);
  tiff.writeUInt16BE(orientation, 18);
  tiff.writeUInt32BE(0, 22); // no next IFD
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'binary'), tiff]);
  const segment = Buffer.alloc(4);
  segment[0] = 0xff; segment[1] = 0xe1;
  segment.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), segment, payload, jpeg.subarray(2)]);
}
