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

// Arrow keys in the gallery grid: which card gets focus, from the cards' boxes as laid out
// (rects in DOM order: {left, top, width, height}). Left/Right: previous/next; Up/Down: the card
// in the row above/below whose centre is nearest; Home/End: first/last. null: not a grid key.
const ImgEditGrid = (() => {
  const centre = (r) => r.left + r.width / 2;
  const rowTarget = (rects, index, below) => {
    const here = rects[index];
    const middle = here.top + here.height / 2;
    const candidates = rects
      .map((r, i) => ({ r, i }))
      .filter(({ r }) => (below ? r.top > middle : r.top + r.height < middle));
    if (!candidates.length) return index;
    const rowTop = below
      ? Math.min(...candidates.map(({ r }) => r.top))
      : Math.max(...candidates.map(({ r }) => r.top));
    const row = candidates.filter(({ r }) => Math.abs(r.top - rowTop) < r.height / 2);
    const x = centre(here);
    row.sort((a, b) => Math.abs(centre(a.r) - x) - Math.abs(centre(b.r) - x) || a.i - b.i);
    return row[0].i;
  };
  const target = (rects, index, key) => {
    const last = rects.length - 1;
    if (last < 0 || index < 0 || index > last) return null;
    switch (key) {
      case 'ArrowLeft': return Math.max(index - 1, 0);
      case 'ArrowRight': return Math.min(index + 1, last);
      case 'Home': return 0;
      case 'End': return last;
      case 'ArrowUp': return rowTarget(rects, index, false);
      case 'ArrowDown': return rowTarget(rects, index, true);
      default: return null;
    }
  };
  return { target };
})();
ImgEditEta.gridTarget = ImgEditGrid.target;

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
      // The track draws its bar from --ie-bar (imgedit.css); screen readers read its value from
      // aria-valuenow (role=progressbar).
      for (const track of card.querySelectorAll('[role="progressbar"]')) {
        track.style.setProperty('--ie-bar', (p * 100).toFixed(1) + '%');
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

    // The server's small per-tick changes (imgedit/ui/patch.py): [[element id, key, value, key,
    // value, ...], ...], key '@text' for the element's text, a null value removes a prop. They are
    // written into the
    // element store NiceGUI's own updates replace (mounted_app, from nicegui.js), so Vue redraws
    // exactly as after a full update; then the cards are advanced from their new data at once.
    window.imgeditPatch = (ops) => {
      const store = typeof mounted_app !== 'undefined' && mounted_app ? mounted_app.elements : null;
      if (!store) return;
      for (const [id, ...changes] of ops) {
        const element = store[id];
        if (!element) continue; // gone meanwhile (its card was dropped)
        for (let i = 0; i < changes.length; i += 2) {
          const key = changes[i], value = changes[i + 1];
          if (key === '@text') element.text = value;
          else if (value === null) delete element.props[key];
          else element.props[key] = value;
        }
      }
      mounted_app.$nextTick(tick);
    };

    // One delegated listener for every image card, present and future (cards come and go).
    document.addEventListener('keydown', (event) => {
      const card = event.target instanceof Element ? event.target.closest('.imgedit-image-card') : null;
      if (!card || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
      const grid = card.closest('.imgedit-gallery');
      if (!grid) return;
      const cards = [...grid.querySelectorAll('.imgedit-image-card')].filter((c) => c.getClientRects().length);
      const rects = cards.map((c) => c.getBoundingClientRect());
      const next = ImgEditGrid.target(rects, cards.indexOf(card), event.key);
      if (next === null) return;
      event.preventDefault(); // the page does not scroll as well
      if (cards[next] !== card) cards[next].focus();
    });

    // The theme: <html data-theme> (what imgedit.css keys its colours on) follows Quasar's dark
    // mode, which the server's ui.dark_mode drives (auto follows the system). The colour-scheme
    // meta says "light dark" while the choice is auto. remember() keeps the header switch's choice.
    const html = document.documentElement;
    const syncTheme = () => {
      if (!document.body) return;
      const dark = document.body.classList.contains('body--dark');
      const choice = html.dataset.themeChoice || 'auto';
      const scheme = dark ? 'dark' : 'light';
      if (html.dataset.theme !== scheme) html.dataset.theme = scheme;
      const meta = document.getElementById('nicegui-color-scheme');
      const content = choice === 'auto' ? 'light dark' : scheme;
      if (meta && meta.getAttribute('content') !== content) meta.setAttribute('content', content);
    };
    window.imgeditTheme = {
      remember(choice) {
        if (!['auto', 'light', 'dark'].includes(choice)) return;
        document.cookie = `imgedit_theme=${choice}; path=/; max-age=31536000; SameSite=Lax`;
        html.dataset.themeChoice = choice;
        syncTheme();
      },
    };
    document.addEventListener('DOMContentLoaded', () => {
      const setDark = window.setDark; // NiceGUI's: it writes "normal" into the meta for auto
      if (typeof setDark === 'function') {
        window.setDark = (value) => {
          setDark(value);
          syncTheme();
        };
      }
      new MutationObserver(syncTheme).observe(document.body, { attributes: true, attributeFilter: ['class'] });
      syncTheme();
      for (const zone of document.querySelectorAll('.imgedit-upload')) {
        nameUploadButtons(zone);
        // Quasar redraws the add button (e.g. after an upload); only this small subtree is watched.
        new MutationObserver(() => nameUploadButtons(zone)).observe(zone, { childList: true, subtree: true });
      }
    });

    // The upload zone's file input (Quasar's, covering the zone so a click anywhere chooses files)
    // is named like the zone's button; Quasar draws it again after an upload.
    function nameUploadButtons(zone) {
      for (const input of zone.querySelectorAll('input[type=file]')) {
        if (input.getAttribute('aria-label') !== 'Choose images to upload') {
          input.setAttribute('aria-label', 'Choose images to upload');
        }
      }
    }
  })();
}
