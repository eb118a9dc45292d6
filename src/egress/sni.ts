// TLS ClientHello reader: finds the SNI in the first bytes a client sends through a
// tunnel, across TLS records and TCP segments, without decrypting anything.

export type HelloResult =
  { status: 'more' } | { status: 'not-tls' } | { status: 'bad'; why: string } | { status: 'ok'; sni: string | null };

export const MAX_HELLO_BYTES = 64 * 1024;

export function parseClientHello(buf: Buffer): HelloResult {
  if (buf.length === 0) return { status: 'more' };
  if (buf[0] !== 0x16) return { status: 'not-tls' };
  // gather the handshake bytes from consecutive handshake records
  const parts: Buffer[] = [];
  let off = 0;
  let have = 0;
  let need = -1;
  while (true) {
    if (buf.length < off + 5)
      return buf.length >= MAX_HELLO_BYTES ? { status: 'bad', why: 'ClientHello too large' } : { status: 'more' };
    if (buf[off] !== 0x16) return { status: 'bad', why: 'non-handshake record before the ClientHello ended' };
    if (buf[off + 1] !== 0x03) return { status: 'bad', why: 'unknown TLS record version' };
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384 + 2048) return { status: 'bad', why: 'bad TLS record length' };
    if (buf.length < off + 5 + len)
      return off + 5 + len > MAX_HELLO_BYTES ? { status: 'bad', why: 'ClientHello too large' } : { status: 'more' };
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const hs = Buffer.concat(parts);
      if (hs[0] !== 0x01) return { status: 'bad', why: 'first handshake message is not a ClientHello' };
      need = 4 + hs.readUIntBE(1, 3);
      if (need > MAX_HELLO_BYTES) return { status: 'bad', why: 'ClientHello too large' };
    }
    if (need >= 0 && have >= need) break;
  }
  const hs = Buffer.concat(parts).subarray(4, need);
  try {
    return { status: 'ok', sni: readSni(hs) };
  } catch (e) {
    return { status: 'bad', why: e instanceof Error ? e.message : 'malformed ClientHello' };
  }
}

function readSni(hello: Buffer): string | null {
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > hello.length) throw new Error('truncated ClientHello');
  };
  need(2 + 32);
  pos += 2 + 32; // client_version, random
  need(1);
  pos += 1 + hello[pos]!; // session id
  need(2);
  pos += 2 + hello.readUInt16BE(pos); // cipher suites
  need(1);
  pos += 1 + hello[pos]!; // compression methods
  if (pos === hello.length) return null; // no extensions
  need(2);
  const end = pos + 2 + hello.readUInt16BE(pos);
  pos += 2;
  if (end > hello.length) throw new Error('truncated extensions');
  let sni: string | null = null;
  let seen = false;
  while (pos < end) {
    need(4);
    const type = hello.readUInt16BE(pos);
    const len = hello.readUInt16BE(pos + 2);
    pos += 4;
    need(len);
    if (type === 0) {
      if (seen) throw new Error('duplicate server_name extension');
      seen = true;
      const ext = hello.subarray(pos, pos + len);
      if (ext.length < 2) throw new Error('bad server_name');
      const listEnd = 2 + ext.readUInt16BE(0);
      if (listEnd > ext.length) throw new Error('bad server_name list');
      let q = 2;
      while (q < listEnd) {
        if (q + 3 > listEnd) throw new Error('bad server_name entry');
        const nt = ext[q]!;
        const nl = ext.readUInt16BE(q + 1);
        q += 3;
        if (q + nl > listEnd) throw new Error('bad server_name entry');
        if (nt === 0) {
          if (sni !== null) throw new Error('several host names in server_name');
          sni = ext.subarray(q, q + nl).toString('latin1');
        }
        q += nl;
      }
    }
    pos += len;
  }
  return sni;
}

/** A fatal TLS alert (access_denied) so a TLS client reports a clean failure. */
export const TLS_ACCESS_DENIED_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]);
