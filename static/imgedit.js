// imgedit: advances the loading cards between server updates, so the 1-second server tick
// sends nothing for a card whose stage, reported progress or ETA did not change.
// The server owns data-stage, data-started, data-expected, data-deadline, data-progress,
// data-floor, data-milestone on each .imgedit-loading-card; this script owns the bar width, percent, elapsed
// and ETA texts. eased() mirrors imgedit/eta.py:eased_progress — keep the two in step.
(() => {
  const KNEE = 0.85, CEILING = 0.95, MAX_BEFORE_DONE = 0.99;
  const eased = (elapsed, expected) => {
    if (!(expected > 0)) return 0;
    const t = Math.max(0, elapsed / expected);
    if (t <= KNEE) return t;
    const span = CEILING - KNEE;
    return CEILING - span * Math.exp(-(t - KNEE) / span);
  };
  const clock = (seconds) => {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = h ? String(m).padStart(2, '0') : String(m);
    return (h ? h + ':' : '') + mm + ':' + String(r).padStart(2, '0');
  };
  const num = (value) => (value === undefined || value === '' ? null : Number(value));
  const put = (card, selector, text) => {
    for (const el of card.querySelectorAll(selector)) if (el.textContent !== text) el.textContent = text;
  };

  function render(card, now) {
    const d = card.dataset;
    const stage = d.stage;
    if (stage === 'failed' || stage === 'cancelled' || stage === 'completed') return;
    const started = num(d.started);
    const elapsed = started === null ? 0 : Math.max(0, (now - started) / 1000);
    const reported = num(d.progress);
    let p = 0;
    if (stage !== 'queued') {
      p = reported !== null ? reported : Math.max(eased(elapsed, num(d.expected) || 0), num(d.milestone) || 0);
      if (stage === 'finalizing') p = Math.max(p, CEILING);
    }
    p = Math.min(Math.max(p, num(d.floor) || 0, card._imgeditFloor || 0), MAX_BEFORE_DONE);
    card._imgeditFloor = p;
    const percent = Math.floor(p * 100) + '%';
    for (const bar of card.querySelectorAll('.imgedit-progress-bar')) bar.style.width = (p * 100).toFixed(1) + '%';
    put(card, '.imgedit-percent, .imgedit-big-percent', percent);
    put(card, '.imgedit-elapsed', started === null ? 'waiting' : clock(elapsed));
    const deadline = num(d.deadline);
    let eta = '';
    if (deadline !== null) {
      const left = (deadline - now) / 1000;
      eta = left >= 1 ? '≈' + clock(left) + ' left' : 'almost done';
    }
    put(card, '.imgedit-eta', eta);
  }

  function tick() {
    const now = Date.now() + (window.imgeditSkew || 0);
    document.querySelectorAll('.imgedit-loading-card').forEach((card) => render(card, now));
  }
  window.imgeditTick = tick;
  setInterval(tick, 500);
})();
