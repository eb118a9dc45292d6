// Readings of request text (URL, headers) a server may apply before it acts on it: a value
// hidden behind percent-encoding, double encoding or '+' is still the value.

/** Decodes every valid %XX (invalid escapes stay as they are: one bad escape must not hide the rest). */
export function lenientDecode(s: string): string {
  return s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (m) => Buffer.from(m.replace(/%/g, ''), 'hex').toString('latin1'));
}

/** The readings of URL or header text a server may apply: raw, %-decoded (twice, for double encoding), '+' as space. */
export function textViews(text: string): string[] {
  const once = lenientDecode(text);
  const twice = lenientDecode(once);
  return [...new Set([text, once, twice, lenientDecode(text.replace(/\+/g, ' '))])];
}
