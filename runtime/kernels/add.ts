/** dst += src element-wise: the residual connections around attention and the FFN. */
export function addInPlace(dst: Float32Array, src: Float32Array): void {
  const length = dst.length;
  if (src.length !== length) throw new RangeError(`addInPlace: lengths differ (${length} and ${src.length})`);
  for (let i = 0; i < length; i++) dst[i] = dst[i]! + src[i]!;
}
