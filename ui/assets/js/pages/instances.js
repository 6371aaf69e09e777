// Instances: the filtered list (live through a blocking query), a create form, and one
// instance's detail with live logs, a stats graph and restart/stop/start/remove.
import { html, useState, useEffect, useRef, useMemo, useBlocking, useFetch, useEvents, useInterval, get, post, del, request, settled, can, enc, qs, navigate,
	Table, Badge, ErrorBox, Field, Link, Tabs, fmtPct, fmtNum, fmtDuration, useConfirm, APIError } from '../lib.js';
import { Chart } from '../chart.js';

const STATUSES = ['created', 'starting', 'running', 'stopped', 'exited', 'failed', 'oom_killed'];

export function Instances({ arg, query }) {
	if (arg) return html`<${Instance} name=${arg} />`;
	return html`<${InstanceList} query=${query} />`;
}

function InstanceList({ query }) {
	const [node, setNode] = useState(query.get('node') || '');
	const [ns, setNs] = useState(query.get('namespace') || '');
	const [status, setStatus] = useState(query.get('status') || '');
	const [showCreate, setShowCreate] = useState(false);
	const path = '/v1/instances' + qs({ node, namespace: ns, status });
	const list = useBlocking(path);
	const nodes = useBlocking('/v1/nodes');
	const namespaces = useFetch('/v1/namespaces');
	const mayWrite = can('instances:write');
	const cols = [
		{ label: 'Name', render: i => html`<${Link} to=${'/instances/' + i.name} data-testid=${'instance-link-' + i.name}>${i.name}</${Link}>` },
		{ label: 'Status', render: i => html`<${Badge} status=${i.status} testid=${'instance-status-' + i.name} />${i.exit_reason ? html` <small class="muted">${i.exit_reason}</small>` : null}` },
		{ label: 'Node', render: i => html`${i.node}${i.node_status && i.node_status !== 'alive' ? html` <${Badge} status=${i.node_status} />` : null}` },
		{ label: 'Namespace', key: 'namespace' },
		{ label: 'Deployment', render: i => i.deployment || '–' },
		{ label: 'CPU limit', render: i => i.cpu_percent ? fmtPct(i.cpu_percent) : '–', cls: 'num' },
		{ label: 'RAM limit', render: i => i.ram_mb ? `${i.ram_mb} MB` : '–', cls: 'num' },
		{ label: 'Restarts', key: 'restarts', cls: 'num' },
	];
	return html`<h1>Instances</h1>
		<${ErrorBox} error=${list.error} />
		<form class="filters" onSubmit=${e => e.preventDefault()} aria-label="Filter instances">
			<${Field} label="Node" id="f-node"><select id="f-node" value=${node} onChange=${e => setNode(e.target.value)} data-testid="filter-node">
				<option value="">all</option>${(nodes.data || []).map(n => html`<option value=${n.name}>${n.name}</option>`)}</select><//>
			<${Field} label="Namespace" id="f-ns"><select id="f-ns" value=${ns} onChange=${e => setNs(e.target.value)} data-testid="filter-namespace">
				<option value="">all</option>${nsNames(namespaces.data).map(n => html`<option value=${n}>${n}</option>`)}</select><//>
			<${Field} label="Status" id="f-status"><select id="f-status" value=${status} onChange=${e => setStatus(e.target.value)} data-testid="filter-status">
				<option value="">all</option>${STATUSES.map(s => html`<option value=${s}>${s}</option>`)}</select><//>
			${mayWrite ? html`<button type="button" class="primary push" data-testid="instance-new" aria-expanded=${showCreate}
				onClick=${() => setShowCreate(!showCreate)}>New instance</button>` : null}
		</form>
		${showCreate && mayWrite ? html`<${CreateForm} nodes=${nodes.data || []} namespaces=${nsNames(namespaces.data)}
			onDone=${name => { setShowCreate(false); navigate('/instances/' + name); }} onCancel=${() => setShowCreate(false)} />` : null}
		<${Table} caption="Instances" testid="instances-table" columns=${cols} rows=${list.data} rowKey=${i => i.id || i.name}
			rowProps=${i => ({ 'data-testid': 'instance-row-' + i.name })} empty="No instance matches." />`;
}

function nsNames(d) {
	if (!d) return ['default'];
	const names = d.map(x => typeof x === 'string' ? x : x.name);
	return names.includes('default') ? names : ['default', ...names];
}

// splitCommand splits a command line on blanks, keeping quoted parts together.
export function splitCommand(s) {
	const out = [];
	const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
	let m;
	while ((m = re.exec(s))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2] !== undefined ? m[2] : m[3]);
	return out;
}

function CreateForm({ nodes, namespaces, onDone, onCancel }) {
	const [f, setF] = useState({ name: '', namespace: 'default', node: '', command: '', runtime: '', cpu_percent: '', ram_mb: '', disk_mb: '', restart: '', env: '' });
	const [error, setError] = useState(null);
	const [busy, setBusy] = useState(false);
	const set = k => e => setF({ ...f, [k]: e.target.value });
	const submit = async e => {
		e.preventDefault();
		setError(null);
		const body = { name: f.name.trim() };
		if (f.namespace && f.namespace !== 'default') body.namespace = f.namespace;
		if (f.node) body.node = f.node;
		const cmd = splitCommand(f.command);
		if (f.runtime) { body.runtime = f.runtime; body.script = cmd[0]; if (cmd.length > 1) body.args = cmd.slice(1); }
		else body.command = cmd;
		for (const k of ['cpu_percent', 'ram_mb', 'disk_mb']) if (f[k] !== '') body[k] = Number(f[k]);
		if (f.restart) body.restart = f.restart;
		const env = {};
		for (const line of f.env.split('\n').map(s => s.trim()).filter(Boolean)) {
			const i = line.indexOf('=');
			if (i < 1) { setError(new Error(`environment line "${line}" must be NAME=value`)); return; }
			env[line.slice(0, i)] = line.slice(i + 1);
		}
		if (Object.keys(env).length) body.env = env;
		setBusy(true);
		try {
			const r = await settled(() => post('/v1/instances', body),
				() => get('/v1/instances/' + enc(body.name)).then(() => true));
			onDone((r && r.name) || body.name);
		} catch (err) { setError(err); }
		setBusy(false);
	};
	return html`<form class="panel create" onSubmit=${submit} data-testid="create-form" aria-labelledby="create-title">
		<h2 id="create-title">New instance</h2>
		<div class="grid">
			<${Field} label="Name" id="c-name"><input id="c-name" required value=${f.name} onInput=${set('name')} data-testid="create-name"
				pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]{0,62}" title="1-63 letters, digits, '_', '.' or '-', starting with a letter or digit" /><//>
			<${Field} label="Namespace" id="c-ns"><select id="c-ns" value=${f.namespace} onChange=${set('namespace')}>
				${namespaces.map(n => html`<option value=${n}>${n}</option>`)}</select><//>
			<${Field} label="Node" id="c-node" hint="empty: the scheduler picks one"><select id="c-node" value=${f.node} onChange=${set('node')} data-testid="create-node">
				<option value="">any</option>${nodes.filter(n => n.status === 'alive').map(n => html`<option value=${n.name}>${n.name}</option>`)}</select><//>
			<${Field} label="Runtime" id="c-rt" hint="empty: run the command directly"><select id="c-rt" value=${f.runtime} onChange=${set('runtime')}>
				<option value="">command</option><option value="rads">rads</option><option value="python">python</option><option value="node">node</option></select><//>
			<${Field} label=${f.runtime ? 'Script and arguments' : 'Command'} id="c-cmd" hint="quotes group words: sh -c \"echo hi; sleep 100\"">
				<input id="c-cmd" required value=${f.command} onInput=${set('command')} data-testid="create-command" placeholder="sleep 3600" /><//>
			<${Field} label="CPU (% of one core)" id="c-cpu"><input id="c-cpu" type="number" min="1" step="1" value=${f.cpu_percent} onInput=${set('cpu_percent')} data-testid="create-cpu" /><//>
			<${Field} label="RAM (MB)" id="c-ram"><input id="c-ram" type="number" min="1" step="1" value=${f.ram_mb} onInput=${set('ram_mb')} data-testid="create-ram" /><//>
			<${Field} label="Disk (MB)" id="c-disk"><input id="c-disk" type="number" min="1" step="1" value=${f.disk_mb} onInput=${set('disk_mb')} /><//>
			<${Field} label="Restart" id="c-restart"><select id="c-restart" value=${f.restart} onChange=${set('restart')}>
				<option value="">default</option><option value="no">no</option><option value="on-failure">on-failure</option><option value="always">always</option></select><//>
			<${Field} label="Environment (NAME=value per line)" id="c-env"><textarea id="c-env" rows="2" value=${f.env} onInput=${set('env')}></textarea><//>
		</div>
		<${ErrorBox} error=${error} />
		<div class="actions">
			<button type="button" onClick=${onCancel}>Cancel</button>
			<button type="submit" class="primary" disabled=${busy} data-testid="create-submit">Create</button>
		</div>
	</form>`;
}

function Instance({ name }) {
	// The record is read again on each instance event naming it (no polling).
	const rec = useFetch('/v1/instances/' + enc(name));
	useEvents((t, ev) => { if (ev && ev.data && ev.data.name === name) rec.reload(); }, ['instance']);
	const [tab, setTab] = useState('logs');
	const [msg, setMsg] = useState('');
	const confirm = useConfirm();
	const i = rec.data;
	const mayWrite = can('instances:write');
	// A lost answer to restart/stop/start is settled by the record read again (it shows what
	// happened); answers from the API (refusals) show as errors.
	const act = (verb, title, body, fn) => confirm.ask({ title, body, label: verb, action: async () => {
		await settled(fn, async () => { rec.reload(); return true; });
		setMsg(`${verb}: done`);
	} });
	return html`<p><${Link} to="/instances">← Instances</${Link}></p>
		<h1>Instance <span data-testid="instance-name">${name}</span></h1>
		<${ErrorBox} error=${rec.error || confirm.error} />
		<p class="sr-only" aria-live="polite">${msg}</p>
		${i ? html`<section class="cards" aria-label="Instance">
			<div class="card"><div class="card-label">Status</div><div class="card-value"><${Badge} status=${i.status} testid="instance-detail-status" /></div>
				${i.exit_reason ? html`<div class="card-sub">${i.exit_reason}${i.exit_code !== null ? ` (exit ${i.exit_code})` : ''}</div>` : null}</div>
			<div class="card"><div class="card-label">Node</div><div class="card-value">${i.node}</div><div class="card-sub">${i.namespace}</div></div>
			<div class="card"><div class="card-label">Restarts</div><div class="card-value">${i.restarts}</div></div>
			<div class="card"><div class="card-label">Command</div><div class="card-value small"><code>${(i.command || []).join(' ') || i.script || '–'}</code></div></div>
		</section>` : null}
		${i && mayWrite ? html`<div class="actions left" role="group" aria-label="Instance actions">
			<button type="button" data-testid="instance-restart" onClick=${() => act('Restart', `Restart ${name}?`, html`<p>The process is stopped and started again.</p>`,
				() => post(`/v1/instances/${enc(name)}/restart`))}>Restart</button>
			${i.status === 'running' || i.status === 'starting' ? html`<button type="button" data-testid="instance-stop" onClick=${() => act('Stop', `Stop ${name}?`,
				html`<p>SIGTERM, then SIGKILL after 10 s.</p>`, () => post(`/v1/instances/${enc(name)}/stop`))}>Stop</button>`
			: html`<button type="button" data-testid="instance-start" onClick=${() => act('Start', `Start ${name}?`, html`<p>Starts the stopped instance.</p>`,
				() => post(`/v1/instances/${enc(name)}/start`))}>Start</button>`}
			<button type="button" class="danger" data-testid="instance-rm" onClick=${() => act('Remove', `Remove ${name}?`,
				html`<p>Stops the instance and deletes it and its files. This cannot be undone.</p>`,
				async () => {
					await settled(() => del(`/v1/instances/${enc(name)}`),
						() => get(`/v1/instances/${enc(name)}`).then(() => false, e => e.status === 404));
					navigate('/instances');
				})}>Remove</button>
		</div>` : null}
		<${Tabs} label="Instance detail" value=${tab} onChange=${setTab} tabs=${[{ id: 'logs', label: 'Logs' }, { id: 'stats', label: 'Stats' }, { id: 'record', label: 'Record' }]} />
		<div role="tabpanel" class="panel">
			${tab === 'logs' ? html`<${LiveLogs} name=${name} />` : tab === 'stats' ? html`<${Stats} name=${name} />`
				: html`<pre class="json">${i ? JSON.stringify(i, null, 2) : ''}</pre>`}
		</div>
		${confirm.dialog}`;
}

// LiveLogs follows GET /v1/instances/{name}/logs?follow=1 (a plain text stream) and keeps
// the last 2000 lines.
function LiveLogs({ name }) {
	const [lines, setLines] = useState([]);
	const [state, setState] = useState('connecting');
	const [stream, setStream] = useState('all');
	const [paused, setPaused] = useState(false);
	const box = useRef(null);
	useEffect(() => {
		const ac = new AbortController();
		(async () => {
			// A dropped connection (not an API error) is followed again from the start of the
			// log, which replaces what was shown.
			for (let attempt = 0; !ac.signal.aborted; attempt++) {
				try {
					const res = await request('GET', `/v1/instances/${enc(name)}/logs` + qs({ follow: 1, stream }), undefined, { signal: ac.signal, raw: true });
					setLines([]);
					setState('following');
					const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
					let rest = '';
					for (;;) {
						const { value, done } = await reader.read();
						if (done) break;
						const parts = (rest + value).split('\n');
						rest = parts.pop();
						if (parts.length) setLines(l => l.concat(parts).slice(-2000));
					}
					if (rest) setLines(l => l.concat([rest]).slice(-2000));
					setState('ended');
					return;
				} catch (e) {
					if (ac.signal.aborted) return;
					if (e instanceof APIError || attempt >= 5) { setState('error: ' + e.message); return; }
					setState('reconnecting');
					await new Promise(r => setTimeout(r, 1000));
				}
			}
		})();
		return () => ac.abort();
	}, [name, stream]);
	useEffect(() => { if (!paused && box.current) box.current.scrollTop = box.current.scrollHeight; }, [lines, paused]);
	return html`<div class="toolbar">
			<label>Stream <select value=${stream} onChange=${e => setStream(e.target.value)}>
				<option value="all">all</option><option value="stdout">stdout</option><option value="stderr">stderr</option></select></label>
			<label><input type="checkbox" checked=${paused} onChange=${e => setPaused(e.target.checked)} /> pause scrolling</label>
			<span class="muted" data-testid="logs-state">${state}</span>
		</div>
		<pre class="logs" ref=${box} tabindex="0" aria-label=${'Logs of ' + name} data-testid="instance-logs">${lines.join('\n')}</pre>`;
}

// Stats samples GET /v1/instances/{name}/stats every 2 s (CPU is measured between two
// calls) and graphs the last 5 minutes.
function Stats({ name }) {
	const [pts, setPts] = useState({ t: [], cpu: [], ram: [] });
	const [last, setLast] = useState(null);
	const [error, setError] = useState(null);
	useInterval(() => {
		get(`/v1/instances/${enc(name)}/stats`).then(s => {
			setLast(s);
			setError(null);
			setPts(p => {
				const keep = p.t.length >= 150 ? 1 : 0;
				return { t: [...p.t.slice(keep), Date.now() / 1000], cpu: [...p.cpu.slice(keep), s.cpu], ram: [...p.ram.slice(keep), s.ram_mb] };
			});
		}, setError);
	}, 2000, [name]);
	const cpuData = useMemo(() => [pts.t, pts.cpu], [pts]);
	const ramData = useMemo(() => [pts.t, pts.ram], [pts]);
	return html`<${ErrorBox} error=${error} />
		${last ? html`<p class="muted">CPU ${fmtPct(last.cpu)} of one core · RAM ${fmtNum(last.ram_mb, 1)} MB · PIDs ${last.pids} · up ${fmtDuration(last.uptime_s)}</p>` : null}
		<h3>CPU (% of one core)</h3>
		<${Chart} data=${cpuData} series=${[{ label: 'cpu' }]} unit="%" height=${180} label=${'CPU of ' + name} testid="instance-cpu-chart" />
		<h3>RAM (MB)</h3>
		<${Chart} data=${ramData} series=${[{ label: 'ram' }]} unit="MB" height=${180} label=${'RAM of ' + name} />`;
}
