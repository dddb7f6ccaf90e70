// sluicegate chat playground. Plain JS, no build step.
// The API key lives only in the `apiKey` variable below: never in storage, cookies or URLs.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    key: $('api-key'), connect: $('connect'), model: $('model'), system: $('system'),
    temperature: $('temperature'), maxTokens: $('max-tokens'), prompt: $('prompt'),
    send: $('send'), stop: $('stop'), clear: $('clear'), messages: $('messages'),
    status: $('status'), stats: $('stats'),
  };

  let apiKey = '';
  let history = []; // [{role, content}] of the finished turns, sent whole each time
  let controller = null; // AbortController of the answer in flight
  let modelsRequest = 0; // guards against out-of-order model list responses
  let modelsLoading = null; // promise of the model list request in flight, with the key it used

  function setStatus(text, isError = false) {
    el.status.textContent = text;
    el.status.classList.toggle('error', isError);
  }

  function setBusy(busy) {
    el.send.disabled = busy;
    el.stop.disabled = !busy;
    el.model.disabled = busy || el.model.options.length === 0 || !el.model.value;
  }

  // Message of a non-2xx response: the OpenAI-shaped error.message when there is one.
  async function errorMessage(res) {
    const text = await res.text().catch(() => '');
    try {
      const body = JSON.parse(text);
      const msg = body?.error?.message ?? (typeof body?.error === 'string' ? body.error : body?.detail);
      if (msg) return String(msg);
    } catch { /* not JSON */ }
    return `HTTP ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`;
  }

  function authHeaders(extra = {}) {
    return { Authorization: `Bearer ${apiKey}`, ...extra };
  }

  function loadModels() {
    const key = el.key.value.trim();
    if (modelsLoading && modelsLoading.key === key) return modelsLoading.promise;
    apiKey = key;
    const promise = fetchModels().finally(() => {
      if (modelsLoading?.promise === promise) modelsLoading = null;
    });
    modelsLoading = { key, promise };
    return promise;
  }

  async function fetchModels() {
    const ticket = ++modelsRequest;
    const previous = el.model.value;
    el.model.replaceChildren(new Option('(loading…)', ''));
    el.model.disabled = true;
    if (!apiKey) {
      el.model.replaceChildren(new Option('(connect first)', ''));
      setStatus('Enter an API key, then press Connect.');
      return;
    }
    setStatus('Loading models…');
    try {
      const res = await fetch('/v1/models', { headers: authHeaders(), cache: 'no-store' });
      if (ticket !== modelsRequest) return;
      if (!res.ok) throw new Error(await errorMessage(res));
      const body = await res.json();
      if (ticket !== modelsRequest) return;
      // the chat playground offers chat models only (embeddings models are listed with mode: embeddings)
      const entries = (body?.data ?? []).filter((m) => m && m.id && m.mode !== 'embeddings');
      entries.sort((a, b) => (a.alias_for ? 1 : 0) - (b.alias_for ? 1 : 0) || a.id.localeCompare(b.id));
      const ids = entries.map((m) => m.id);
      if (ids.length === 0) {
        el.model.replaceChildren(new Option('(no models)', ''));
        setStatus('Connected, but this key can use no models.', true);
        return;
      }
      // An alias is named for what it is, so nobody takes a small local model for the one it stands in for.
      el.model.replaceChildren(...entries.map((m) => {
        const option = new Option(m.alias_for ? `${m.id} (alias of ${m.alias_for})` : m.id, m.id);
        if (m.alias_for) option.dataset.aliasFor = m.alias_for;
        return option;
      }));
      if (ids.includes(previous)) el.model.value = previous;
      el.model.disabled = Boolean(controller);
      setStatus(`Connected: ${ids.length} model${ids.length === 1 ? '' : 's'} available.`);
    } catch (err) {
      if (ticket !== modelsRequest) return;
      el.model.replaceChildren(new Option('(not connected)', ''));
      setStatus(err.message || String(err), true);
    }
  }

  function addMessage(role, text) {
    const box = document.createElement('div');
    box.className = `msg ${role}`;
    const who = document.createElement('div');
    who.className = 'role';
    who.textContent = role;
    const content = document.createElement('div');
    content.className = 'content';
    content.textContent = text;
    box.append(who, content);
    el.messages.append(box);
    scrollDown();
    return box;
  }

  function scrollDown() {
    el.messages.scrollTop = el.messages.scrollHeight;
  }

  function numberField(input) {
    const v = input.value.trim();
    if (v === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }

  function buildBody(model) {
    const messages = [];
    const system = el.system.value.trim();
    if (system) messages.push({ role: 'system', content: system });
    messages.push(...history);
    const body = { model, messages, stream: true, stream_options: { include_usage: true } };
    const temperature = numberField(el.temperature);
    const maxTokens = numberField(el.maxTokens);
    if (temperature !== undefined) body.temperature = temperature;
    if (maxTokens !== undefined) body.max_tokens = Math.trunc(maxTokens);
    return body;
  }

  // Handles one SSE line; returns true on `data: [DONE]`.
  function handleLine(line, onEvent) {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (!line.startsWith('data:')) return false; // comments, `event:`, blank separators
    const data = line.slice(line.startsWith('data: ') ? 6 : 5);
    if (data === '[DONE]') return true;
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch {
      return false; // ignore a malformed event rather than kill the answer
    }
    onEvent(parsed);
    return false;
  }

  // Reads an SSE body with the fetch reader pattern, calling onEvent(parsedJson) per `data:` line.
  async function readStream(res, onEvent) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
        const lines = buffer.split('\n');
        buffer = done ? '' : lines.pop(); // keep a partial last line for the next read
        for (const line of lines) {
          if (handleLine(line, onEvent)) {
            reader.cancel().catch(() => {});
            return;
          }
        }
        if (done) return;
      }
    } catch (err) {
      reader.cancel().catch(() => {});
      throw err;
    }
  }

  function showStats(s) {
    const parts = [];
    if (s.model) parts.push(`model: ${s.model}`);
    parts.push(`finish: ${s.finish ?? 'unknown'}`);
    if (s.firstAt !== null) parts.push(`ttft: ${Math.round(s.firstAt - s.startAt)} ms`);
    const completion = s.usage?.completion_tokens ?? s.pieces;
    const decodeSeconds = s.firstAt !== null ? (s.endAt - s.firstAt) / 1000 : 0;
    if (completion > 1 && decodeSeconds > 0) {
      parts.push(`${((completion - 1) / decodeSeconds).toFixed(1)} tok/s`);
    } else {
      parts.push('tok/s: n/a');
    }
    if (s.usage) {
      const u = s.usage;
      parts.push(`usage: ${u.prompt_tokens ?? '?'} prompt + ${u.completion_tokens ?? '?'} completion` +
        ` = ${u.total_tokens ?? (u.prompt_tokens ?? 0) + (u.completion_tokens ?? 0)} tokens`);
    } else {
      parts.push('usage: n/a');
    }
    el.stats.replaceChildren(...parts.map((p) => {
      const span = document.createElement('span');
      span.textContent = p;
      return span;
    }));
  }

  async function send() {
    if (controller) return;
    const text = el.prompt.value;
    if (!text.trim()) return;
    if (!apiKey) { setStatus('Enter an API key and press Connect first.', true); return; }
    const model = el.model.value;
    if (!model) { setStatus('Choose a model first (press Connect to load the list).', true); return; }

    history.push({ role: 'user', content: text });
    const userBox = addMessage('user', text);
    const answerBox = addMessage('assistant', '');
    answerBox.classList.add('pending');
    const content = answerBox.querySelector('.content');
    el.prompt.value = '';
    el.stats.replaceChildren();
    setStatus('Generating…');

    controller = new AbortController();
    setBusy(true);
    const s = { startAt: performance.now(), firstAt: null, endAt: 0, finish: null, usage: null, pieces: 0, model: null };
    const who = answerBox.querySelector('.role');
    let failure = null;
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers: authHeaders({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
        body: JSON.stringify(buildBody(model)),
        signal: controller.signal,
      });
      if (!res.ok) throw new Error(await errorMessage(res));
      const onEvent = (evt) => {
        if (evt.error) throw new Error(evt.error.message || JSON.stringify(evt.error));
        if (evt.usage) s.usage = evt.usage;
        if (evt.model && s.model === null) {
          // the model that actually wrote the answer, which an alias does not name
          s.model = evt.model;
          who.textContent = `assistant · ${evt.model}`;
          answerBox.dataset.model = evt.model;
        }
        const choice = evt.choices?.[0];
        const piece = choice?.delta?.content ?? choice?.message?.content;
        if (piece) {
          if (s.firstAt === null) s.firstAt = performance.now();
          s.pieces += 1;
          content.textContent += piece;
          scrollDown();
        }
        if (choice?.finish_reason) s.finish = choice.finish_reason;
      };
      if ((res.headers.get('content-type') || '').includes('application/json')) {
        onEvent(await res.json()); // a server that ignored stream: true
      } else {
        await readStream(res, onEvent);
      }
    } catch (err) {
      failure = err;
    } finally {
      s.endAt = performance.now();
      const aborted = controller.signal.aborted;
      controller = null;
      answerBox.classList.remove('pending');
      const answer = content.textContent;
      if (answer || !(failure || aborted)) {
        history.push({ role: 'assistant', content: answer });
      } else {
        // Nothing came back: undo the turn and give the text back for a retry.
        history.pop();
        userBox.remove();
        answerBox.remove();
        if (!el.prompt.value) el.prompt.value = text;
      }
      if (aborted) {
        s.finish = 'aborted';
        answerBox.classList.add('stopped');
        setStatus('Stopped.');
      } else if (failure) {
        answerBox.classList.add('failed');
        setStatus(failure.message || String(failure), true);
      } else {
        setStatus('Done.');
      }
      if (!failure || aborted || answer) showStats(s);
      setBusy(false);
      el.prompt.focus();
    }
  }

  function stop() {
    if (controller) controller.abort();
  }

  function clearConversation() {
    stop();
    history = [];
    el.messages.replaceChildren();
    el.stats.replaceChildren();
    setStatus(apiKey ? 'New conversation.' : '');
  }

  el.connect.addEventListener('click', loadModels);
  el.key.addEventListener('change', () => {
    if (el.key.value.trim() !== apiKey) loadModels();
  });
  el.key.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); loadModels(); }
  });
  el.send.addEventListener('click', send);
  el.stop.addEventListener('click', stop);
  el.clear.addEventListener('click', clearConversation);
  el.prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });

  setStatus('Enter an API key, then press Connect.');
})();
