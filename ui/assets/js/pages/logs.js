// Logs: search every node's log store, and follow matching entries live (SSE).
import { html, useState, useEffect, useRef, get, qs, subscribeSSE, ErrorBox, Table, Badge, fmtTime } from '../lib.js';

const SINCE = ['15m', '1h', '6h', '24h', '7d'];

export function Logs({ query }) {
	const [q, setQ] = useState(query.get('q') || '');
	const [since, setSince] = useState('1h');
	const [limit, setLimit] = useState(200);
	const [res, setRes] = useState(null);
	const [error, setError] = useState(null);
	const [busy, setBusy] = useState(false);
	const [tail, setTail] = useState(false);
	const [live, setLive] = useState([]);
	const [tailState, setTailState] = useState('');
	const search = async e => {
		e && e.preventDefault();
		setBusy(true);
		setError(null);
		try { setRes(await get('/v1/monitor/logs' + qs({ q: q.trim(), since, limit }))); } catch (err) { setError(err); setRes(null); }
		setBusy(false);
	};
	useEffect(() => {
		if (!tail) return;
		setLive([]);
		setTailState('connecting');
		return subscribeSSE('/v1/monitor/logs' + qs({ q: q.trim(), follow: 1 }), ['log', 'warning'], (type, d) => {
			if (type === 'log') setLive(l => [d, ...l].slice(0, 1000));
			else setTailState('warning: ' + (d && d.message || d));
		}, st => setTailState(st === 'open' ? 'following' : st));
	}, [tail]);
	const cols = [
		{ label: 'Time', render: e => fmtTime(e.time) },
		{ label: 'Node', render: e => e.node + (e.instance ? '/' + e.instance : '') },
		{ label: 'Level', render: e => e.level ? html`<${Badge} status=${e.level} kind=${e.level === 'error' ? 'bad' : e.level === 'warn' || e.level === 'warning' ? 'warn' : 'neutral'} />` : e.stream },
		{ label: 'Message', render: e => html`<span class="msg">${e.message}</span>${Object.entries(e.fields || {}).map(([k, v]) => html` <span class="tag">${k}=${v}</span>`)}` },
	];
	return html`<h1>Logs</h1>
		<form class="query" onSubmit=${search} role="search" aria-label="Log search">
			<label for="logq">Query</label>
			<input id="logq" data-testid="logs-query" value=${q} onInput=${e => setQ(e.target.value)} placeholder='level:error OR "connection refused"' disabled=${tail} />
			<div class="toolbar">
				<label for="since">Since</label><select id="since" value=${since} onChange=${e => setSince(e.target.value)}>${SINCE.map(s => html`<option>${s}</option>`)}</select>
				<label for="limit">Limit</label><input id="limit" type="number" min="1" max="10000" value=${limit} onInput=${e => setLimit(e.target.value)} class="short" />
				<button type="submit" class="primary" data-testid="logs-search" disabled=${tail}>Search</button>
				<label><input type="checkbox" checked=${tail} data-testid="logs-tail" onChange=${e => setTail(e.target.checked)} /> Live tail</label>
				<span class="muted" aria-live="polite">${busy ? 'searching…' : tail ? tailState : res ? `${res.entries.length} entries from ${(res.nodes || []).length} nodes` : ''}</span>
			</div>
		</form>
		<${ErrorBox} error=${error} />
		${res && res.warnings && res.warnings.length ? html`<div class="warning" role="status">${res.warnings.join('; ')}</div>` : null}
		${tail ? html`<div aria-live="polite" aria-relevant="additions"><${Table} caption="Live log entries" testid="logs-live" columns=${cols} rows=${live}
			empty="Waiting for matching entries…" /></div>`
		: res ? html`<${Table} caption="Log entries" testid="logs-results" columns=${cols} rows=${res.entries} empty="No entry matches." />` : null}`;
}
