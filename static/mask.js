// imgedit: the "Select area" painter of the Edit dialog. Plain JS, no library.
//
// The user paints (brush), removes (Eraser on), drags rectangles, or places a box with the keys;
// every action is one operation kept in picture pixels, so Undo drops the last one and the mask
// is drawn again from the list at any size: on the screen at the picture's fitted size (the
// canvas over the <img>, shown translucent by imgedit.css), and for the server at the picture's
// own size (the "kept form": opaque black, transparent where the edit applies).
//
// Nothing here listens on the document: imgedit/ui/mask_editor.py hands the events of its
// elements to these functions (NiceGUI js_handlers), so they come and go with the dialog.
//   open(cfg)          cfg = {root, width, height, upload, preview}: start afresh on the picture
//   pointer(e)         the canvas's pointerdown / move / up / cancel / leave (mouse, touch, pen)
//   key(e)             the painter's keydown: Ctrl+Z undoes; on the canvas, the keyboard box
//   focus(e), blur(e)  the canvas: the keyboard box is drawn while it has the focus
//   tool(e, name)      'brush' | 'rect'          eraser(e)   Eraser on / off
//   size(value)        the Size input moved: the brush's diameter in screen pixels
//   undo(e), clear(e)
//   done(e, emit)      send the mask; emit({mask_id}) or emit({error}) to the server
//   preview(cfg)       cfg = {preview, picture, outline}: the summary's picture of an area kept earlier
(() => {
  'use strict';
  const SHOWN = '#ff2f6d'; // the area's colour on screen (translucent through the canvas's opacity)
  const BOX_STEP = 0.02; // an arrow key moves (or with Shift resizes) the keyboard box by 2 % of a side
  const states = new Map(); // root element id -> state

  const rootOf = (node) => (node instanceof Element ? node.closest('.imgedit-painter') : null);
  const stateOf = (node) => {
    const root = rootOf(node);
    return root ? states.get(root.id) : undefined;
  };
  const parts = (st) => {
    const root = document.getElementById(st.root);
    if (!root) return null;
    return {
      root,
      stage: root.querySelector('.imgedit-painter-stage'),
      frame: root.querySelector('.imgedit-painter-frame'),
      canvas: root.querySelector('canvas.imgedit-painter-canvas'),
      img: root.querySelector('img.imgedit-painter-image'),
      cursor: root.querySelector('.imgedit-painter-cursor'),
      status: root.querySelector('.imgedit-painter-status'),
    };
  };

  function open(cfg) {
    const st = {
      root: cfg.root,
      W: cfg.width,
      H: cfg.height,
      upload: cfg.upload,
      preview: cfg.preview,
      ops: [],
      live: null, // the stroke or rectangle under the pointer
      pointer: null, // its pointerId
      tool: 'brush',
      erase: false,
      size: 32, // the Size input's, once the painter is drawn
      focused: false,
      box: { x: cfg.width * 0.375, y: cfg.height * 0.375, w: cfg.width / 4, h: cfg.height / 4 },
      sending: false,
    };
    const before = states.get(cfg.root);
    if (before && before.observer) before.observer.disconnect();
    states.set(cfg.root, st);
    // The dialog may still be opening (its content is drawn after this call): lay out once it
    // has a size, and again whenever the stage's size changes.
    let tries = 600;
    const start = () => {
      watch(st);
      if (!fit(st) && (tries -= 1) > 0) requestAnimationFrame(start);
    };
    start();
  }

  // Follow the stage's size (Vue may draw the dialog's content anew: follow the new stage then).
  function watch(st) {
    const p = parts(st);
    if (!p || !p.stage || st.watched === p.stage) return;
    if (st.observer) st.observer.disconnect();
    st.observer = new ResizeObserver(() => {
      watch(st);
      fit(st);
    });
    st.observer.observe(p.stage);
    st.watched = p.stage;
    const size = p.root.querySelector('input.imgedit-painter-slider');
    if (size) st.size = Number(size.value) || st.size;
    showTools(st);
  }

  // The picture fitted into the stage; the canvas's pixels match the screen's.
  function fit(st) {
    const p = parts(st);
    if (!p || !p.stage || !p.frame || !p.canvas) return false;
    // Layout sizes, not getBoundingClientRect: the dialog grows in with a scale transform.
    const box = { width: p.stage.clientWidth, height: p.stage.clientHeight };
    if (!box.width || !box.height) return false;
    const scale = Math.min(box.width / st.W, box.height / st.H);
    const w = Math.max(1, Math.floor(st.W * scale));
    const h = Math.max(1, Math.floor(st.H * scale));
    p.frame.style.width = `${w}px`;
    p.frame.style.height = `${h}px`;
    const ratio = window.devicePixelRatio || 1;
    p.canvas.width = Math.round(w * ratio);
    p.canvas.height = Math.round(h * ratio);
    st.scale = w / st.W; // screen pixels per picture pixel
    draw(st);
    return true;
  }

  // -- drawing the operations ----------------------------------------------------------------

  // One operation on a context whose units are picture pixels. ``paint`` and ``erase`` are the
  // composite operations that add to and take from the area, ``ink`` the colour that adds.
  function render(ctx, op, paint, erase, ink) {
    if (op.type === 'clear') {
      ctx.save();
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.globalCompositeOperation = erase;
      ctx.fillStyle = ink.bg;
      ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
      ctx.restore();
      return;
    }
    ctx.globalCompositeOperation = op.erase ? erase : paint;
    ctx.fillStyle = ctx.strokeStyle = op.erase ? ink.bg : ink.fg;
    if (op.type === 'rect') {
      const r = normalBox(op);
      ctx.fillRect(r.x, r.y, r.w, r.h);
      return;
    }
    const pts = op.points;
    if (pts.length === 1) {
      ctx.beginPath();
      ctx.arc(pts[0][0], pts[0][1], op.size / 2, 0, Math.PI * 2);
      ctx.fill();
      return;
    }
    ctx.lineWidth = op.size;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    for (let i = 1; i < pts.length; i += 1) ctx.lineTo(pts[i][0], pts[i][1]);
    ctx.stroke();
  }

  const normalBox = (r) => ({
    x: Math.min(r.x, r.x + r.w),
    y: Math.min(r.y, r.y + r.h),
    w: Math.abs(r.w),
    h: Math.abs(r.h),
  });

  function draw(st) {
    const p = parts(st);
    if (!p || !p.canvas || !st.scale) return;
    const ctx = p.canvas.getContext('2d');
    const k = p.canvas.width / st.W;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.globalCompositeOperation = 'source-over';
    ctx.clearRect(0, 0, p.canvas.width, p.canvas.height);
    ctx.setTransform(k, 0, 0, k, 0, 0);
    // On screen: painting adds colour, erasing and Clear take it away.
    const ink = { fg: SHOWN, bg: 'rgba(0,0,0,1)' };
    for (const op of st.ops) render(ctx, op, 'source-over', 'destination-out', ink);
    if (st.live) render(ctx, st.live, 'source-over', 'destination-out', ink);
    ctx.globalCompositeOperation = 'source-over';
    const outline = (r, dash) => {
      const b = normalBox(r);
      ctx.save();
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
      ctx.setLineDash(dash);
      ctx.strokeStyle = '#ffffff';
      ctx.strokeRect(b.x * k, b.y * k, b.w * k, b.h * k);
      ctx.strokeStyle = '#14161f';
      ctx.lineDashOffset = dash.length ? dash[0] : 0;
      ctx.strokeRect(b.x * k, b.y * k, b.w * k, b.h * k);
      ctx.restore();
    };
    if (st.live && st.live.type === 'rect') outline(st.live, [6, 6]);
    if (st.focused) outline(st.box, [10, 6]);
  }

  // The mask at the picture's own size, as a PNG: opaque black, transparent where painted.
  function exported(st) {
    const canvas = document.createElement('canvas');
    canvas.width = st.W;
    canvas.height = st.H;
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, st.W, st.H);
    const ink = { fg: '#000', bg: '#000' };
    for (const op of st.ops) render(ctx, op, 'destination-out', 'source-over', ink);
    return new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  }

  // -- pointer ----------------------------------------------------------------------------

  function at(st, e) {
    const p = parts(st);
    const r = p.canvas.getBoundingClientRect();
    const x = ((e.clientX - r.left) / r.width) * st.W;
    const y = ((e.clientY - r.top) / r.height) * st.H;
    return [Math.max(0, Math.min(st.W, x)), Math.max(0, Math.min(st.H, y))];
  }

  function moveCursor(st, e) {
    const p = parts(st);
    if (!p || !p.cursor) return;
    const show = st.tool === 'brush' && e.type !== 'pointerleave' && e.pointerType !== 'touch';
    p.cursor.hidden = !show;
    if (!show) return;
    const r = p.frame.getBoundingClientRect();
    const d = st.size;
    p.cursor.style.width = p.cursor.style.height = `${d}px`;
    p.cursor.style.transform = `translate(${e.clientX - r.left - d / 2}px, ${e.clientY - r.top - d / 2}px)`;
    p.cursor.classList.toggle('imgedit-painter-cursor-erase', st.erase);
  }

  function pointer(e) {
    const st = stateOf(e.target);
    if (!st || !st.scale) return;
    moveCursor(st, e);
    if (e.type === 'pointerdown') {
      if (st.live || (e.pointerType === 'mouse' && e.button !== 0)) return;
      e.preventDefault();
      e.target.setPointerCapture?.(e.pointerId);
      st.pointer = e.pointerId;
      const [x, y] = at(st, e);
      st.live =
        st.tool === 'rect'
          ? { type: 'rect', erase: st.erase, x, y, w: 0, h: 0 }
          : { type: 'stroke', erase: st.erase, size: st.size / st.scale, points: [[x, y]] };
      draw(st);
      return;
    }
    if (!st.live || e.pointerId !== st.pointer) return;
    if (e.type === 'pointermove') {
      const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
      for (const one of events.length ? events : [e]) {
        const [x, y] = at(st, one);
        if (st.live.type === 'rect') {
          st.live.w = x - st.live.x;
          st.live.h = y - st.live.y;
        } else {
          st.live.points.push([x, y]);
        }
      }
      draw(st);
      return;
    }
    if (e.type === 'pointerup' || e.type === 'pointercancel') {
      const op = st.live;
      st.live = null;
      st.pointer = null;
      const empty = op.type === 'rect' && (Math.abs(op.w) < 1 || Math.abs(op.h) < 1);
      if (e.type === 'pointerup' && !empty) add(st, op);
      draw(st);
    }
  }

  function add(st, op) {
    st.ops.push(op);
    const what = op.type === 'rect' ? 'Rectangle' : 'Stroke';
    say(st, `${what} ${op.erase ? 'removed from' : 'added to'} the area.`);
  }

  function say(st, text) {
    const p = parts(st);
    if (p && p.status) p.status.textContent = p.status.textContent === text ? `${text}\u00a0` : text;
  }

  // -- keys --------------------------------------------------------------------------------

  function key(e) {
    const st = stateOf(e.target);
    if (!st) return;
    if ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key || '').toLowerCase() === 'z' && !e.shiftKey) {
      if (e.target.matches?.('textarea, input:not([type=range])')) return; // a field's own undo
      e.preventDefault();
      undo(e);
      return;
    }
    if (!e.target.classList?.contains('imgedit-painter-canvas') || e.ctrlKey || e.metaKey || e.altKey) return;
    const b = st.box;
    const dx = Math.max(1, st.W * BOX_STEP);
    const dy = Math.max(1, st.H * BOX_STEP);
    const moves = { ArrowLeft: [-dx, 0], ArrowRight: [dx, 0], ArrowUp: [0, -dy], ArrowDown: [0, dy] };
    if (moves[e.key]) {
      e.preventDefault();
      const [mx, my] = moves[e.key];
      if (e.shiftKey) {
        b.w = Math.max(1, Math.min(st.W - b.x, b.w + mx));
        b.h = Math.max(1, Math.min(st.H - b.y, b.h + my));
      } else {
        b.x = Math.max(0, Math.min(st.W - b.w, b.x + mx));
        b.y = Math.max(0, Math.min(st.H - b.h, b.y + my));
      }
      draw(st);
      const pc = (v, of) => Math.round((v / of) * 100);
      say(
        st,
        `Box at ${pc(b.x, st.W)} % from the left, ${pc(b.y, st.H)} % from the top, ` +
          `${pc(b.w, st.W)} % wide, ${pc(b.h, st.H)} % high.`,
      );
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      add(st, { type: 'rect', erase: st.erase, x: b.x, y: b.y, w: b.w, h: b.h });
      draw(st);
    }
  }

  function focus(e) {
    const st = stateOf(e.target);
    if (!st) return;
    st.focused = e.type === 'focus';
    draw(st);
  }

  // -- the toolbar -------------------------------------------------------------------------

  function showTools(st) {
    const p = parts(st);
    if (!p) return;
    p.root.querySelectorAll('[data-tool]').forEach((b) => {
      const on = b.dataset.tool === 'eraser' ? st.erase : b.dataset.tool === st.tool;
      b.setAttribute('aria-pressed', on ? 'true' : 'false');
      b.classList.toggle('imgedit-tool-on', on);
    });
    p.root.classList.toggle('imgedit-painter-erasing', st.erase);
    p.root.dataset.tool = st.tool;
  }

  function tool(e, name) {
    const st = stateOf(e.target || e.currentTarget);
    if (!st) return;
    st.tool = name;
    showTools(st);
    say(st, name === 'rect' ? 'Rectangle: drag over the picture.' : 'Brush: paint over the picture.');
  }

  function eraser(e) {
    const st = stateOf(e.target || e.currentTarget);
    if (!st) return;
    st.erase = !st.erase;
    showTools(st);
    say(st, st.erase ? 'Eraser on: what you draw is removed from the area.' : 'Eraser off.');
  }

  function size(value, root) {
    const v = Number(Array.isArray(value) ? value[0] : value);
    if (!Number.isFinite(v)) return;
    for (const st of states.values()) {
      if (!root || st.root === root) st.size = v;
    }
  }

  function undo(e) {
    const st = stateOf(e.target || e.currentTarget);
    if (!st) return;
    if (!st.ops.length) {
      say(st, 'Nothing to undo.');
      return;
    }
    st.ops.pop();
    draw(st);
    say(st, 'Undone.');
  }

  function clear(e) {
    const st = stateOf(e.target || e.currentTarget);
    if (!st || !st.ops.length || st.ops[st.ops.length - 1].type === 'clear') return;
    st.ops.push({ type: 'clear' });
    draw(st);
    say(st, 'Area cleared. Undo brings it back.');
  }

  // -- sending -----------------------------------------------------------------------------

  function drawPreview(st) {
    const p = parts(st);
    const target = document.getElementById(st.preview);
    if (!p || !target || !p.img || !p.img.naturalWidth) return;
    const most = 160;
    const k = Math.min(most / st.W, most / st.H, 1);
    target.width = Math.max(1, Math.round(st.W * k));
    target.height = Math.max(1, Math.round(st.H * k));
    const ctx = target.getContext('2d');
    ctx.drawImage(p.img, 0, 0, target.width, target.height);
    const layer = document.createElement('canvas');
    layer.width = target.width;
    layer.height = target.height;
    const lctx = layer.getContext('2d');
    lctx.setTransform(k, 0, 0, k, 0, 0);
    for (const op of st.ops) render(lctx, op, 'source-over', 'destination-out', { fg: SHOWN, bg: '#000' });
    ctx.globalAlpha = 0.55;
    ctx.drawImage(layer, 0, 0);
  }

  // An area kept earlier (no painting in this page): the picture, then the area's outline.
  function preview(cfg, tries = 120) {
    const target = document.getElementById(cfg.preview);
    if (!target) {
      if (tries > 0) requestAnimationFrame(() => preview(cfg, tries - 1));
      return;
    }
    const picture = new Image();
    picture.onload = () => {
      const k = Math.min(160 / picture.naturalWidth, 160 / picture.naturalHeight, 1);
      target.width = Math.max(1, Math.round(picture.naturalWidth * k));
      target.height = Math.max(1, Math.round(picture.naturalHeight * k));
      const ctx = target.getContext('2d');
      ctx.drawImage(picture, 0, 0, target.width, target.height);
      const outline = new Image();
      outline.onload = () => ctx.drawImage(outline, 0, 0, target.width, target.height);
      outline.src = cfg.outline;
    };
    picture.src = cfg.picture;
  }

  async function done(e, emit) {
    const st = stateOf(e.target || e.currentTarget);
    if (!st || st.sending) return;
    st.sending = true;
    try {
      const blob = await exported(st);
      if (!blob) throw new Error('the browser could not draw the mask');
      const response = await fetch(st.upload, {
        method: 'POST',
        body: blob,
        headers: { 'Content-Type': 'image/png' },
        credentials: 'same-origin',
      });
      let answer = {};
      try {
        answer = await response.json();
      } catch (_) {
        answer = {};
      }
      if (response.ok && answer.mask_id) {
        drawPreview(st);
        emit({ mask_id: answer.mask_id });
      } else {
        emit({ error: answer.detail || `The server refused the selected area (${response.status}).` });
      }
    } catch (err) {
      emit({ error: `Could not send the selected area: ${err && err.message ? err.message : err}` });
    } finally {
      st.sending = false;
    }
  }

  window.imgeditMask = { open, pointer, key, focus, tool, eraser, size, undo, clear, done, preview, _states: states };
})();
