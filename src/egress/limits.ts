import type { EgressRules } from './rules.ts';

// Per-session limits: concurrent connections, total bytes sent out (an exfiltration
// tripwire) and requests per rolling minute. One instance per gateway (= per session).

export interface LimitHit {
  rule: string;
  reason: string;
}

export class SessionLimits {
  readonly max: EgressRules['limits'];
  active = 0;
  uploaded = 0;
  private stamps: number[] = [];
  private head = 0;
  tripped = false;

  constructor(max: EgressRules['limits']) {
    this.max = max;
  }

  /** Called for each new request or tunnel; a hit means refuse it. */
  admit(now = Date.now()): LimitHit | null {
    if (this.tripped || this.uploaded >= this.max.maxUploadBytes) {
      return {
        rule: 'egress.limits.maxUploadBytes',
        reason: `session upload limit of ${this.max.maxUploadBytes} bytes reached; no more requests`,
      };
    }
    if (this.active >= this.max.maxConnections) {
      return {
        rule: 'egress.limits.maxConnections',
        reason: `${this.active} connections open; the limit is ${this.max.maxConnections}`,
      };
    }
    while (this.head < this.stamps.length && this.stamps[this.head]! <= now - 60_000) this.head++;
    if (this.head > 4096) {
      this.stamps = this.stamps.slice(this.head);
      this.head = 0;
    }
    if (this.stamps.length - this.head >= this.max.requestsPerMinute) {
      return {
        rule: 'egress.limits.requestsPerMinute',
        reason: `more than ${this.max.requestsPerMinute} requests in the last minute`,
      };
    }
    this.stamps.push(now);
    return null;
  }

  /** Counts bytes going out; returns a hit when this chunk crosses the upload limit. */
  upload(n: number): LimitHit | null {
    this.uploaded += n;
    if (this.uploaded > this.max.maxUploadBytes) {
      this.tripped = true;
      return {
        rule: 'egress.limits.maxUploadBytes',
        reason: `session sent ${this.uploaded} bytes; the limit is ${this.max.maxUploadBytes}`,
      };
    }
    return null;
  }
}
