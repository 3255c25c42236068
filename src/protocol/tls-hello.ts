// A TLS client on a plain listener: its ClientHello would read as lines of
// junk, or as a broken auth set. worker/client.ts closes such a connection at
// once, so that the client fails its handshake now rather than on a timeout.

/**
 * Whether buf[pos, end) starts a TLS record carrying a handshake (a
 * ClientHello): 0x16, then the record version 3.0 to 3.4. No memcached command
 * starts so; one byte alone is not enough to tell (memcached answers a stray
 * 0x16 as a line of junk).
 */
export function isTlsHello(buf: Uint8Array, pos: number, end: number): boolean {
  return end - pos >= 3 && buf[pos] === 0x16 && buf[pos + 1] === 0x03 && buf[pos + 2]! <= 0x04;
}
