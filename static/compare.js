// imgedit: the before/after slider (imgedit/ui/compare.py). Plain JS, no library.
// The stage holds the source (beneath) and the result (on top, clipped left of the cut); the cut
// is one CSS custom property on the stage, --ie-compare (a percentage), that imgedit.css reads
// for the clip, the handle's place and the labels. Nothing goes to the server.
//
// Nothing here listens on the document: compare.py hands the events of its elements here.
//   pointerdown, pointermove, pointerup, pointercancel   the stage: press or drag anywhere on the
//                            picture (mouse, touch, pen) to move the cut there
//   key(e)                   the handle (role="slider"): ←/↓ and →/↑ 5 %, PageDown / PageUp 25 %,
//                            Home 0 %, End 100 %
//   set(stage, percent)      move the cut (tests and the functions above)
(() => {
  'use strict';
  const STEP = 5;
  const PAGE = 25;
  const drags = new WeakMap(); // stage -> pointerId of the drag under way

  const stageOf = (node) => (node instanceof Element ? node.closest('.imgedit-compare-stage') : null);
  const handleOf = (stage) => stage && stage.querySelector('.imgedit-compare-handle');

  function current(stage) {
    const handle = handleOf(stage);
    const value = handle ? Number(handle.getAttribute('aria-valuenow')) : 50;
    return Number.isFinite(value) ? value : 50;
  }

  function set(stage, percent) {
    if (!stage) return;
    const value = Math.round(Math.min(100, Math.max(0, percent)) * 10) / 10;
    stage.style.setProperty('--ie-compare', `${value}%`);
    const handle = handleOf(stage);
    if (handle) {
      const shown = Math.round(value);
      handle.setAttribute('aria-valuenow', String(shown));
      handle.setAttribute('aria-valuetext', `${shown} % before, ${100 - shown} % after`);
    }
  }

  function fromPointer(stage, e) {
    const box = stage.getBoundingClientRect();
    if (!box.width) return;
    set(stage, ((e.clientX - box.left) / box.width) * 100);
  }

  function pointerdown(e) {
    const stage = stageOf(e.target);
    if (!stage || (e.pointerType === 'mouse' && e.button !== 0)) return;
    drags.set(stage, e.pointerId);
    try {
      stage.setPointerCapture(e.pointerId);
    } catch (err) {
      /* a synthetic pointer cannot be captured; the drag still follows it over the stage */
    }
    const handle = handleOf(stage);
    if (handle) handle.focus({ preventScroll: true }); // the keys go on from where the drag left it
    fromPointer(stage, e);
    e.preventDefault();
  }

  function pointermove(e) {
    const stage = stageOf(e.target);
    if (stage && drags.get(stage) === e.pointerId) fromPointer(stage, e);
  }

  function pointerup(e) {
    const stage = stageOf(e.target);
    if (!stage || drags.get(stage) !== e.pointerId) return;
    drags.delete(stage);
    if (stage.hasPointerCapture && stage.hasPointerCapture(e.pointerId)) stage.releasePointerCapture(e.pointerId);
  }

  function key(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const stage = stageOf(e.target);
    if (!stage) return;
    const now = current(stage);
    const moves = {
      ArrowLeft: now - STEP,
      ArrowDown: now - STEP,
      ArrowRight: now + STEP,
      ArrowUp: now + STEP,
      PageDown: now - PAGE,
      PageUp: now + PAGE,
      Home: 0,
      End: 100,
    };
    if (!(e.key in moves)) return;
    e.preventDefault(); // no page scroll
    e.stopPropagation(); // and no other dialog's arrow keys (the image dialog walks the gallery)
    set(stage, moves[e.key]);
  }

  window.imgeditCompare = { pointerdown, pointermove, pointerup, pointercancel: pointerup, key, set };
})();
