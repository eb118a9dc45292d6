import { sign, verify, type KeyObject } from 'node:crypto';
import { keyId, type SigningKey } from '../audit/index.ts';

// DSSE (Dead Simple Signing Envelope, secure-systems-lab/dsse v1): the signature covers
// PAE(payloadType, payload), never the JSON around it, so re-encoding the envelope cannot
// change what was signed. Ed25519 through node:crypto. PAE is five lines of the spec; the
// npm DSSE packages (@sigstore/*) pull in the whole Sigstore client for it.

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

export interface DsseSignature {
  keyid: string;
  sig: string;
}
export interface DsseEnvelope {
  payloadType: string;
  payload: string;
  signatures: DsseSignature[];
}

/** Pre-Authentication Encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body (lengths in bytes, ASCII decimal). */
export function pae(payloadType: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${body.length} `), body]);
}

export function signEnvelope(payload: Buffer, payloadType: string, key: SigningKey): DsseEnvelope {
  const sig = sign(null, pae(payloadType, payload), key.privateKey).toString('base64');
  return { payloadType, payload: payload.toString('base64'), signatures: [{ keyid: key.keyId, sig }] };
}

export interface EnvelopeCheck {
  ok: boolean;
  reason: string;
}

/** Verifies a DSSE envelope with one public key; the keyid is only a hint, every signature is tried. */
export function verifyEnvelope(env: DsseEnvelope, pub: KeyObject): EnvelopeCheck {
  const want = keyId(pub);
  const body = Buffer.from(env.payload, 'base64');
  const signed = pae(env.payloadType, body);
  const sigs = Array.isArray(env.signatures) ? env.signatures : [];
  for (const s of sigs) {
    try {
      if (typeof s?.sig === 'string' && verify(null, signed, pub, Buffer.from(s.sig, 'base64')))
        return { ok: true, reason: `DSSE signature by key ${want} verifies` };
    } catch {
      /* malformed: next */
    }
  }
  if (!sigs.length) return { ok: false, reason: 'the envelope carries no signature' };
  const ids = sigs.map((s) => String(s?.keyid ?? '?').slice(0, 64));
  if (!ids.includes(want))
    return {
      ok: false,
      reason: `wrong key: the envelope is signed by key ${ids.join(', ')}, not by the given key ${want}`,
    };
  return {
    ok: false,
    reason: `envelope edited: the signature of key ${want} does not verify over the payload (its payload, payload type or signature was altered)`,
  };
}
