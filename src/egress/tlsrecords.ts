// A tunnel granted for https must carry TLS, not a ClientHello followed by anything else.
// This follows the record layer of one direction (RFC 8446 §5.1, RFC 5246 §6.2): every
// record has a known content type, a TLS 1.x record version and a length within the
// limits; the payload itself is opaque (it is ciphertext). A framing error names itself.

const MAX_RECORD = (1 << 14) + 2048; // TLSCiphertext limit of TLS 1.2 (1.3 is lower)
const TYPES = new Set([20, 21, 22, 23]); // change_cipher_spec, alert, handshake, application_data

export class TlsRecordStream {
  private header = Buffer.alloc(0);
  private remaining = 0;
  /** Bytes seen that were valid records. */
  bytes = 0;
  /** An application_data record was seen (the handshake is done as far as framing tells). */
  applicationData = false;

  /** Feeds bytes; returns why they are not TLS records, or null. */
  push(chunk: Buffer): string | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - i);
        this.remaining -= n;
        i += n;
        continue;
      }
      const need = 5 - this.header.length;
      const take = chunk.subarray(i, i + need);
      this.header = this.header.length ? Buffer.concat([this.header, take]) : Buffer.from(take);
      i += take.length;
      if (this.header.length < 5) break;
      const [type, major, minor] = [this.header[0]!, this.header[1]!, this.header[2]!];
      const len = this.header.readUInt16BE(3);
      this.header = Buffer.alloc(0);
      if (!TYPES.has(type)) return `record type ${type} is not TLS`;
      if (major !== 3 || minor < 1 || minor > 4) return `record version ${major}.${minor} is not TLS 1.x`;
      if (len > MAX_RECORD || (len === 0 && type !== 23)) return `record length ${len} is out of range`;
      if (type === 23) this.applicationData = true;
      this.remaining = len;
    }
    this.bytes += chunk.length;
    return null;
  }
}
