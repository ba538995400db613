// imgedit: advances the loading cards between server updates, so the 1-second server tick
// sends nothing for a card whose stage, reported progress or projection did not change.
// The server owns data-stage, data-started, data-expected (projected running time, s),
// data-deadline (projected finish, ms), data-progress, data-floor, data-milestone on each
// .imgedit-loading-card; this script owns the bar width, percent, elapsed and ETA texts.
// The pure part mirrors imgedit/eta.py (eased_progress, shown_progress) and imgedit/ui/format.py
// (clock, eta_phrase); tests/test_eta_parity.py runs both on the same inputs under node.
const ImgEditEta = (() => {
  const KNEE = 0.85, CEILING = 0.95, MAX_BEFORE_DONE = 0.99, ALMOST_DONE = 0.85;
  const FINISHED = ['completed', 'failed', 'cancelled', 'interrupted'];
  const WAITING = ['queued', 'starting', 'waiting'];

  const eased = (elapsed, expected) => {
    if (!(expected > 0)) return 0;
    const t = Math.max(0, elapsed / expected);
    if (t <= KNEE) return t;
    const span = CEILING - KNEE;
    return CEILING - span * Math.exp(-(t - KNEE) / span);
  };

  // The bar of a running job: reported progress wins, else the estimate with milestones as floors.
  const shownProgress = (elapsed, expected, reported, milestone, floor, finalizing) => {
    let p = reported !== null ? reported : Math.max(eased(elapsed, expected), milestone || 0);
    if (finalizing) p = Math.max(p, CEILING);
    return Math.min(Math.max(floor || 0, p), MAX_BEFORE_DONE);
  };

  const clock = (seconds) => {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = h ? String(m).padStart(2, '0') : String(m);
    return (h ? h + ':' : '') + mm + ':' + String(r).padStart(2, '0');
  };

  // "almost done" only near the end of a running job; past the projection "a little longer".
  const etaText = (stage, left, progress) => {
    if (left === null || FINISHED.includes(stage)) return '';
    if (left >= 1 || WAITING.includes(stage)) return '≈' + clock(Math.max(left, 1)) + ' left';
    if (stage === 'finalizing' || (left > 0 && progress >= ALMOST_DONE)) return 'almost done';
    return 'a little longer';
  };

  return { KNEE, CEILING, MAX_BEFORE_DONE, ALMOST_DONE, eased, shownProgress, clock, etaText };
})();

if (typeof module !== 'undefined' && module.exports) module.exports = ImgEditEta;

if (typeof window !== 'undefined') {
  (() => {
    const { shownProgress, clock, etaText } = ImgEditEta;
    const num = (value) => (value === undefined || value === '' ? null : Number(value));
    const put = (card, selector, text) => {
      for (const el of card.querySelectorAll(selector)) if (el.textContent !== text) el.textContent = text;
    };

    function render(card, now) {
      const d = card.dataset;
      const stage = d.stage;
      if (stage === 'failed' || stage === 'cancelled' || stage === 'completed' || stage === 'interrupted') return;
      const started = num(d.started);
      const elapsed = started === null ? 0 : Math.max(0, (now - started) / 1000);
      const running = stage === 'initializing' || stage === 'processing' || stage === 'finalizing';
      const p = running
        ? shownProgress(elapsed, num(d.expected) || 0, num(d.progress), num(d.milestone),
          Math.max(num(d.floor) || 0, card._imgeditFloor || 0), stage === 'finalizing')
        : 0;
      card._imgeditFloor = p;
      const percent = Math.floor(p * 100) + '%';
      for (const bar of card.querySelectorAll('.imgedit-progress-bar')) bar.style.width = (p * 100).toFixed(1) + '%';
      // Screen readers read the bar's value from here (role=progressbar on its track).
      for (const track of card.querySelectorAll('[role="progressbar"]')) {
        if (track.getAttribute('aria-valuenow') !== String(Math.floor(p * 100))) {
          track.setAttribute('aria-valuenow', String(Math.floor(p * 100)));
        }
      }
      put(card, '.imgedit-percent, .imgedit-big-percent', percent);
      put(card, '.imgedit-elapsed', started !== null ? clock(elapsed) : stage === 'starting' ? '0:00' : 'waiting');
      const deadline = num(d.deadline);
      put(card, '.imgedit-eta', etaText(stage, deadline === null ? null : Math.max((deadline - now) / 1000, 0), p));
    }

    function tick() {
      const now = Date.now() + (window.imgeditSkew || 0);
      document.querySelectorAll('.imgedit-loading-card').forEach((card) => render(card, now));
    }
    window.imgeditTick = tick;
    setInterval(tick, 500);
  })();
}
