// Metrics: a PromQL box, a time range, and the result graphed with uPlot (query_range of
// the Prometheus HTTP API the nodes serve); the range's end follows now while "live" is on.
import { html, useState, useEffect, useMemo, get, qs, navigate, ErrorBox, Table, fmtNum } from '../lib.js';
import { Chart, matrixToChart, seriesLabel } from '../chart.js';

const RANGES = [['5m', 300], ['15m', 900], ['1h', 3600], ['6h', 21600], ['24h', 86400], ['7d', 604800]];
const EXAMPLES = ['constellation_node_cpu_percent', 'constellation_node_memory_used_percent',
	'sum by (node) (rate(constellation_node_network_receive_bytes_total[1m])) * 8'];

export function Metrics({ query }) {
	const [expr, setExpr] = useState(query.get('q') || '');
	const [range, setRange] = useState(query.get('range') || '1h');
	const [live, setLive] = useState(true);
	const [ran, setRan] = useState(query.get('q') || '');
	const [res, setRes] = useState(null);
	const [warnings, setWarnings] = useState([]);
	const [error, setError] = useState(null);
	const [busy, setBusy] = useState(false);
	const [tick, setTick] = useState(0);
	const secs = (RANGES.find(r => r[0] === range) || RANGES[2])[1];
	useEffect(() => {
		if (!ran) return;
		const ac = new AbortController();
		const end = Date.now() / 1000, start = end - secs;
		const step = Math.max(1, Math.ceil(secs / 300));
		setBusy(true);
		get('/api/v1/query_range' + qs({ query: ran, start: start.toFixed(3), end: end.toFixed(3), step }), { signal: ac.signal })
			.then(r => {
				if (r.status !== 'success') throw new Error(r.error || 'query failed');
				setRes(r.data); setError(null); setWarnings(r.warnings || []);
			})
			.catch(e => { if (!ac.signal.aborted) { setError(e); setRes(null); } })
			.finally(() => setBusy(false));
		return () => ac.abort();
	}, [ran, secs, tick]);
	useEffect(() => {
		if (!live || !ran) return;
		const t = setInterval(() => document.visibilityState === 'visible' && setTick(x => x + 1), Math.max(10000, secs * 1000 / 100));
		return () => clearInterval(t);
	}, [live, ran, secs]);
	const run = e => {
		e && e.preventDefault();
		setRan(expr.trim());
		setTick(x => x + 1);
		history.replaceState(null, '', '#/metrics?' + new URLSearchParams({ q: expr.trim(), range }).toString());
	};
	const chart = useMemo(() => res && res.resultType === 'matrix' ? matrixToChart(res.result.slice(0, 40)) : null, [res]);
	return html`<h1>Metrics</h1>
		<form class="query" onSubmit=${run} role="search" aria-label="PromQL query">
			<label for="promql">PromQL</label>
			<textarea id="promql" rows="2" data-testid="promql-input" spellcheck="false" value=${expr}
				onInput=${e => setExpr(e.target.value)} onKeyDown=${e => { if (e.key === 'Enter' && !e.shiftKey) run(e); }}
				placeholder=${EXAMPLES[0]}></textarea>
			<div class="toolbar">
				<label for="range">Range</label>
				<select id="range" value=${range} data-testid="promql-range" onChange=${e => setRange(e.target.value)}>
					${RANGES.map(([r]) => html`<option value=${r}>${r}</option>`)}</select>
				<label><input type="checkbox" checked=${live} onChange=${e => setLive(e.target.checked)} /> follow now</label>
				<button type="submit" class="primary" data-testid="promql-run" disabled=${!expr.trim()}>Run</button>
				<span class="muted" aria-live="polite">${busy ? 'running…' : res ? `${res.result.length} series` : ''}</span>
			</div>
			<p class="muted small">Examples: ${EXAMPLES.map(x => html`<button type="button" class="link" onClick=${() => { setExpr(x); }}>${x}</button> `)}</p>
		</form>
		<${ErrorBox} error=${error} />
		${warnings.length ? html`<p class="warning" role="status" data-testid="promql-warnings">Partial result: ${warnings.join('; ')}</p>` : null}
		${chart && chart.data[0].length ? html`<section class="panel" aria-label="Graph">
			<${Chart} data=${chart.data} series=${chart.series} height=${320} label=${'Graph of ' + ran} testid="promql-chart" />
			${res.result.length > 40 ? html`<p class="muted">Showing 40 of ${res.result.length} series.</p>` : null}
		</section>` : res ? html`<p class="muted" data-testid="promql-empty">No data for this query in the range.</p>` : null}
		${res && res.result.length ? html`<${Table} caption="Latest values" testid="promql-table" rows=${res.result.slice(0, 200)}
			columns=${[{ label: 'Series', render: s => html`<code>${seriesLabel(s.metric)}</code>` },
				{ label: 'Last value', render: s => { const v = s.values ? s.values[s.values.length - 1] : s.value; return v ? fmtNum(Number(v[1]), 3) : '–'; }, cls: 'num' }]} />` : null}`;
}
