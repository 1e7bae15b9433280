// Wall mode: a panel never scrolls. Each visible row group keeps the rows that fit and says
// how many it left out ("+N more"); rows are already sorted needs-attention first.
import { setText } from './render.js';

const STEP = 4; // rows tried beyond those that fitted last time: a fit costs a few layouts, not one per row
const MAX_TRIMS = 200; // a bound on the corrective pass, whatever the layout does

const visible = (el) => el.getClientRects().length > 0;
// Rows fading out still take their place until they go, so they are cut like the others,
// but a "+N" counts only the rows that stay.
const shown = (group) => [...group.children].filter((row) => !row.hidden);
const counted = (rows) => rows.filter((row) => !row.hasAttribute('data-leaving')).length;
const overflows = (root) => root.scrollHeight > root.clientHeight;

function cutFrom(rows, first) {
  rows.forEach((row, i) => {
    if (row.hasAttribute('data-cut') !== i >= first) row.toggleAttribute('data-cut', i >= first);
  });
}

function showMore(group, rows, first) {
  const more = group.moreEl, cut = counted(rows.slice(first));
  if (!more) return;
  more.hidden = first >= rows.length; // shown while anything is cut, so its line is measured too
  setText(more, cut ? `+${cut} more` : '');
}

// Show the group's first rows, STEP more than fitted before, widening while all of them fit.
function widen(root, group, rows) {
  let first = Math.min(rows.length, rows.filter((row) => !row.hasAttribute('data-cut')).length + STEP);
  for (;;) {
    cutFrom(rows, first);
    showMore(group, rows, first);
    if (first >= rows.length || overflows(root)) return first;
    first = Math.min(rows.length, first + STEP);
  }
}

// Then cut every row whose bottom passes the panel's, and trim from the end while it still overflows.
function narrow(root, group, rows, first) {
  const limit = root.getBoundingClientRect().bottom - parseFloat(getComputedStyle(root).paddingBottom);
  const reserve = group.moreEl && first < rows.length ? group.moreEl.getBoundingClientRect().height : 0;
  let keep = rows.slice(0, first).findIndex((row) => row.getBoundingClientRect().bottom + reserve > limit);
  keep = keep < 0 ? first : keep;
  for (let i = 0; i <= MAX_TRIMS; i += 1) {
    cutFrom(rows, keep);
    showMore(group, rows, keep);
    if (keep === 0 || !overflows(root)) return;
    keep -= 1;
  }
}

export function fit(root, groups) {
  for (const group of groups) {
    if (!visible(group.el)) continue;
    const rows = shown(group.el);
    narrow(root, group, rows, widen(root, group, rows));
  }
}

export function tickClock(el, now) {
  if (el) setText(el, new Date(now).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
}
