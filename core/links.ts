/**
 * The links data moves over: host to GPU, GPU to host, disk reads and disk writes. Each is one stream
 * (a copy engine, an I/O queue) that serves one transfer at a time; every link is also a resource
 * (resources.ts).
 */
export const LINKS = ["h2d", "d2h", "diskRead", "diskWrite"] as const;
export type Link = (typeof LINKS)[number];
