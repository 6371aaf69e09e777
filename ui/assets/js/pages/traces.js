// Traces: search spans across nodes by service, operation, minimum duration and status, and
// show one trace as a waterfall.
import { html, useState, useFetch, get, qs, enc, navigate, ErrorBox, Table, Badge, Link, Field, fmtTime, fmtNum } from '../lib.js';

export function Traces({ arg, query }) {
	if (arg) return html`<${Waterfall} id=${arg} />`;
	return html`<${TraceSearch} query=${query} />`;
}

function TraceSearch({ query }) {
	const [f, setF] = useState({ service: query.get('service') || '', operation: '', min_duration: '', status: '', since: '1h', limit: 50 });
	const [res, setRes] = useState(null);
	const [error, setError] = useState(null);
	const set = k => e => setF({ ...f, [k]: e.target.value });
	const search = async e => {
		e && e.preventDefault();
		setError(null);
		try { setRes(await get('/v1/monitor/traces' + qs(f))); } catch (err) { setError(err); setRes(null); }
	};
	return html`<h1>Traces</h1>
		<form class="grid query" onSubmit=${search} role="search" aria-label="Trace search">
			<${Field} label="Service" id="t-s"><input id="t-s" value=${f.service} onInput=${set('service')} data-testid="traces-service" /><//>
			<${Field} label="Operation" id="t-o"><input id="t-o" value=${f.operation} onInput=${set('operation')} /><//>
			<${Field} label="Min duration" id="t-d"><input id="t-d" placeholder="100ms" value=${f.min_duration} onInput=${set('min_duration')} /><//>
			<${Field} label="Status" id="t-st"><select id="t-st" value=${f.status} onChange=${set('status')}><option value="">any</option><option>ok</option><option>error</option></select><//>
			<${Field} label="Since" id="t-since"><select id="t-since" value=${f.since} onChange=${set('since')}>${['15m', '1h', '6h', '24h', '7d'].map(s => html`<option>${s}</option>`)}</select><//>
			<div class="field"><span aria-hidden="true"> </span><button type="submit" class="primary" data-testid="traces-search">Search</button></div>
		</form>
		<${ErrorBox} error=${error} />
		${res && res.warnings && res.warnings.length ? html`<div class="warning" role="status">${res.warnings.join('; ')}</div>` : null}
		${res ? html`<${Table} caption="Traces" testid="traces-results" rows=${res.traces} rowKey=${t => t.trace_id} empty="No trace matches."
			columns=${[{ label: 'Trace', render: t => html`<${Link} to=${'/traces/' + t.trace_id}><code>${t.trace_id.slice(0, 12)}…</code></${Link}>` },
				{ label: 'Service', key: 'service' }, { label: 'Operation', key: 'operation' }, { label: 'Start', render: t => fmtTime(t.start) },
				{ label: 'Duration', render: t => fmtNum(t.duration_ms, 2) + ' ms', cls: 'num' }, { label: 'Spans', key: 'spans', cls: 'num' },
				{ label: 'Nodes', render: t => (t.nodes || []).join(', ') }, { label: 'Status', render: t => html`<${Badge} status=${t.status || 'unset'} />` }]} />` : null}`;
}

// Waterfall draws each span as a bar on the trace's time axis, indented under its parent.
function Waterfall({ id }) {
	const t = useFetch('/v1/monitor/traces/' + enc(id));
	const [open, setOpen] = useState(null);
	const spans = (t.data && t.data.spans) || [];
	const t0 = Math.min(...spans.map(s => new Date(s.start).getTime()));
	const t1 = Math.max(...spans.map(s => new Date(s.end).getTime()));
	const total = Math.max(t1 - t0, 0.001);
	const depth = {};
	const byId = Object.fromEntries(spans.map(s => [s.span_id, s]));
	const d = s => depth[s.span_id] ?? (depth[s.span_id] = s.parent_span_id && byId[s.parent_span_id] && byId[s.parent_span_id] !== s ? Math.min(d(byId[s.parent_span_id]) + 1, 20) : 0);
	// Depth-first order: children under their parent, by start.
	const kids = {};
	for (const s of spans) (kids[s.parent_span_id && byId[s.parent_span_id] ? s.parent_span_id : ''] ||= []).push(s);
	const order = [];
	const walk = (pid, seen) => { for (const s of kids[pid] || []) if (!seen.has(s.span_id)) { seen.add(s.span_id); order.push(s); walk(s.span_id, seen); } };
	walk('', new Set());
	return html`<p><${Link} to="/traces">← Traces</${Link}></p>
		<h1>Trace <code class="small">${id}</code></h1>
		<${ErrorBox} error=${t.error} />
		${t.data ? html`<p class="muted">${spans.length} spans · ${fmtNum(total, 2)} ms · nodes ${(t.data.nodes || []).join(', ')}</p>
		<ol class="waterfall" data-testid="trace-waterfall" aria-label="Spans by start">
			${order.map(s => {
				const st = new Date(s.start).getTime(), en = new Date(s.end).getTime();
				const left = ((st - t0) / total) * 100, width = Math.max(((en - st) / total) * 100, 0.3);
				return html`<li style=${{ '--depth': d(s) }}>
					<button type="button" class="span-row" aria-expanded=${open === s.span_id} onClick=${() => setOpen(open === s.span_id ? null : s.span_id)}>
						<span class="span-name"><strong>${s.service || '?'}</strong> ${s.name}</span>
						<span class="span-track"><span class=${'span-bar ' + (s.status === 'error' ? 'err' : '')} style=${{ left: left + '%', width: width + '%' }}></span></span>
						<span class="span-dur">${fmtNum(s.duration_ms, 2)} ms</span>
					</button>
					${open === s.span_id ? html`<dl class="span-attrs">
						<dt>span</dt><dd><code>${s.span_id}</code></dd><dt>node</dt><dd>${s.node || '–'}${s.instance ? ' / ' + s.instance : ''}</dd>
						<dt>kind</dt><dd>${s.kind || '–'}</dd><dt>status</dt><dd>${s.status || 'unset'} ${s.status_message || ''}</dd>
						${Object.entries(s.attributes || {}).map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}
					</dl>` : null}
				</li>`;
			})}
		</ol>` : null}`;
}
