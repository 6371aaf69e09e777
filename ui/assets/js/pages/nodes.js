// Nodes: the member table (live through a blocking query), drain, and each node's status
// history from the event stream (the node's retained events, then live ones).
import { html, useState, useBlocking, useEvents, post, can, enc, Table, Badge, ErrorBox, fmtAgo, fmtNum, useConfirm } from '../lib.js';

const NODE_EVENTS = ['node_join', 'node_leave', 'node_suspect', 'node_dead', 'node_alive'];

export function Nodes() {
	const nodes = useBlocking('/v1/nodes');
	const [history, setHistory] = useState([]);
	const [announce, setAnnounce] = useState('');
	const confirm = useConfirm();
	useEvents((type, ev) => {
		if (!ev || !ev.node) return;
		setHistory(h => h.some(x => x.seq === ev.seq) ? h : [{ seq: ev.seq, type, time: ev.time, node: ev.node.name }, ...h].slice(0, 200));
		setAnnounce(`${ev.node.name} is ${type.replace('node_', '')}`);
	}, NODE_EVENTS, true);
	const mayDrain = can('nodes:write');
	const drain = (n, cancel) => confirm.ask({
		title: cancel ? `Stop draining ${n.name}?` : `Drain ${n.name}?`,
		body: cancel ? html`<p>${n.name} takes new placements again.</p>`
			: html`<p>${n.name} takes no new placements and its deployment instances move to other nodes.</p>`,
		label: cancel ? 'Stop draining' : 'Drain',
		action: () => post(`/v1/nodes/${enc(n.name)}/drain`, cancel ? { cancel: true } : {}),
	});
	const cols = [
		{ label: 'Name', render: n => html`<strong>${n.name}</strong>${n.self ? html` <small class="muted">(this node)</small>` : null}` },
		{ label: 'Status', render: n => html`<${Badge} status=${n.status} testid=${'node-status-' + n.name} />${n.draining ? html` <${Badge} status="draining" />` : null}` },
		{ label: 'Labels', render: n => html`${Object.entries(n.labels || {}).map(([k, v]) => html`<span class="tag">${k}=${v}</span> `)}` },
		{ label: 'Instances', key: 'instances', cls: 'num' },
		{ label: 'CPU', render: n => `${n.cpu_total} cores`, cls: 'num' },
		{ label: 'RAM', render: n => `${fmtNum(n.ram_total_mb / 1024, 1)} GB`, cls: 'num' },
		{ label: 'Connection', render: n => n.self ? '—' : n.connection ? `${n.connection}${n.transport ? ' / ' + n.transport : ''}` : 'none' },
		{ label: 'RTT', render: n => n.rtt_ms ? `${fmtNum(n.rtt_ms, 1)} ms` : '–', cls: 'num' },
		{ label: 'NAT', render: n => [n.reachability, n.nat_type].filter(Boolean).join(' / ') || '–' },
		{ label: 'Last seen', render: n => n.self ? 'now' : fmtAgo(n.last_seen) },
	];
	if (mayDrain) cols.push({ label: 'Actions', render: n => n.status === 'alive' ? html`<button type="button" data-testid=${'drain-' + n.name}
		onClick=${() => drain(n, n.draining)}>${n.draining ? 'Undrain' : 'Drain'}</button>` : null });
	const rows = nodes.data ? [...nodes.data].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true })) : null;
	return html`<h1>Nodes</h1>
		<${ErrorBox} error=${nodes.error || confirm.error} />
		<p class="sr-only" aria-live="polite">${announce}</p>
		<${Table} caption="Cluster members" testid="nodes-table" columns=${cols} rows=${rows} rowKey=${n => n.id}
			rowProps=${n => ({ 'data-testid': 'node-row-' + n.name })} />
		<section class="panel" aria-labelledby="hist-title">
			<h2 id="hist-title">Status history</h2>
			<p class="muted">Membership changes this node retains, then live ones (newest first).</p>
			<${Table} caption="Status history" testid="nodes-history" rows=${history} empty="No membership change retained."
				columns=${[
					{ label: 'Time', render: e => new Date(e.time).toLocaleTimeString() },
					{ label: 'Node', key: 'node' },
					{ label: 'Change', render: e => html`<${Badge} status=${e.type.replace('node_', '').replace('join', 'alive')} />` },
				]} />
		</section>
		${confirm.dialog}`;
}
