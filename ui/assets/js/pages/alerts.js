// Alerts: firing and pending alerts, silences (add, expire) and rules (add, remove).
import { html, useState, useFetch, useInterval, post, del, can, enc, Table, Badge, ErrorBox, Field, Tabs, fmtAgo, fmtTime, fmtNum, useConfirm } from '../lib.js';

export function Alerts() {
	const alerts = useFetch('/v1/monitor/alerts');
	const silences = useFetch('/v1/monitor/silences');
	const rules = useFetch('/v1/monitor/rules');
	const [tab, setTab] = useState('alerts');
	const confirm = useConfirm();
	const mayWrite = can('telemetry:write');
	// Rules are evaluated on their interval (default 30 s): read again every 10 s.
	useInterval(() => { alerts.reload(); rules.reload(); }, 10000);
	const firing = (alerts.data || []).filter(a => a.state === 'firing');
	const pending = (alerts.data || []).filter(a => a.state === 'pending');
	const labels = l => Object.entries(l || {}).map(([k, v]) => html`<span class="tag">${k}=${v}</span> `);
	const alertCols = [
		{ label: 'Rule', key: 'rule' },
		{ label: 'State', render: a => html`<${Badge} status=${a.state} />${a.silenced ? html` <${Badge} status="silenced" kind="neutral" />` : null}` },
		{ label: 'Severity', render: a => html`<${Badge} status=${a.severity || 'warning'} />` },
		{ label: 'Labels', render: a => labels(a.labels) },
		{ label: 'Value', render: a => fmtNum(a.value, 2), cls: 'num' },
		{ label: 'Since', render: a => fmtAgo(a.fired_at && !String(a.fired_at).startsWith('0001') ? a.fired_at : a.active_at) },
		{ label: 'Message', render: a => (a.annotations && (a.annotations.message || a.annotations.summary)) || '' },
	];
	return html`<h1>Alerts</h1>
		<${ErrorBox} error=${alerts.error || silences.error || rules.error || confirm.error} />
		<${Tabs} label="Alerts" value=${tab} onChange=${setTab} tabs=${[
			{ id: 'alerts', label: `Firing (${firing.length})` }, { id: 'pending', label: `Pending (${pending.length})` },
			{ id: 'silences', label: 'Silences' }, { id: 'rules', label: 'Rules' }]} />
		<div role="tabpanel" class="panel" aria-live="polite">
		${tab === 'alerts' ? html`<${Table} caption="Firing alerts" testid="alerts-firing" columns=${alertCols} rows=${alerts.data ? firing : null} rowKey=${a => a.fingerprint} empty="No alert is firing." />`
		: tab === 'pending' ? html`<${Table} caption="Pending alerts" columns=${alertCols} rows=${alerts.data ? pending : null} rowKey=${a => a.fingerprint} empty="No alert is pending." />`
		: tab === 'silences' ? html`${mayWrite ? html`<${SilenceForm} onDone=${silences.reload} />` : null}
			<${Table} caption="Silences" rows=${silences.data} rowKey=${s => s.id} empty="No active silence."
				columns=${[{ label: 'Matchers', render: s => (s.matchers || []).map(m => html`<code>${m}</code> `) }, { label: 'Ends', render: s => fmtTime(s.ends_at) },
					{ label: 'Comment', key: 'comment' }, { label: 'By', key: 'created_by' }, { label: 'Active', render: s => html`<${Badge} status=${s.active ? 'active' : 'expired'} />` },
					...(mayWrite ? [{ label: 'Actions', render: s => html`<button type="button" onClick=${() => confirm.ask({ title: 'Expire this silence?', label: 'Expire',
						body: html`<p>Matching alerts notify again.</p>`, action: async () => { await del('/v1/monitor/silences/' + enc(s.id)); silences.reload(); } })}>Expire</button>` }] : [])]} />`
		: html`${mayWrite ? html`<${RuleForm} onDone=${rules.reload} />` : null}
			<${Table} caption="Alert rules" testid="alert-rules" rows=${rules.data} rowKey=${r => r.name} empty="No rule."
				columns=${[{ label: 'Name', key: 'name' }, { label: 'Expression', render: r => html`<code>${r.expr || (r.anomaly ? 'anomaly: ' + r.metric : r.kind)}</code>` },
					{ label: 'For', render: r => r.for || '–' }, { label: 'Severity', render: r => r.severity || 'warning' },
					{ label: 'Firing / pending', render: r => `${r.firing} / ${r.pending}`, cls: 'num' }, { label: 'Evaluated by', render: r => r.owner || '–' },
					{ label: 'Last error', render: r => r.last_error ? html`<span class="bad-text">${r.last_error}</span>` : '' },
					...(mayWrite ? [{ label: 'Actions', render: r => html`<button type="button" class="danger" onClick=${() => confirm.ask({ title: `Remove rule ${r.name}?`,
						label: 'Remove', body: html`<p>Its alerts resolve.</p>`, action: async () => { await del('/v1/monitor/rules/' + enc(r.name)); rules.reload(); } })}>Remove</button>` }] : [])]} />`}
		</div>
		${confirm.dialog}`;
}

function SilenceForm({ onDone }) {
	const [f, setF] = useState({ matchers: '', duration: '1h', comment: '' });
	const [error, setError] = useState(null);
	const submit = async e => {
		e.preventDefault();
		setError(null);
		try {
			await post('/v1/monitor/silences', { matchers: f.matchers.split(',').map(s => s.trim()).filter(Boolean), duration: f.duration, comment: f.comment });
			setF({ matchers: '', duration: '1h', comment: '' });
			onDone();
		} catch (err) { setError(err); }
	};
	return html`<form class="grid" onSubmit=${submit} aria-label="New silence">
		<${Field} label="Matchers (comma separated)" id="s-m"><input id="s-m" required placeholder='alertname="HighCPU", node="n1"' value=${f.matchers} onInput=${e => setF({ ...f, matchers: e.target.value })} /><//>
		<${Field} label="Duration" id="s-d"><input id="s-d" required value=${f.duration} onInput=${e => setF({ ...f, duration: e.target.value })} /><//>
		<${Field} label="Comment" id="s-c"><input id="s-c" value=${f.comment} onInput=${e => setF({ ...f, comment: e.target.value })} /><//>
		<div class="field"><span aria-hidden="true"> </span><button type="submit" class="primary">Silence</button></div>
		<${ErrorBox} error=${error} />
	</form>`;
}

function RuleForm({ onDone }) {
	const empty = { name: '', expr: '', for: '', severity: 'warning', message: '' };
	const [f, setF] = useState(empty);
	const [error, setError] = useState(null);
	const set = k => e => setF({ ...f, [k]: e.target.value });
	const submit = async e => {
		e.preventDefault();
		setError(null);
		const body = { name: f.name.trim(), expr: f.expr, severity: f.severity };
		if (f.for) body.for = f.for;
		if (f.message) body.message = f.message;
		try { await post('/v1/monitor/rules', body); setF(empty); onDone(); } catch (err) { setError(err); }
	};
	return html`<form class="grid" onSubmit=${submit} aria-label="New rule">
		<${Field} label="Name" id="r-n"><input id="r-n" required value=${f.name} onInput=${set('name')} /><//>
		<${Field} label="PromQL expression" id="r-e"><input id="r-e" required placeholder="constellation_node_cpu_percent > 90" value=${f.expr} onInput=${set('expr')} /><//>
		<${Field} label="For" id="r-f"><input id="r-f" placeholder="5m" value=${f.for} onInput=${set('for')} /><//>
		<${Field} label="Severity" id="r-s"><select id="r-s" value=${f.severity} onChange=${set('severity')}>
			<option>critical</option><option>warning</option><option>info</option></select><//>
		<${Field} label="Message" id="r-m"><input id="r-m" value=${f.message} onInput=${set('message')} /><//>
		<div class="field"><span aria-hidden="true"> </span><button type="submit" class="primary">Add rule</button></div>
		<${ErrorBox} error=${error} />
	</form>`;
}
