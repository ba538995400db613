// imgedit: what the browser does when jobs end. The server calls window.imgeditNotify.* with JSON
// arguments (never HTML); everything here reads the browser's own state at call time, so a test
// can stub window.Notification and document.hidden in the page.
//
//   setCounts({running, queued})  the tab title: "(2 running) imgedit"
//   finished({id, ok, title, body, icon})  counted while hidden ("(1 done · 2 running) imgedit"),
//                                 a system notification when hidden and allowed, an optional sound
//   askPermission()               on the first submit from this tab, never on page load
//   reveal({id})                  scroll a new card into view once it is drawn
//   refocus({id})                 focus an element once the closing dialogs are gone
//   setSound(bool) / soundEnabled()  the sound choice, kept in localStorage
(() => {
  "use strict";
  const SOUND_KEY = "imgedit.sound";
  const state = { running: 0, done: 0, failed: 0, asked: false, base: null };

  function baseTitle() {
    if (state.base === null) state.base = document.title.replace(/^\([^)]*\)\s*/, "") || "imgedit";
    return state.base;
  }

  function render() {
    const parts = [];
    if (document.hidden) {
      if (state.done) parts.push(`${state.done} done`);
      if (state.failed) parts.push(`${state.failed} failed`);
    }
    if (state.running) parts.push(`${state.running} running`);
    const title = parts.length ? `(${parts.join(" · ")}) ${baseTitle()}` : baseTitle();
    if (document.title !== title) document.title = title;
  }

  function soundEnabled() {
    try {
      return window.localStorage.getItem(SOUND_KEY) === "1";
    } catch (e) {
      return false; // storage blocked: no sound, no error
    }
  }

  function setSound(enabled) {
    try {
      window.localStorage.setItem(SOUND_KEY, enabled ? "1" : "0");
    } catch (e) {
      /* storage blocked: the choice lasts for this page only */
    }
  }

  function chime(ok) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    try {
      const audio = new Context();
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = ok ? 880 : 330;
      gain.gain.setValueAtTime(0.0001, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.2, audio.currentTime + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.35);
      tone.connect(gain).connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.4);
      tone.onended = () => audio.close();
    } catch (e) {
      /* no audio device: silence */
    }
  }

  function systemNotification(job) {
    const Api = window.Notification;
    if (!Api || Api.permission !== "granted") return;
    try {
      // One tag per job: several hidden tabs replace each other's notification, not stack.
      const note = new Api(job.title, { body: job.body || "", icon: job.icon || undefined, tag: `imgedit-${job.id}` });
      note.onclick = () => {
        window.focus();
        if (note.close) note.close();
      };
    } catch (e) {
      /* e.g. Android Chrome wants a service worker: the toast and the title still tell */
    }
  }

  window.imgeditNotify = {
    setCounts(counts) {
      state.running = Number(counts && counts.running) || 0;
      render();
    },
    finished(job) {
      if (document.hidden) {
        if (job.ok) state.done += 1;
        else state.failed += 1;
        render();
        systemNotification(job);
      }
      if (soundEnabled()) chime(job.ok);
    },
    askPermission() {
      const Api = window.Notification;
      if (state.asked || !Api || Api.permission !== "default" || !Api.requestPermission) return;
      state.asked = true;
      try {
        const asked = Api.requestPermission();
        if (asked && asked.catch) asked.catch(() => {});
      } catch (e) {
        /* old callback-only API or refused outright: nothing to do */
      }
    },
    reveal(target) {
      const reduce = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      let tries = 0;
      const attempt = () => {
        const element = document.getElementById(`c${target.id}`);
        // After the dialog is gone: Quasar hands focus back to the control that opened it (which
        // scrolls to it), and that must not undo this scroll.
        if (element && !document.querySelector(".q-dialog")) {
          window.requestAnimationFrame(() =>
            element.scrollIntoView({ behavior: reduce ? "auto" : "smooth", block: "center" }));
        } else if (++tries < 40) {
          window.setTimeout(attempt, 50); // the card arrives in the same message; Vue draws it next
        }
      };
      attempt();
    },
    // Focus an element once a closing dialog has handed focus back (Quasar restores it to the
    // control that opened the dialog, which may itself be in a closed dialog, i.e. to <body>).
    refocus(target) {
      let tries = 0;
      const attempt = () => {
        const element = document.getElementById(`c${target.id}`);
        const dialogOpen = document.querySelector('.q-dialog');
        // No scroll: reveal() has just brought the new job's card into view.
        if (element && !dialogOpen) element.focus({ preventScroll: true });
        else if (++tries < 40) window.setTimeout(attempt, 50);
      };
      window.setTimeout(attempt, 50);
    },
    setSound,
    soundEnabled,
  };

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      state.done = 0;
      state.failed = 0;
    }
    render();
  });
})();
