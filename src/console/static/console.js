// The console's only script (served from /static; the CSP allows no inline script).
// It counts down "ask" deadlines and follows live views over Server-Sent Events.
// Everything it writes into the page is set as text, never as markup.
/* global URLSearchParams, setTimeout, performance */
'use strict';

function countdowns() {
  for (const el of document.querySelectorAll('.countdown[data-expires]')) {
    const left = Math.round((Date.parse(el.dataset.expires) - Date.now()) / 1000);
    el.textContent = left > 0 ? `${left}s left` : 'expired (denied)';
  }
}

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text;
  row.appendChild(td);
}

function appendEvent(table, e) {
  const body = table.tBodies[0];
  if (!body || body.querySelector(`tr[data-seq="${Number(e.seq)}"]`)) return;
  const row = document.createElement('tr');
  row.dataset.seq = String(e.seq);
  row.className = `sev-${String(e.severity).replace(/[^a-z]/g, '')}`;
  for (const v of [e.seq, e.ts, e.type, e.severity, e.decision, e.rule, e.what]) cell(row, String(v));
  row.lastChild.className = 'what';
  body.appendChild(row);
  if (e.type === 'session.paused' || e.type === 'session.resumed' || e.type === 'session.stop') {
    const state = document.getElementById('session-state');
    if (state)
      state.textContent = e.type === 'session.paused' ? 'paused' : e.type === 'session.resumed' ? 'running' : 'stopped';
  }
}

function follow() {
  const live = document.querySelector('[data-stream]');
  if (live) {
    const table = document.getElementById(live.dataset.target);
    const source = new EventSource(live.dataset.stream);
    source.addEventListener('audit', (m) => appendEvent(table, JSON.parse(m.data)));
  }
  const reload = document.querySelector('[data-reload-on]');
  if (reload) {
    const query = new URLSearchParams({
      type: reload.dataset.reloadOn,
      after: String(Number(reload.dataset.after) || 0),
    });
    if (reload.dataset.shared) {
      query.set('shared', reload.dataset.shared);
      query.set('sharedAfter', String(Number(reload.dataset.sharedAfter) || 0));
    }
    const source = new EventSource(`/stream?${query}`);
    // a form being submitted navigates anyway: a reload now would drop its answer (a proposal's page)
    let submitting = false;
    document.addEventListener('submit', () => {
      submitting = true;
      source.close();
    });
    // this host's events, or another host's change heard on the shared store: read the page again,
    // at most every 2 s (any host may notify at will)
    const again = () => {
      source.close();
      setTimeout(() => submitting || location.reload(), Math.max(0, 2000 - performance.now()));
    };
    source.addEventListener('audit', again);
    source.addEventListener('shared', again);
  }
}

countdowns();
setInterval(countdowns, 1000);
follow();
