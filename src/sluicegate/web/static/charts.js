// Hand-drawn SVG charts and number formats for the usage page. Plain JS, no build step, no CDN.
// Charts are pictures for the eye: each one gets an aria-label that sums it up, and the page shows
// the same figures in a table next to it for screen readers and exact values.
'use strict';

window.SluiceCharts = (() => {
  const SVG = 'http://www.w3.org/2000/svg';
  const en = (options) => new Intl.NumberFormat('en-US', options);
  const intFormat = en({ maximumFractionDigits: 0 });
  const compactFormat = en({ notation: 'compact', maximumFractionDigits: 1 });
  const usdBig = en({ style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const usdCents = en({ style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 4 });
  const usdTiny = en({ style: 'currency', currency: 'USD', maximumSignificantDigits: 3 });
  // nano-dollars are what the gateway stores: nothing it counted is rounded away
  const usdNano = en({ style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 9 });

  const fixedFormats = new Map();
  const fixed = (d) => {
    if (!fixedFormats.has(d)) {
      fixedFormats.set(d, en({ style: 'currency', currency: 'USD', minimumFractionDigits: d, maximumFractionDigits: d }));
    }
    return fixedFormats.get(d);
  };

  const fmt = {
    int: (n) => intFormat.format(n ?? 0),
    compact: (n) => compactFormat.format(n ?? 0),
    // At a glance: whole cents from a dollar up; below that, three significant digits, so a small
    // spend is not shown as $0.00.
    usd: (n) => {
      const abs = Math.abs(n ?? 0);
      return (abs >= 1 || abs === 0 ? usdBig : abs >= 0.01 ? usdCents : usdTiny).format(n ?? 0);
    },
    // Exact to the nano-dollar (what the gateway stores), in titles.
    usdExact: (n) => usdNano.format(n ?? 0),
    // With a fixed number of decimals, so a table's amounts line up.
    usdFixed: (n, decimals) => fixed(decimals).format(n ?? 0),
    usdAxis: (n) => (n >= 1000 ? `$${compactFormat.format(n)}` : `$${+n.toPrecision(3)}`),
  };

  function node(name, attrs = {}, parent = null) {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (parent) parent.append(el);
    return el;
  }

  function text(parent, x, y, content, attrs = {}) {
    const el = node('text', { x, y, ...attrs }, parent);
    el.textContent = content;
    return el;
  }

  function tooltip(parent, content) {
    node('title', {}, parent).textContent = content;
  }

  // A round upper bound and its ticks: 0, step, 2*step ... >= max (about `count` of them).
  function niceScale(max, count = 4) {
    if (!(max > 0)) return { top: 1, ticks: [0, 1] };
    const rough = max / count;
    const power = 10 ** Math.floor(Math.log10(rough));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
    const top = Math.ceil(max / step) * step;
    const ticks = [];
    for (let v = 0; v <= top + step / 2; v += step) ticks.push(+v.toPrecision(12));
    return { top, ticks };
  }

  function svgFor(container, height, label) {
    const width = Math.max(280, Math.floor(container.clientWidth || 600));
    const svg = node('svg', {
      width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, focusable: 'false',
    });
    container.replaceChildren(svg);
    return { svg, width };
  }

  // Columns over time. points: [{label, title, values: [number per series]}], stacked in series order.
  function columns(container, { points, series, axis, label, empty }) {
    const height = 220;
    const { svg, width } = svgFor(container, height, label);
    const m = { left: 58, right: 10, top: 10, bottom: 26 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const totals = points.map((p) => p.values.reduce((a, b) => a + b, 0));
    const { top, ticks } = niceScale(Math.max(0, ...totals));
    const y = (v) => m.top + plotH - (v / top) * plotH;

    const grid = node('g', { class: 'grid', 'aria-hidden': 'true' }, svg);
    for (const t of ticks) {
      node('line', { x1: m.left, x2: width - m.right, y1: y(t), y2: y(t) }, grid);
      text(grid, m.left - 6, y(t) + 4, axis(t), { class: 'axis', 'text-anchor': 'end' });
    }
    const band = plotW / Math.max(1, points.length);
    const barW = Math.max(1, Math.min(28, band * 0.72));
    const every = Math.max(1, Math.ceil(48 / band)); // a label at least every 48 px
    const bars = node('g', { class: 'bars' }, svg);
    points.forEach((p, i) => {
      const x = m.left + i * band + (band - barW) / 2;
      const g = node('g', {}, bars);
      tooltip(g, p.title);
      let base = 0;
      p.values.forEach((v, s) => {
        if (v <= 0) return;
        const h = Math.max(1, y(base) - y(base + v));
        node('rect', { x, y: y(base + v), width: barW, height: h, class: series[s].cls }, g);
        base += v;
      });
      // an invisible full-height target, so a zero day still shows its tooltip
      node('rect', { x: m.left + i * band, y: m.top, width: band, height: plotH, class: 'hit' }, g);
      if ((points.length - 1 - i) % every === 0) {
        text(svg, x + barW / 2, height - 8, p.label, { class: 'axis', 'text-anchor': 'middle', 'aria-hidden': 'true' });
      }
    });
    node('line', { x1: m.left, x2: width - m.right, y1: y(0), y2: y(0), class: 'baseline' }, svg);
    if (!totals.some((t) => t > 0)) {
      text(svg, m.left + plotW / 2, m.top + plotH / 2, empty, { class: 'empty', 'text-anchor': 'middle' });
    }
  }

  // One row per item, two bars each: spend, and tokens (prompt + completion stacked), each scaled
  // to its own largest value. items: [{label, title, cost, prompt, completion}].
  function rows(container, { items, label, empty }) {
    const rowH = 38;
    const height = Math.max(60, items.length * rowH + 8);
    const { svg, width } = svgFor(container, height, label);
    const labelW = Math.min(190, Math.max(110, width * 0.24));
    const valueW = 92;
    const plotX = labelW + 8;
    const plotW = Math.max(40, width - plotX - valueW);
    const maxCost = Math.max(0, ...items.map((i) => i.cost));
    const maxTokens = Math.max(0, ...items.map((i) => i.prompt + i.completion));
    if (items.length === 0) {
      text(svg, width / 2, 34, empty, { class: 'empty', 'text-anchor': 'middle' });
      return;
    }
    items.forEach((item, n) => {
      const top = 4 + n * rowH;
      const g = node('g', {}, svg);
      tooltip(g, item.title);
      const name = item.label.length > 26 ? `${item.label.slice(0, 25)}…` : item.label;
      text(g, labelW, top + 21, name, { class: 'label', 'text-anchor': 'end' });
      const costW = maxCost > 0 ? (item.cost / maxCost) * plotW : 0;
      node('rect', { x: plotX, y: top + 4, width: Math.max(item.cost > 0 ? 1 : 0, costW), height: 13, class: 'c-spend' }, g);
      text(g, plotX + costW + 5, top + 15, fmt.usd(item.cost), { class: 'value' });
      const scale = maxTokens > 0 ? plotW / maxTokens : 0;
      const promptW = item.prompt * scale;
      const completionW = item.completion * scale;
      node('rect', { x: plotX, y: top + 19, width: promptW, height: 13, class: 'c-prompt' }, g);
      node('rect', { x: plotX + promptW, y: top + 19, width: completionW, height: 13, class: 'c-completion' }, g);
      text(g, plotX + promptW + completionW + 5, top + 30, `${fmt.compact(item.prompt + item.completion)} tok`, { class: 'value' });
      node('rect', { x: 0, y: top, width, height: rowH, class: 'hit' }, g);
    });
  }

  // Redraw a chart when its box changes width (the SVG is drawn at its real size, so text stays crisp).
  const drawn = new Map();
  const observer = typeof ResizeObserver === 'function'
    ? new ResizeObserver((entries) => {
      for (const entry of entries) {
        const last = drawn.get(entry.target);
        if (last && Math.abs(entry.contentRect.width - last.width) > 4) draw(entry.target, last.kind, last.spec);
      }
    })
    : null;

  function draw(container, kind, spec) {
    (kind === 'columns' ? columns : rows)(container, spec);
    if (observer && !drawn.has(container)) observer.observe(container);
    drawn.set(container, { kind, spec, width: container.clientWidth });
  }

  return { fmt, niceScale, columns: (c, s) => draw(c, 'columns', s), rows: (c, s) => draw(c, 'rows', s) };
})();
