/** "1 chart", "3 charts": a count with its noun in the number it agrees with. */
export function counted(count: number, singular: string, plural = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : plural}`;
}
