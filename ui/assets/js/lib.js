// Shared pieces of the dashboard: the API client (cookie session + CSRF header), the
// session and its permissions, live data hooks (blocking queries, Server-Sent Events),
// formatting and small components. Plain ES modules: no build step.
import { h, render } from '../vendor/preact.mjs';
import { useState, useEffect, useRef, useCallback, useMemo } from '../vendor/preact-hooks.mjs';
import htm from '../vendor/htm.mjs';

export const html = htm.bind(h);
export { h, render, useState, useEffect, useRef, useCallback, useMemo };

// ---- session -------------------------------------------------------------------------

// session is what GET /ui/session answered (api.UISession: kind, name, role, permissions,
// csrf_token, expires); null before login.
export const session = { current: null };

export class APIError extends Error {
	constructor(status, code, message) {
		super(message);
		this.status = status;
		this.code = code;
	}
}

// can says whether the session's permissions allow perm ("instances:write"): an exact
// grant, a wildcard ("instances:*", "*"), or the admin role.
export function can(perm) {
	const s = session.current;
	if (!s) return false;
	const perms = s.permissions || [];
	const [res, verb] = perm.split(':');
	// write implies read; wildcards as the roles write them.
	return perms.includes(perm) || perms.includes(res + ':*') || perms.includes('*') || perms.includes('*:*') ||
		(verb === 'read' && perms.includes(res + ':write'));
}

function csrfHeaders(method) {
	if (method === 'GET' || method === 'HEAD') return {};
	const t = session.current && session.current.csrf_token;
	return t ? { 'X-CSRF-Token': t } : {};
}

// onUnauthorized is set by the app: a 401 anywhere sends the user back to the login page.
export const hooks = { onUnauthorized: () => {} };

async function errorOf(res) {
	let code = 'http_' + res.status, msg = res.status + ' ' + res.statusText;
	try {
		const b = await res.json();
		if (b && b.error) { msg = b.error; code = b.code || code; }
	} catch { /* not JSON */ }
	if (res.status === 401) hooks.onUnauthorized();
	return new APIError(res.status, code, msg);
}

// request sends one API call. body: an object (sent as JSON), a Blob/string (sent raw) or
// undefined. Answers the parsed JSON (or null for 204), with .headers kept on meta.
export async function request(method, path, body, { signal, raw = false, meta } = {}) {
	const headers = { ...csrfHeaders(method) };
	let payload;
	if (body !== undefined && body !== null) {
		if (typeof body === 'string' || body instanceof Blob) payload = body;
		else { payload = JSON.stringify(body); headers['Content-Type'] = 'application/json'; }
	}
	const res = await fetch(path, { method, headers, body: payload, signal, credentials: 'same-origin' });
	if (!res.ok) throw await errorOf(res);
	if (meta) meta.headers = res.headers;
	if (raw) return res;
	if (res.status === 204) return null;
	const ct = res.headers.get('Content-Type') || '';
	return ct.includes('json') ? res.json() : res.text();
}

// settled runs a mutating call whose answer may be lost although the node carried it out:
// a connection Chrome cuts (ERR_NETWORK_CHANGED, as when an instance's network interface
// appears on this very host) is a TypeError, not an API answer. Then check() asks the API
// whether the effect is there; only if not does the error stand.
export async function settled(call, check) {
	try {
		return await call();
	} catch (e) {
		if (e instanceof APIError || !(await check().catch(() => false))) throw e;
		return null;
	}
}

// prefetch starts a GET before the page that needs it renders (the overview's read goes out
// alongside GET /ui/session instead of after it); the first get of the same path within
// 10 s takes its answer.
const prefetched = new Map();
export function prefetch(path) {
	const meta = {};
	const p = request('GET', path, undefined, { meta }).then(data => ({ data, meta }));
	p.catch(() => {}); // a failure is the taker's to see (or nobody's)
	prefetched.set(path, { p, at: Date.now() });
}

export function get(path, opts = {}) {
	const pre = prefetched.get(path);
	if (pre) {
		prefetched.delete(path);
		if (Date.now() - pre.at < 10000) return pre.p.then(({ data, meta }) => { if (opts.meta) opts.meta.headers = meta.headers; return data; });
	}
	return request('GET', path, undefined, opts);
}
export const post = (path, body, opts) => request('POST', path, body ?? {}, opts);
export const del = (path, opts) => request('DELETE', path, undefined, opts);

export function qs(params) {
	const u = new URLSearchParams();
	for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
	const s = u.toString();
	return s ? '?' + s : '';
}

// ---- live data ------------------------------------------------------------------------

const sleep = (ms, signal) => new Promise(r => {
	const t = setTimeout(r, ms);
	signal && signal.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
});

// useBlocking follows a list with blocking queries (?index=N&wait=...): one request per
// change, none while nothing changes. Answers {data, error, index}.
export function useBlocking(path, wait = '60s') {
	const [state, setState] = useState({ data: null, error: null, index: 0 });
	useEffect(() => {
		if (!path) return;
		const ac = new AbortController();
		(async () => {
			let index = 0, failures = 0;
			while (!ac.signal.aborted) {
				const sep = path.includes('?') ? '&' : '?';
				const url = index ? `${path}${sep}index=${index}&wait=${wait}` : path;
				try {
					const meta = {};
					const data = await get(url, { signal: ac.signal, meta });
					const next = Number(meta.headers.get('X-Constellation-Index') || 0);
					if (!index || next !== index || failures) setState({ data, error: null, index: next });
					failures = 0;
					if (!next) await sleep(5000, ac.signal); // no index: a plain list, refreshed slowly
					index = next;
				} catch (e) {
					if (ac.signal.aborted) return;
					// A dropped connection (the browser saw the network change, the node
					// restarted) is retried at once; the error shows when retrying fails too.
					if (++failures > 1 || e instanceof APIError) setState(s => ({ ...s, error: e }));
					index = 0;
					await sleep(failures > 1 ? 2000 : 200, ac.signal);
				}
			}
		})();
		return () => ac.abort();
	}, [path]);
	return state;
}

// useFetch loads path once (and again when deps or the returned reload change).
export function useFetch(path, deps = []) {
	const [state, setState] = useState({ data: null, error: null, loading: true });
	const [n, setN] = useState(0);
	useEffect(() => {
		if (!path) { setState({ data: null, error: null, loading: false }); return; }
		const ac = new AbortController();
		setState(s => ({ ...s, loading: true }));
		const load = () => get(path, { signal: ac.signal });
		// A network error (not an API answer) is retried once before it shows.
		load().catch(e => e instanceof APIError || ac.signal.aborted ? Promise.reject(e) : sleep(300, ac.signal).then(load))
			.then(data => setState({ data, error: null, loading: false }))
			.catch(error => { if (!ac.signal.aborted) setState(s => ({ data: s.data, error, loading: false })); });
		return () => ac.abort();
	}, [path, n, ...deps]);
	return { ...state, reload: useCallback(() => setN(x => x + 1), []) };
}

// useInterval refreshes a value that is sampled rather than changed (stats, rates): every
// `ms` while the page is visible.
export function useInterval(fn, ms, deps = []) {
	useEffect(() => {
		let stop = false;
		const tick = () => { if (!stop && document.visibilityState === 'visible') fn(); };
		tick();
		const t = setInterval(tick, ms);
		return () => { stop = true; clearInterval(t); };
	}, deps);
}

// The event types GET /v1/events sends (SSE event names).
export const EVENT_TYPES = ['node_join', 'node_leave', 'node_suspect', 'node_dead', 'node_alive', 'message', 'instance'];

// subscribeSSE opens an EventSource on url and calls onEvent(type, data, id) for each of the
// named events; EventSource reconnects by itself (sending Last-Event-ID). Answers a close fn.
export function subscribeSSE(url, names, onEvent, onState) {
	const es = new EventSource(url, { withCredentials: true });
	const handler = ev => {
		let data = ev.data;
		try { data = JSON.parse(ev.data); } catch { /* text */ }
		onEvent(ev.type, data, ev.lastEventId);
	};
	for (const n of names) es.addEventListener(n, handler);
	es.onmessage = handler;
	es.onopen = () => onState && onState('open');
	es.onerror = () => onState && onState(es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
	return () => es.close();
}

// useEvents calls onEvent for every cluster event of the types while the component lives;
// replay first replays the events the node retains.
export function useEvents(onEvent, types = EVENT_TYPES, replay = false) {
	const ref = useRef(onEvent);
	ref.current = onEvent;
	const url = '/v1/events' + qs({ type: types === EVENT_TYPES ? '' : types.join(','), since: replay ? 0 : '' });
	useEffect(() => subscribeSSE(url, types, (t, d, id) => ref.current(t, d, id)), [url]);
}

// ---- formatting -----------------------------------------------------------------------

export function fmtBytes(n) {
	if (n === undefined || n === null || isNaN(n)) return '–';
	const u = ['B', 'KB', 'MB', 'GB', 'TB'];
	let i = 0;
	while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
	return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + ' ' + u[i];
}
export const fmtPct = v => (v === undefined || v === null || isNaN(v)) ? '–' : (v < 10 ? v.toFixed(1) : Math.round(v)) + ' %';
export const fmtNum = (v, d = 1) => (v === undefined || v === null || isNaN(v)) ? '–' : Number(v).toFixed(d);
export function fmtTime(t) {
	if (!t || String(t).startsWith('0001-')) return '–';
	const d = new Date(t);
	return isNaN(d) ? String(t) : d.toLocaleString();
}
export function fmtAgo(t) {
	if (!t || String(t).startsWith('0001-')) return '–';
	const s = (Date.now() - new Date(t).getTime()) / 1000;
	if (s < 0) return 'now';
	if (s < 60) return Math.round(s) + ' s ago';
	if (s < 3600) return Math.round(s / 60) + ' min ago';
	if (s < 86400) return Math.round(s / 3600) + ' h ago';
	return Math.round(s / 86400) + ' d ago';
}
export function fmtDuration(sec) {
	if (sec === undefined || sec === null) return '–';
	if (sec < 60) return Math.round(sec) + ' s';
	if (sec < 3600) return Math.round(sec / 60) + ' min';
	if (sec < 86400) return (sec / 3600).toFixed(1) + ' h';
	return (sec / 86400).toFixed(1) + ' d';
}

// ---- components -----------------------------------------------------------------------

const GOOD = new Set(['alive', 'running', 'healthy', 'passing', 'ok', 'allow', 'active', 'firing']);
const BAD = new Set(['dead', 'failed', 'oom_killed', 'unhealthy', 'critical', 'error', 'failing', 'deny']);
const WARN = new Set(['suspect', 'degraded', 'pending', 'starting', 'created', 'draining', 'warning', 'relayed', 'unknown', 'exited', 'stopped', 'left']);

// Badge shows a status word with a colour and the word itself (never colour alone).
export function Badge({ status, testid, kind }) {
	const s = String(status || 'unknown');
	const k = kind || (s === 'firing' ? 'bad' : GOOD.has(s) ? 'good' : BAD.has(s) ? 'bad' : WARN.has(s) ? 'warn' : 'neutral');
	return html`<span class=${'badge ' + k} data-testid=${testid} data-status=${s}>${s}</span>`;
}

export function ErrorBox({ error }) {
	if (!error) return null;
	return html`<div class="error" role="alert">${error.message || String(error)}</div>`;
}

export function Loading({ what }) {
	return html`<p class="muted" aria-busy="true">Loading ${what || ''}…</p>`;
}

export function Empty({ children }) {
	return html`<p class="muted empty">${children}</p>`;
}

// Card is one labelled figure of a summary row.
export function Card({ label, value, sub, testid, tone }) {
	return html`<div class=${'card ' + (tone || '')} data-testid=${testid}>
		<div class="card-label">${label}</div>
		<div class="card-value">${value}</div>
		${sub ? html`<div class="card-sub">${sub}</div>` : null}
	</div>`;
}

// Confirm is a modal <dialog> asking before a destructive action: focus goes to Cancel,
// Escape closes it.
export function Confirm({ open, title, children, confirmLabel = 'Confirm', danger = true, onConfirm, onCancel, busy }) {
	const ref = useRef(null);
	useEffect(() => {
		const d = ref.current;
		if (!d) return;
		if (open && !d.open) { d.showModal(); d.querySelector('[data-cancel]')?.focus(); }
		if (!open && d.open) d.close();
	}, [open]);
	return html`<dialog ref=${ref} class="confirm" aria-labelledby="confirm-title" data-testid="confirm-dialog"
			onCancel=${e => { e.preventDefault(); onCancel(); }}>
		<h2 id="confirm-title">${title}</h2>
		<div>${children}</div>
		<div class="actions">
			<button type="button" data-cancel onClick=${onCancel}>Cancel</button>
			<button type="button" class=${danger ? 'danger' : 'primary'} data-testid="confirm-ok" disabled=${busy}
				onClick=${onConfirm}>${confirmLabel}</button>
		</div>
	</dialog>`;
}

// useConfirm drives a Confirm dialog: ask({title, body, label, action}) opens it; the action
// runs on confirm and its error is shown by the caller through the returned error.
export function useConfirm() {
	const [st, setSt] = useState(null);
	const [busy, setBusy] = useState(false);
	const [error, setError] = useState(null);
	const ask = useCallback(o => { setError(null); setSt(o); }, []);
	const dialog = html`<${Confirm} open=${!!st} title=${st?.title} confirmLabel=${st?.label} busy=${busy}
		onCancel=${() => setSt(null)}
		onConfirm=${async () => {
			setBusy(true);
			try { await st.action(); setSt(null); } catch (e) { setError(e); setSt(null); }
			setBusy(false);
		}}>${st?.body}<//>`;
	return { ask, dialog, error, clearError: () => setError(null) };
}

// Field is a labelled form control.
export function Field({ label, id, children, hint }) {
	return html`<div class="field"><label for=${id}>${label}</label>${children}${hint ? html`<small class="muted">${hint}</small>` : null}</div>`;
}

// Table renders rows with a caption (for screen readers) and a scrolling wrapper so wide
// tables stay usable on a phone.
export function Table({ caption, columns, rows, rowKey, testid, empty = 'Nothing to show.', rowProps }) {
	if (!rows) return html`<${Loading} what=${caption} />`;
	if (!rows.length) return html`<${Empty}>${empty}<//>`;
	return html`<div class="table-wrap" tabindex="0" role="region" aria-label=${caption}>
		<table data-testid=${testid}>
			<caption class="sr-only">${caption}</caption>
			<thead><tr>${columns.map(c => html`<th scope="col" class=${c.cls}>${c.label}</th>`)}</tr></thead>
			<tbody>${rows.map((r, i) => html`<tr key=${rowKey ? rowKey(r) : i} ...${rowProps ? rowProps(r) : {}}>
				${columns.map(c => html`<td class=${c.cls} data-label=${c.label}>${c.render ? c.render(r) : r[c.key]}</td>`)}
			</tr>`)}</tbody>
		</table>
	</div>`;
}

// Tabs: a row of buttons with aria-selected; the caller renders the panel. As the ARIA tabs
// pattern has it, Tab reaches the selected tab only and the arrow keys, Home and End move
// between tabs.
export function Tabs({ tabs, value, onChange, label }) {
	const key = e => {
		const i = tabs.findIndex(t => t.id === value);
		const j = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
		if (j === undefined) return;
		e.preventDefault();
		const n = (j + tabs.length) % tabs.length;
		onChange(tabs[n].id);
		e.currentTarget.querySelectorAll('[role="tab"]')[n]?.focus();
	};
	return html`<div role="tablist" aria-label=${label} class="tabs" onKeyDown=${key}>
		${tabs.map(t => html`<button role="tab" type="button" aria-selected=${value === t.id} data-testid=${'tab-' + t.id}
			tabindex=${value === t.id ? 0 : -1} class=${value === t.id ? 'active' : ''} onClick=${() => onChange(t.id)}>${t.label}</button>`)}
	</div>`;
}

// navigate changes the hash route.
export function navigate(path) { location.hash = '#' + path; }

// Link is an in-app link to a hash route.
export function Link({ to, children, ...rest }) {
	return html`<a href=${'#' + to} ...${rest}>${children}</a>`;
}

export const enc = encodeURIComponent;
