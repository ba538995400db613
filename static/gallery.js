// imgedit: the gallery's next page arrives as the user scrolls near the end (the Show more
// button stays for keyboards and is what this presses), and Esc clears a selection when no
// dialog is open. Pages in pure Python draw everything; this only clicks their own buttons.
(() => {
  const MARGIN = '900px'; // start loading about a screen before the end comes into view
  let observed = null;
  let observer = null;

  const visible = (el) => el && el.getClientRects().length > 0;

  const watch = () => {
    const more = document.querySelector('.imgedit-more');
    if (more === observed) return;
    if (observer) observer.disconnect();
    observed = more;
    if (!more) return;
    observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting && visible(entry.target) && !entry.target.disabled) entry.target.click();
      }
    }, { rootMargin: MARGIN });
    observer.observe(more);
  };

  // The button is drawn by Vue after load and may be redrawn; look for it now and then. After
  // a page arrives the button moves down; observing again re-checks whether it is still near.
  let cards = 0;
  setInterval(() => {
    watch();
    const now = document.querySelectorAll('.imgedit-image-card').length;
    if (now !== cards && observer && observed) {
      cards = now;
      observer.unobserve(observed);
      observer.observe(observed);
    }
  }, 400);

  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || event.defaultPrevented) return;
    if (document.querySelector('.q-dialog')) return; // Esc belongs to the open dialog
    const bar = document.querySelector('.imgedit-selection-bar');
    if (!visible(bar)) return;
    const clear = bar.querySelector('[aria-label="Clear the selection"]');
    if (clear) { event.preventDefault(); clear.click(); }
  });
})();
