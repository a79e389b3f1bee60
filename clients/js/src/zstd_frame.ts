// The decompressed size a zstd frame declares (RFC 8878 §3.1.1.1), read before
// decompressing so that an over-limit payload is refused without inflating it.
/** The frame's content size, or -1 when the frame does not say (or is not zstd). */
export function zstdContentSize(b: Uint8Array): number {
  if (b.length < 5 || b[0] !== 0x28 || b[1] !== 0xb5 || b[2] !== 0x2f || b[3] !== 0xfd) return -1;
  const fhd = b[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const didFlag = fhd & 3;
  let off = 5 + (single ? 0 : 1) + [0, 1, 2, 4][didFlag]!;
  const fcsSize = [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (fcsSize === 0 || b.length < off + fcsSize) return -1;
  let v = 0;
  for (let i = fcsSize - 1; i >= 0; --i) v = v * 256 + b[off + i]!;
  return fcsSize === 2 ? v + 256 : v;
}
