// Wall mode: a panel never scrolls. Each visible row group keeps the rows that fit and says
// how many it left out ("+N more"); rows are already sorted needs-attention first.
import { setText } from './render.js';

const MAX_TRIMS = 200; // a bound on the corrective pass, whatever the layout does

const visible = (el) => el.getClientRects().length > 0;
// Rows fading out still take their place until they go, so they are cut like the others,
// but a "+N" counts only the rows that stay.
const shown = (group) => [...group.children].filter((row) => !row.hidden);
const counted = (row) => (row.hasAttribute('data-leaving') ? 0 : 1);

function showMore(group, cut) {
  const more = group.moreEl;
  if (!more) return;
  more.hidden = !cut;
  setText(more, cut ? `+${cut} more` : '');
}

// Cut every row whose bottom would pass the panel's bottom once the "+N more" line is shown.
function cutBelow(root, group, rows) {
  const limit = root.getBoundingClientRect().bottom - parseFloat(getComputedStyle(root).paddingBottom);
  const reserve = group.moreEl ? group.moreEl.getBoundingClientRect().height : 0;
  let cut = 0;
  for (const row of rows) {
    if (cut || row.getBoundingClientRect().bottom + reserve > limit) {
      row.setAttribute('data-cut', '');
      cut += counted(row);
    }
  }
  return cut;
}

export function fit(root, groups) {
  const live = groups.filter((g) => visible(g.el));
  for (const g of groups) {
    for (const row of g.el.querySelectorAll(':scope > [data-cut]')) row.removeAttribute('data-cut');
    showMore(g, 0);
  }
  if (root.scrollHeight <= root.clientHeight) return;
  const counts = new Map();
  for (const g of live) {
    showMore(g, 1); // reserve the line the count will take
    counts.set(g, cutBelow(root, g, shown(g.el)));
  }
  // Whatever still overflows (a row taller than measured, a wrapped "+N" line): trim from the end.
  for (let i = 0; i < MAX_TRIMS && root.scrollHeight > root.clientHeight; i += 1) {
    const g = [...live].reverse().find((x) => shown(x.el).some((row) => !row.hasAttribute('data-cut')));
    if (!g) break;
    const kept = shown(g.el).filter((row) => !row.hasAttribute('data-cut'));
    const last = kept[kept.length - 1];
    last.setAttribute('data-cut', '');
    counts.set(g, counts.get(g) + counted(last));
  }
  for (const g of live) showMore(g, counts.get(g));
}

export function tickClock(el, now) {
  if (el) setText(el, new Date(now).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
}
