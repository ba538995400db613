// imgedit: zoom and pan in the full-size viewer, and the arrow keys of the image dialogs.
// Plain JS, no library. The viewer's <img> is laid out to fit its stage (imgedit.css); zoom and
// pan are one CSS transform on it, translate(x, y) scale(s) around its centre, where s = 1 is
// "Fit". The level shown is the picture's own pixels: "200 %" means two screen pixels per pixel.
//
// Nothing here listens on the document: imgedit/ui/dialogs.py hands the events of its elements
// to these functions (NiceGUI js_handlers), so they come and go with the dialogs.
//   key(e) -> -1 | 1 | 0     a dialog's keydown: ArrowLeft / ArrowRight give -1 / +1 for the
//                            server (newer / older); + / - / 0 zoom here, in the viewer
//   zoom(e, 'in' | 'out' | 'fit')   the viewer's buttons
//   wheel, pointerdown, pointermove, pointerup, pointercancel, dblclick   the stage's gestures:
//                            wheel or pinch zooms around the cursor, drag pans, double-click
//                            toggles Fit / 100 %, a swipe (touch, at Fit) moves to the neighbour
//   loaded(e)                the picture changed: back to Fit
//   focusCard(id)            the gallery card of image ``id`` gets the keyboard focus
(() => {
  'use strict';
  const MOST = 8; // 800 % of the picture's pixels (or 8 × Fit for a picture smaller than the stage)
  const LEVELS = [0.1, 0.25, 1 / 3, 0.5, 2 / 3, 1, 1.5, 2, 3, 4, 6, 8]; // what + and - step through
  const WHEEL = 0.002; // per pixel of wheel travel; a trackpad pinch (ctrlKey) moves in small steps
  const PINCH_WHEEL = 0.01;
  const SWIPE = 60; // px of horizontal travel that make a swipe
  const states = new WeakMap(); // stage -> {s, x, y, src, pointers, last, swipe}

  const stageOf = (node) => (node instanceof Element ? node.closest('.imgedit-viewer-stage') : null);
  const pictureOf = (stage) => stage && stage.querySelector('img:not(.imgedit-prefetch)');

  function state(stage) {
    let st = states.get(stage);
    if (!st) {
      st = { s: 1, x: 0, y: 0, src: null, pointers: new Map(), last: null, swipe: null };
      states.set(stage, st);
    }
    return st;
  }

  // The picture's size at Fit (its layout box; the transform does not change it) and its own size.
  function sizes(stage) {
    const img = pictureOf(stage);
    if (!img || !img.offsetWidth || !img.naturalWidth) return null;
    return { img, w: img.offsetWidth, h: img.offsetHeight, natural: img.naturalWidth / img.offsetWidth };
  }

  const most = (z) => Math.max(1, MOST * z.natural);

  // Keep the picture over the stage: a side larger than the stage cannot leave a gap at its
  // edge; a side smaller than the stage stays centred.
  function clamp(stage, st, z) {
    const box = stage.getBoundingClientRect();
    const spareX = Math.max(0, (z.w * st.s - box.width) / 2);
    const spareY = Math.max(0, (z.h * st.s - box.height) / 2);
    st.x = Math.min(spareX, Math.max(-spareX, st.x));
    st.y = Math.min(spareY, Math.max(-spareY, st.y));
  }

  function render(stage, st, animate) {
    const z = sizes(stage);
    const img = pictureOf(stage);
    if (!img) return;
    const fit = st.s <= 1.0001;
    if (fit) {
      st.s = 1;
      st.x = 0;
      st.y = 0;
    } else if (z) {
      clamp(stage, st, z);
    }
    img.style.transition = animate ? '' : 'none';
    img.style.transform = fit ? '' : `translate(${st.x}px, ${st.y}px) scale(${st.s})`;
    stage.classList.toggle('imgedit-zoomed', !fit);
    const viewer = stage.closest('.imgedit-viewer');
    const label = viewer && viewer.querySelector('.imgedit-zoom-level');
    const text = fit || !z ? 'Fit' : `${Math.round(st.s * 100 / z.natural)} %`;
    if (label && label.textContent !== text) label.textContent = text;
  }

  // Zoom to scale ``s`` keeping the point (cx, cy) of the screen where it is (default: the
  // stage's centre).
  function zoomTo(stage, s, cx, cy, animate) {
    const z = sizes(stage);
    if (!z) return;
    const st = state(stage);
    const next = Math.min(most(z), Math.max(1, s));
    const box = stage.getBoundingClientRect();
    const px = (cx === undefined ? box.left + box.width / 2 : cx) - (box.left + box.width / 2);
    const py = (cy === undefined ? box.top + box.height / 2 : cy) - (box.top + box.height / 2);
    st.x = px - (next / st.s) * (px - st.x);
    st.y = py - (next / st.s) * (py - st.y);
    st.s = next;
    render(stage, st, animate);
  }

  // + and -: the next level of the picture's own pixels above or below the one shown.
  function stepZoom(stage, direction) {
    const z = sizes(stage);
    if (!z) return;
    const st = state(stage);
    const shown = st.s / z.natural;
    const fitLevel = 1 / z.natural;
    // A level within a tenth of the one shown is no step (Fit at 49 % goes to 67 %, not 50 %).
    const candidates = LEVELS.filter((l) => (direction > 0 ? l > shown * 1.1 : l < shown / 1.1));
    let level = direction > 0 ? candidates[0] : candidates[candidates.length - 1];
    if (level === undefined) level = direction > 0 ? MOST : fitLevel;
    if (direction < 0 && level < fitLevel) level = fitLevel;
    zoomTo(stage, level * z.natural, undefined, undefined, true);
  }

  function fit(stage) {
    const st = state(stage);
    st.s = 1;
    render(stage, st, true);
  }

  const typing = (node) =>
    node instanceof Element && !!node.closest('input, textarea, select, [contenteditable]:not([contenteditable="false"])');

  const onControl = (event) => event.target instanceof Element && !!event.target.closest('button, .q-btn, a');

  const api = {
    key(event) {
      if (event.defaultPrevented || event.isComposing || typing(event.target)) return 0;
      if (event.ctrlKey || event.metaKey || event.altKey) return 0;
      if (event.key === 'ArrowLeft' || event.key === 'ArrowRight') {
        if (event.shiftKey) return 0;
        event.preventDefault();
        return event.key === 'ArrowLeft' ? -1 : 1;
      }
      const root = event.currentTarget instanceof Element ? event.currentTarget : null;
      const stage = root && root.querySelector('.imgedit-viewer-stage');
      if (!stage) return 0;
      if (event.key === '+' || event.key === '=') stepZoom(stage, 1);
      else if (event.key === '-' || event.key === '_') stepZoom(stage, -1);
      else if (event.key === '0') fit(stage);
      else return 0;
      event.preventDefault();
      return 0;
    },

    zoom(event, direction) {
      const viewer = event && event.currentTarget instanceof Element ? event.currentTarget.closest('.imgedit-viewer') : null;
      const stage = viewer && viewer.querySelector('.imgedit-viewer-stage');
      if (stage && direction === 'fit') fit(stage);
      else if (stage) stepZoom(stage, direction === 'in' ? 1 : -1);
    },

    wheel(event) {
      const stage = stageOf(event.currentTarget);
      if (!stage || onControl(event)) return;
      event.preventDefault(); // the page behind does not scroll
      const st = state(stage);
      const lines = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
      const factor = Math.exp(-event.deltaY * lines * (event.ctrlKey ? PINCH_WHEEL : WHEEL));
      zoomTo(stage, st.s * factor, event.clientX, event.clientY, false);
    },

    pointerdown(event) {
      const stage = stageOf(event.currentTarget);
      if (!stage || onControl(event) || (event.pointerType === 'mouse' && event.button !== 0)) return;
      const st = state(stage);
      st.pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      st.last = null;
      st.swipe = st.pointers.size === 1 && st.s === 1 ? { x: event.clientX, y: event.clientY } : null;
      try {
        stage.setPointerCapture(event.pointerId); // the drag goes on outside the stage
      } catch (e) {
        /* a pointer already gone: nothing to follow */
      }
      if (st.s > 1) stage.classList.add('imgedit-dragging');
    },

    pointermove(event) {
      const stage = stageOf(event.currentTarget);
      const st = stage && states.get(stage);
      if (!st || !st.pointers.has(event.pointerId)) return;
      const before = st.pointers.get(event.pointerId);
      st.pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      if (st.pointers.size >= 2) {
        // Pinch: the spread of two fingers scales, their midpoint stays under them.
        const [a, b] = [...st.pointers.values()];
        const spread = Math.hypot(a.x - b.x, a.y - b.y);
        const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
        if (st.last && st.last.spread > 0) {
          st.x += mid.x - st.last.x;
          st.y += mid.y - st.last.y;
          zoomTo(stage, st.s * (spread / st.last.spread), mid.x, mid.y, false);
        }
        st.last = { spread, x: mid.x, y: mid.y };
        st.swipe = null;
        return;
      }
      if (st.s > 1) {
        st.x += event.clientX - before.x;
        st.y += event.clientY - before.y;
        render(stage, st, false);
      }
    },

    pointerup(event) {
      const stage = stageOf(event.currentTarget);
      const st = stage && states.get(stage);
      if (!st || !st.pointers.has(event.pointerId)) return;
      st.pointers.delete(event.pointerId);
      st.last = null;
      if (!st.pointers.size) stage.classList.remove('imgedit-dragging');
      const swipe = st.swipe;
      st.swipe = null;
      if (!swipe || event.type !== 'pointerup' || event.pointerType === 'mouse' || st.s !== 1) return;
      const dx = event.clientX - swipe.x;
      const dy = event.clientY - swipe.y;
      if (Math.abs(dx) < SWIPE || Math.abs(dx) < 2 * Math.abs(dy)) return;
      // Swiping left brings the next (older) picture in from the right, as on a phone.
      const arrow = stage.querySelector(dx < 0 ? '.imgedit-arrow-older' : '.imgedit-arrow-newer');
      if (arrow && arrow.getAttribute('aria-disabled') !== 'true') arrow.click();
    },

    pointercancel(event) {
      api.pointerup(event);
    },

    dblclick(event) {
      const stage = stageOf(event.currentTarget);
      if (!stage || onControl(event)) return;
      event.preventDefault();
      const z = sizes(stage);
      if (!z) return;
      const st = state(stage);
      if (st.s > 1) {
        fit(stage);
        return;
      }
      // Fit to the picture's own pixels, where the pointer is; a picture already shown at its own
      // size (smaller than the stage) goes to twice that.
      zoomTo(stage, z.natural > 1.0001 ? z.natural : 2, event.clientX, event.clientY, true);
    },

    loaded(event) {
      const stage = stageOf(event.currentTarget);
      const img = event.currentTarget;
      if (!stage || !(img instanceof HTMLImageElement)) return;
      const st = state(stage);
      if (st.src === img.currentSrc) return;
      st.src = img.currentSrc;
      st.s = 1;
      st.pointers.clear();
      render(stage, st, false);
    },

    focusCard(id) {
      const wanted = '/media/thumbs/' + id;
      for (const img of document.querySelectorAll('.imgedit-image-card img')) {
        const src = img.getAttribute('src') || '';
        if (src === wanted || src.endsWith(wanted)) {
          const card = img.closest('.imgedit-image-card');
          card.focus({ preventScroll: true });
          card.scrollIntoView({ block: 'nearest' });
          return true;
        }
      }
      return false;
    },
  };

  window.imgeditViewer = api;
})();
