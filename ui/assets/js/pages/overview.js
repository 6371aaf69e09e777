// Overview: cluster health, figures, and the constellation map (one star per node).
import { html, useState, useEffect, useBlocking, useInterval, get, qs, Card, Badge, ErrorBox, Link, fmtPct, fmtBytes, fmtNum, useEvents } from '../lib.js';

// nodeGauges reads each node's CPU and memory use from the metrics store (PromQL).
async function nodeGauges() {
	const q = async expr => {
		const r = await get('/api/v1/query' + qs({ query: expr }));
		const out = {};
		for (const s of (r.data && r.data.result) || []) out[s.metric.node] = Number(s.value[1]);
		return out;
	};
	const [cpu, mem] = await Promise.all([q('constellation_node_cpu_percent'), q('constellation_node_memory_used_percent')]);
	return { cpu, mem };
}

export function Overview() {
	const nodes = useBlocking('/v1/nodes');
	const insts = useBlocking('/v1/instances');
	const [dash, setDash] = useState(null);
	const [gauges, setGauges] = useState({ cpu: {}, mem: {} });
	const [alerts, setAlerts] = useState(null);
	const [err, setErr] = useState(null);
	const [live, setLive] = useState('');
	const refresh = () => {
		get('/v1/monitor/dashboard').then(setDash, setErr);
		nodeGauges().then(setGauges, () => {});
		get('/v1/monitor/alerts').then(a => setAlerts(a || []), () => setAlerts(null));
	};
	// Figures sampled every 10 s by the nodes: read again at that pace while visible, and the
	// health at once when membership changes.
	useInterval(refresh, 10000);
	useEffect(() => { if (nodes.index) get('/v1/monitor/dashboard').then(setDash, setErr); }, [nodes.index]);
	// Node status changes arrive as events at once (and through the blocking /v1/nodes).
	useEvents((type, ev) => {
		if (ev && ev.node) setLive(`${ev.node.name}: ${type.replace('node_', '')}`);
	}, ['node_join', 'node_leave', 'node_suspect', 'node_dead', 'node_alive']);

	const ns = (nodes.data || []).filter(n => n.status !== 'left');
	const alive = ns.filter(n => n.status === 'alive').length;
	const list = insts.data || [];
	const running = list.filter(i => i.status === 'running').length;
	const byNode = {};
	for (const i of list) {
		const e = byNode[i.node] || (byNode[i.node] = { total: 0, running: 0 });
		e.total++;
		if (i.status === 'running') e.running++;
	}
	const firing = (alerts || []).filter(a => a.state === 'firing' && !a.silenced);
	const health = dash ? dash.health : (nodes.data ? (alive === ns.length ? 'healthy' : alive * 2 > ns.length ? 'degraded' : 'critical') : '…');

	return html`<h1>Overview</h1>
		<${ErrorBox} error=${nodes.error || err} />
		<p class="sr-only" aria-live="polite" data-testid="overview-live">${live}</p>
		<section class="cards" aria-label="Cluster figures">
			<${Card} label="Health" testid="overview-health" value=${html`<${Badge} status=${health} />`}
				sub=${dash && dash.reasons ? dash.reasons.join('; ') : null} />
			<${Card} label="Nodes alive" testid="overview-nodes" value=${nodes.data ? html`<span data-testid="overview-nodes-alive">${alive}</span> / <span data-testid="overview-nodes-total">${ns.length}</span>` : '…'} />
			<${Card} label="Instances running" testid="overview-instances" value=${insts.data ? `${running} / ${list.length}` : '…'} />
			<${Card} label="CPU" testid="overview-cpu" value=${dash ? fmtPct(dash.cpu_percent) : '…'} sub="average of nodes" />
			<${Card} label="RAM" testid="overview-ram" value=${dash ? fmtPct(dash.ram_percent) : '…'} sub="average of nodes" />
			<${Card} label="Network" testid="overview-net" value=${dash ? html`↓ ${fmtNum(dash.network_in_mbps, 2)} <small>Mbps</small>` : '…'}
				sub=${dash ? `↑ ${fmtNum(dash.network_out_mbps, 2)} Mbps` : null} />
			<${Card} label="Active alerts" testid="overview-alerts" tone=${firing.length ? 'alarm' : ''}
				value=${alerts ? html`<${Link} to="/alerts">${firing.length}</${Link}>` : '–'} />
		</section>
		<section aria-labelledby="map-title" class="panel">
			<h2 id="map-title">Constellation</h2>
			${nodes.data ? html`<${StarMap} nodes=${ns} gauges=${gauges} byNode=${byNode} />` : null}
		</section>`;
}

const STAR = { alive: 'var(--good)', suspect: 'var(--warn)', dead: 'var(--bad)', left: 'var(--muted)' };

// StarMap draws one star per node on a circle, sized by capacity (cores x RAM), labelled
// with CPU %, RAM used/total and its instance count; a line joins two nodes that measured
// a round-trip time to each other, labelled with it, dashed when this node reaches the other
// through a relay.
export function StarMap({ nodes, gauges, byNode }) {
	const W = 760, H = nodes.length > 4 ? 520 : 420, cx = W / 2, cy = H / 2;
	const R = Math.min(W, H) / 2 - 90;
	const sorted = [...nodes].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
	const cap = n => Math.max(1, n.cpu_total || 1) * Math.max(1, (n.ram_total_mb || 1024) / 1024);
	const maxCap = Math.max(...sorted.map(cap), 1);
	const pos = {};
	sorted.forEach((n, i) => {
		const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(sorted.length, 1);
		const r = sorted.length === 1 ? 0 : R;
		pos[n.id] = { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a), size: 10 + 16 * Math.sqrt(cap(n) / maxCap), n };
	});
	const self = sorted.find(n => n.self);
	const lines = [];
	const seen = new Set();
	for (const a of sorted) for (const [id, rtt] of Object.entries(a.rtts_ms || {})) {
		const b = pos[id];
		if (!b || id === a.id) continue;
		const k = [a.id, id].sort().join('|');
		if (seen.has(k)) continue;
		seen.add(k);
		let conn = '';
		if (self && a.id === self.id) conn = b.n.connection || '';
		else if (self && id === self.id) conn = a.connection || '';
		lines.push({ a: pos[a.id], b, rtt, conn, down: a.status !== 'alive' || b.n.status !== 'alive' });
	}
	// A node whose RTT table is still empty (just joined) is still joined to this node when
	// connected.
	if (self) for (const n of sorted) {
		if (n.id === self.id || !n.connection) continue;
		const k = [self.id, n.id].sort().join('|');
		if (seen.has(k)) continue;
		seen.add(k);
		lines.push({ a: pos[self.id], b: pos[n.id], rtt: n.rtt_ms, conn: n.connection, down: n.status !== 'alive' });
	}
	return html`<div class="map-wrap">
		<svg viewBox=${`0 0 ${W} ${H}`} class="starmap" role="img" aria-labelledby="map-desc" data-testid="starmap">
			<desc id="map-desc">${sorted.length} nodes: ${sorted.map(n => `${n.name} ${n.status}`).join(', ')}</desc>
			${lines.map(l => html`<g class=${'link' + (l.down ? ' down' : '')}>
				<line x1=${l.a.x} y1=${l.a.y} x2=${l.b.x} y2=${l.b.y} stroke-dasharray=${l.conn === 'relayed' ? '6 5' : null} />
				${l.rtt ? html`<text x=${(l.a.x + l.b.x) / 2} y=${(l.a.y + l.b.y) / 2 - 4} class="rtt">${fmtNum(l.rtt, 1)} ms${l.conn ? ' · ' + l.conn : ''}</text>` : null}
			</g>`)}
			${sorted.map(n => {
				const p = pos[n.id];
				const cpu = gauges.cpu[n.name], mem = gauges.mem[n.name];
				const ramTotal = (n.ram_total_mb || 0) * 1024 * 1024;
				const inst = byNode[n.name] || { total: n.instances || 0, running: 0 };
				const below = p.y >= cy - 1;
				const ty = below ? p.y + p.size + 18 : p.y - p.size - 44;
				return html`<g class=${'star ' + n.status} data-testid=${'star-' + n.name} data-status=${n.status}>
					<title>${n.name}: ${n.status}</title>
					<circle cx=${p.x} cy=${p.y} r=${p.size + 6} class="halo" fill=${STAR[n.status] || 'var(--muted)'} />
					<path d=${starPath(p.x, p.y, p.size, p.size * 0.45)} fill=${STAR[n.status] || 'var(--muted)'} />
					<text x=${p.x} y=${ty} class="name">${n.name}${n.self ? ' (this node)' : ''}${n.draining ? ' · draining' : ''}</text>
					<text x=${p.x} y=${ty + 15} class="fig">${n.status === 'alive' ? `CPU ${fmtPct(cpu)} · RAM ${mem === undefined ? '–' : fmtBytes(ramTotal * mem / 100)} / ${fmtBytes(ramTotal)}` : n.status}</text>
					<text x=${p.x} y=${ty + 30} class="fig" data-testid=${'star-instances-' + n.name}>${inst.total} instance${inst.total === 1 ? '' : 's'}</text>
				</g>`;
			})}
		</svg>
		<ul class="legend" aria-label="Legend">
			<li><span class="dot good"></span> alive</li><li><span class="dot warn"></span> suspect</li>
			<li><span class="dot bad"></span> dead</li><li><span class="line"></span> direct</li><li><span class="line dashed"></span> relayed</li>
			<li class="muted">star size: capacity (cores × RAM)</li>
		</ul>
	</div>`;
}

function starPath(x, y, ro, ri) {
	let d = '';
	for (let i = 0; i < 10; i++) {
		const r = i % 2 ? ri : ro, a = -Math.PI / 2 + (i * Math.PI) / 5;
		d += (i ? 'L' : 'M') + (x + r * Math.cos(a)).toFixed(1) + ' ' + (y + r * Math.sin(a)).toFixed(1);
	}
	return d + 'Z';
}
