// sluicegate usage page. Plain JS, no build step.
// Every sum comes from the admin API, which aggregates in the database (a daily table of
// day x key x model); the page only draws what it is given. The admin key lives only in the
// `adminKey` variable below: never in storage, cookies or URLs.
'use strict';

(() => {
  const { fmt, columns, rows } = window.SluiceCharts;
  const $ = (id) => document.getElementById(id);
  const el = {
    form: $('connect-form'), key: $('admin-key'), range: $('range'), keyFilter: $('key-filter'),
    modelFilter: $('model-filter'), refresh: $('refresh'), status: $('status'), error: $('error'),
    dashboard: $('dashboard'), totals: $('totals'), older: $('older'),
  };
  const DAY_MS = 86_400_000;
  const CHART_ROWS = 12; // bars per key/model chart; the table below it lists them all

  let adminKey = '';
  let ticket = 0; // the newest load; answers to older ones are dropped
  let keysById = new Map();
  let knownModels = new Set();
  let nextBefore = null; // id for the next page of recent requests
  let shownFilters = { keyId: '', model: '' }; // the filters of the rows on screen

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path) {
    const res = await fetch(path, { headers: { Authorization: `Bearer ${adminKey}` }, cache: 'no-store' });
    if (res.ok) return res.json();
    const raw = await res.text().catch(() => '');
    let error = null;
    try { error = JSON.parse(raw)?.error ?? null; } catch { /* not JSON */ }
    throw new ApiError(res.status, error?.code ?? null, error?.message ?? `HTTP ${res.status} ${res.statusText}`);
  }

  // A query string of the parameters that have a value (an empty filter means "all").
  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
    return q.toString();
  }

  const plural = (n, word) => `${fmt.int(n)} ${word}${n === 1 ? '' : 's'}`;
  const utcDay = (ms) => new Date(ms).toISOString().slice(0, 10);
  const utcTime = (epoch) => new Date(epoch * 1000).toISOString().slice(0, 19).replace('T', ' ');

  function setState(state) {
    document.body.dataset.state = state;
    el.dashboard.setAttribute('aria-busy', String(state === 'loading'));
  }

  function setStatus(message) {
    el.status.textContent = message;
  }

  function showError(err) {
    let message;
    if (err.status === 401) {
      message = `The gateway refused this key (401${err.code ? ` ${err.code}` : ''}): ${err.message}`;
    } else if (err.status === 403 && err.code === 'admin_only') {
      message = 'This key is not an admin key (403 admin_only): the usage page needs the admin key,' +
        " printed as 'admin key: sk-sg-admin-...' at the gateway's first start, or set in SLUICEGATE_ADMIN_KEY.";
    } else if (err instanceof ApiError) {
      message = `The admin API answered ${err.status}${err.code ? ` ${err.code}` : ''}: ${err.message}`;
    } else {
      message = `Could not reach the gateway: ${err.message || err}`;
    }
    el.error.textContent = message;
    el.error.hidden = false;
    setStatus('');
  }

  function setControls(enabled) {
    for (const control of [el.range, el.keyFilter, el.modelFilter, el.refresh]) control.disabled = !enabled;
  }

  // -- tables --------------------------------------------------------------------------------

  function cell(tag, content, cls) {
    const c = document.createElement(tag);
    if (content instanceof Node) c.append(content); else c.textContent = content ?? '';
    if (cls) c.className = cls;
    return c;
  }

  // Every amount of a table gets the same number of decimals, so the points line up: enough for
  // three significant digits of its smallest amount (at least cents, at most nano-dollars, what
  // the gateway stores). The exact amount is the cell's title.
  function moneyDecimals(amounts) {
    const nonzero = amounts.map(Math.abs).filter((v) => v > 0);
    if (nonzero.length === 0) return 2;
    return Math.max(2, Math.min(9, Math.ceil(-Math.log10(Math.min(...nonzero))) + 2));
  }

  function tableRow(section, cols, row, money) {
    const tr = section.insertRow();
    cols.forEach((c, i) => {
      const td = cell(i === 0 ? 'th' : 'td', c.value(row, money), c.num ? 'num' : '');
      if (i === 0) td.scope = 'row';
      const amount = c.usd ? c.usd(row) : null;
      if (amount !== null && amount !== undefined) td.title = fmt.usdExact(amount);
      tr.append(td);
    });
    return tr;
  }

  // cols: [{title, value: (row, money) => text|Node, num: bool, usd: (row) => amount|null}]
  function fillTable(table, caption, cols, data, { foot = null, emptyText = 'Nothing yet.', append = false } = {}) {
    if (!append) {
      const amounts = [];
      for (const c of cols.filter((col) => col.usd)) {
        for (const r of foot ? [...data, foot] : data) amounts.push(c.usd(r) ?? 0);
      }
      table.dataset.decimals = String(moneyDecimals(amounts));
      const cap = cell('caption', caption);
      cap.className = 'visually-hidden';
      const head = document.createElement('thead');
      const tr = head.insertRow();
      for (const c of cols) {
        const th = cell('th', c.title, c.num ? 'num' : '');
        th.scope = 'col';
        tr.append(th);
      }
      table.replaceChildren(cap, head, document.createElement('tbody'));
    }
    const decimals = Number(table.dataset.decimals);
    const money = (v) => fmt.usdFixed(v, decimals);
    const body = table.tBodies[0];
    if (!append && data.length === 0) {
      const td = cell('td', emptyText, 'empty');
      td.colSpan = cols.length;
      body.insertRow().append(td);
    }
    for (const row of data) {
      const tr = tableRow(body, cols, row, money);
      if (row.id !== undefined) tr.dataset.id = row.id;
    }
    if (foot) {
      const tfoot = table.createTFoot();
      tfoot.replaceChildren();
      tableRow(tfoot, cols, foot, money);
    }
  }

  const SUM_COLUMNS = [
    { title: 'Requests', value: (r) => fmt.int(r.requests), num: true },
    { title: 'Errors', value: (r) => fmt.int(r.errors), num: true },
    { title: 'Prompt tokens', value: (r) => fmt.int(r.prompt_tokens), num: true },
    { title: 'Completion tokens', value: (r) => fmt.int(r.completion_tokens), num: true },
    { title: 'Total tokens', value: (r) => fmt.int(r.total_tokens), num: true },
    { title: 'Cost', value: (r, money) => money(r.cost_usd), usd: (r) => r.cost_usd, num: true },
  ];
  const ZERO = { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, cost_usd: 0 };

  function keyLabel(keyId, name) {
    if (!keyId) return '(no key)';
    return name || keysById.get(keyId)?.name || keyId;
  }

  // -- sections ------------------------------------------------------------------------------

  function renderTotals(total, days) {
    const t = total ?? ZERO;
    const cards = [
      ['Spend', fmt.usd(t.cost_usd), `last ${days} days`],
      ['Requests', fmt.int(t.requests), `${fmt.int(t.errors)} refused or failed`],
      ['Prompt tokens', fmt.int(t.prompt_tokens), t.cached_tokens ? `${fmt.int(t.cached_tokens)} cached` : ''],
      ['Completion tokens', fmt.int(t.completion_tokens), t.reasoning_tokens ? `${fmt.int(t.reasoning_tokens)} reasoning` : ''],
      ['Total tokens', fmt.int(t.total_tokens), ''],
    ];
    el.totals.replaceChildren(...cards.map(([name, value, note]) => {
      const box = document.createElement('div');
      box.className = 'card';
      box.dataset.total = name.toLowerCase().replace(/ /g, '-');
      box.append(cell('dt', name), cell('dd', value, 'value'));
      if (note) box.append(cell('dd', note, 'card-note'));
      return box;
    }));
  }

  function renderDays(dayRows, since, days, total) {
    const byDay = new Map(dayRows.map((r) => [r.day, r]));
    const start = Date.parse(`${since}T00:00:00Z`);
    const all = [];
    for (let i = 0; i < days; i += 1) {
      const day = utcDay(start + i * DAY_MS);
      all.push({ ...ZERO, ...(byDay.get(day) ?? {}), day });
    }
    const spend = all.reduce((a, r) => (r.cost_usd > a.cost_usd ? r : a), all[0]);
    columns(document.querySelector('#chart-day-spend .plot'), {
      points: all.map((r) => ({
        label: r.day.slice(5),
        title: `${r.day}: ${fmt.usd(r.cost_usd)}, ${plural(r.requests, 'request')}`,
        values: [r.cost_usd],
      })),
      series: [{ cls: 'c-spend' }],
      axis: fmt.usdAxis,
      label: `Spend per day, ${since} to ${all[all.length - 1].day}: ${fmt.usd(total?.cost_usd ?? 0)} in all` +
        (spend.cost_usd > 0 ? `, most on ${spend.day} (${fmt.usd(spend.cost_usd)}).` : '.'),
      empty: 'No spend in these days',
    });
    columns(document.querySelector('#chart-day-tokens .plot'), {
      points: all.map((r) => ({
        label: r.day.slice(5),
        title: `${r.day}: ${fmt.int(r.prompt_tokens)} prompt + ${fmt.int(r.completion_tokens)} completion tokens`,
        values: [r.prompt_tokens, r.completion_tokens],
      })),
      series: [{ cls: 'c-prompt' }, { cls: 'c-completion' }],
      axis: fmt.compact,
      label: `Tokens per day, ${since} to ${all[all.length - 1].day}: ${fmt.int(total?.prompt_tokens ?? 0)} prompt` +
        ` and ${fmt.int(total?.completion_tokens ?? 0)} completion tokens in all.`,
      empty: 'No tokens in these days',
    });
    const withUsage = all.filter((r) => r.requests > 0).reverse();
    fillTable($('table-day'), 'Usage per day (UTC), newest first', [
      { title: 'Day', value: (r) => r.day }, ...SUM_COLUMNS,
    ], withUsage, { foot: { ...(total ?? ZERO), day: 'Total' }, emptyText: 'No requests in these days.' });
  }

  function renderBreakdown(kind, data, total) {
    const isKey = kind === 'key';
    const named = data.map((r) => ({ ...r, label: isKey ? keyLabel(r.key_id, r.key_name) : r.model }));
    named.sort((a, b) => b.cost_usd - a.cost_usd || b.total_tokens - a.total_tokens || a.label.localeCompare(b.label));
    const shown = named.slice(0, CHART_ROWS);
    const what = isKey ? 'key' : 'model';
    const more = named.length > shown.length ? ` The ${shown.length} that spent most of ${named.length}.` : '';
    rows(document.querySelector(`#chart-${kind} .plot`), {
      items: shown.map((r) => ({
        label: r.label,
        title: `${r.label}: ${fmt.usd(r.cost_usd)}; ${fmt.int(r.prompt_tokens)} prompt + ` +
          `${fmt.int(r.completion_tokens)} completion tokens; ${plural(r.requests, 'request')}`,
        cost: r.cost_usd, prompt: r.prompt_tokens, completion: r.completion_tokens,
      })),
      label: `Spend and tokens per ${what}: ${named.length} ${what}${named.length === 1 ? '' : 's'}` +
        (shown.length ? `, most spent by ${shown[0].label} (${fmt.usd(shown[0].cost_usd)}).` : '.') + more,
      empty: `No usage by any ${what} in these days`,
    });
    document.querySelector(`#chart-${kind} figcaption`).textContent =
      `Spend and tokens per ${what}${more ? ` (top ${shown.length} of ${named.length})` : ''}`;
    const first = isKey
      ? [{ title: 'Key', value: (r) => r.label }, { title: 'ID', value: (r) => r.key_id ?? '' }]
      : [{ title: 'Model', value: (r) => r.label }];
    const foot = { ...(total ?? ZERO), label: 'Total', key_id: '' };
    fillTable($(`table-${kind}`), `Usage per ${what}`, [...first, ...SUM_COLUMNS], named,
      { foot, emptyText: `No requests in these days.` });
  }

  function statusBadge(r) {
    const ok = r.status < 400;
    const badge = cell('span', ok ? String(r.status) : `${r.status} ${r.error_code ?? r.error_type ?? ''}`.trim(),
      `badge ${ok ? 'ok' : 'bad'}`);
    if (r.client_gone) {
      const wrap = document.createElement('span');
      wrap.append(badge, cell('span', ' client left', 'muted'));
      return wrap;
    }
    return badge;
  }

  const ms = (v) => (v === null || v === undefined ? '—' : `${fmt.int(Math.round(v))} ms`);
  const RECENT_COLUMNS = [
    { title: 'Time (UTC)', value: (r) => utcTime(r.created_at) },
    { title: 'Key', value: (r) => keyLabel(r.key_id) },
    { title: 'Model', value: (r) => r.model },
    { title: 'Status', value: statusBadge },
    { title: 'Stream', value: (r) => (r.stream ? 'yes' : 'no') },
    { title: 'Prompt', value: (r) => fmt.int(r.prompt_tokens), num: true },
    { title: 'Completion', value: (r) => fmt.int(r.completion_tokens) + (r.estimated ? ' (est.)' : ''), num: true },
    { title: 'TTFT', value: (r) => ms(r.ttft_ms), num: true },
    { title: 'Duration', value: (r) => ms(r.total_ms), num: true },
    { title: 'Cost', value: (r, money) => money(r.cost_usd), usd: (r) => r.cost_usd, num: true },
  ];

  function renderRecent(page, append) {
    fillTable($('table-recent'), 'Recent requests, newest first', RECENT_COLUMNS, page.data,
      { append, emptyText: 'No requests yet.' });
    nextBefore = page.next_before_id ?? null;
    el.older.hidden = nextBefore === null;
  }

  function remaining(k, money) {
    if (k.budget_usd === null) return 'no budget';
    const wrap = document.createElement('span');
    wrap.className = 'remaining';
    const meter = document.createElement('meter');
    meter.min = 0;
    meter.max = Math.max(k.budget_usd, 0);
    meter.value = Math.max(0, k.remaining_usd);
    meter.low = k.budget_usd * 0.1;
    meter.high = k.budget_usd * 0.3;
    meter.optimum = k.budget_usd;
    meter.setAttribute('aria-label', `${k.name}: ${fmt.usd(k.remaining_usd)} of ${fmt.usd(k.budget_usd)} left`);
    wrap.append(meter, cell('span', money(k.remaining_usd), 'amount'));
    return wrap;
  }

  function nameWithTag(k) {
    if (!k.admin) return k.name;
    const wrap = document.createElement('span');
    wrap.append(k.name, ' ', cell('span', 'admin key', 'tag'));
    return wrap;
  }

  const KEY_COLUMNS = [
    { title: 'Name', value: nameWithTag },
    { title: 'ID', value: (k) => k.id },
    { title: 'Status', value: (k) => cell('span', k.status, `badge ${k.status === 'active' ? 'ok' : 'bad'}`) },
    { title: 'Budget', value: (k, money) => (k.budget_usd === null ? '—' : money(k.budget_usd)), usd: (k) => k.budget_usd, num: true },
    { title: 'Spent', value: (k, money) => money(k.spent_usd), usd: (k) => k.spent_usd, num: true },
    { title: 'Reserved', value: (k, money) => money(k.reserved_usd), usd: (k) => k.reserved_usd, num: true },
    { title: 'Remaining', value: remaining, usd: (k) => k.remaining_usd, num: true },
    { title: 'RPM', value: (k) => (k.rpm === null ? '—' : fmt.int(k.rpm)), num: true },
    { title: 'TPM', value: (k) => (k.tpm === null ? '—' : fmt.int(k.tpm)), num: true },
    { title: 'Models', value: (k) => (k.models === null ? 'all' : k.models.join(', ')) },
    { title: 'Expires (UTC)', value: (k) => (k.expires_at === null ? 'never' : utcTime(k.expires_at)) },
  ];

  function renderKeys(keys) {
    keysById = new Map(keys.map((k) => [k.id, k]));
    fillTable($('table-keys'), 'API keys with their limits and budget', KEY_COLUMNS, keys, { emptyText: 'No keys.' });
    const chosen = el.keyFilter.value;
    el.keyFilter.replaceChildren(new Option('All keys', ''), ...keys.map((k) => new Option(`${k.name} (${k.id})`, k.id)));
    el.keyFilter.value = keysById.has(chosen) ? chosen : '';
  }

  function renderModelOptions(modelRows) {
    for (const r of modelRows) knownModels.add(r.model);
    const chosen = el.modelFilter.value;
    const names = [...knownModels].sort();
    el.modelFilter.replaceChildren(new Option('All models', ''), ...names.map((m) => new Option(m, m)));
    el.modelFilter.value = chosen;
  }

  // -- loading -------------------------------------------------------------------------------

  async function load() {
    const mine = ++ticket;
    el.error.hidden = true;
    if (!adminKey || !/^[\x21-\x7e]+$/.test(adminKey)) {
      el.error.textContent = adminKey
        ? 'That is not an API key: keys are letters, digits and punctuation, without spaces.'
        : 'Enter the admin key, then press Connect.';
      el.error.hidden = false;
      el.dashboard.hidden = true;
      setControls(false);
      setState('error');
      return;
    }
    setState('loading');
    setStatus('Loading…');
    const days = Number(el.range.value);
    const since = utcDay(Date.now() - (days - 1) * DAY_MS);
    const filters = { key_id: el.keyFilter.value, model: el.modelFilter.value };
    // group_by is always sent: empty asks for one total row (absent would mean "by day")
    const usage = (groupBy) => api(`/admin/usage?group_by=${groupBy}&${query({ since, ...filters })}`);
    try {
      const [keys, total, perDay, perKey, perModel, recent] = await Promise.all([
        api('/admin/keys'), usage(''), usage('day'), usage('key'), usage('model'),
        api(`/admin/requests?${query({ limit: 50, ...filters })}`),
      ]);
      if (mine !== ticket) return;
      el.dashboard.hidden = false; // before drawing: charts are drawn at their box's width
      renderKeys(keys.data);
      if (!filters.model) renderModelOptions(perModel.data);
      const totalRow = total.data[0] ?? null;
      renderTotals(totalRow, days);
      renderDays(perDay.data, since, days, totalRow);
      renderBreakdown('key', perKey.data, totalRow);
      renderBreakdown('model', perModel.data, totalRow);
      renderRecent(recent, false);
      shownFilters = { keyId: filters.key_id, model: filters.model };
      setControls(true);
      setState('ready');
      setStatus(`Updated ${new Date().toISOString().slice(11, 19)} UTC.`);
    } catch (err) {
      if (mine !== ticket) return;
      el.dashboard.hidden = true;
      setControls(false);
      setState('error');
      showError(err);
    }
  }

  async function loadOlder() {
    if (nextBefore === null) return;
    const mine = ticket;
    el.older.disabled = true;
    try {
      const page = await api(`/admin/requests?${query({
        limit: 50, key_id: shownFilters.keyId, model: shownFilters.model, before_id: nextBefore,
      })}`);
      if (mine === ticket) renderRecent(page, true);
    } catch (err) {
      if (mine === ticket) showError(err);
    } finally {
      el.older.disabled = false;
    }
  }

  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    const key = el.key.value.trim();
    if (key !== adminKey) {
      adminKey = key;
      keysById = new Map();
      knownModels = new Set();
      el.keyFilter.replaceChildren(new Option('All keys', ''));
      el.modelFilter.replaceChildren(new Option('All models', ''));
    }
    load();
  });
  for (const control of [el.range, el.keyFilter, el.modelFilter]) control.addEventListener('change', load);
  el.refresh.addEventListener('click', load);
  el.older.addEventListener('click', loadOlder);

  setStatus('Enter the admin key, then press Connect.');
})();
