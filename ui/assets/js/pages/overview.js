// Overview: cluster health, figures, and the constellation map (one star per node), all
// from one blocking read of GET /v1/cluster/overview: it answers at once when a node,
// instance, drain or alert changes, and every 10 s with fresh metrics otherwise.
import { html, useState, useEffect, useRef, useBlocking, Card, Badge, ErrorBox, Link, fmtPct, fmtBytes, fmtNum } from '../lib.js';

export function Overview() {
	const ov = useBlocking('/v1/cluster/overview', '10s');
	const d = ov.data;
	const [live, setLive] = useState('');
	// Announce status changes to screen readers (the map itself is a picture).
	const prev = useRef(null);
	useEffect(() => {
		if (!d) return;
		const now = Object.fromEntries(d.nodes.map(n => [n.name, n.status]));
		if (prev.current) {
			const changed = Object.entries(now).filter(([k, v]) => prev.current[k] !== v).map(([k, v]) => `${k} is ${v}`);
			if (changed.length) setLive(changed.join('; '));
		}
		prev.current = now;
	}, [d]);
	const nodes = d ? d.nodes.filter(n => n.status !== 'left') : [];
	return html`<h1>Overview</h1>
		<${ErrorBox} error=${ov.error} />
		<p class="sr-only" aria-live="polite" data-testid="overview-live">${live}</p>
		<section class="cards" aria-label="Cluster figures">
			<${Card} label="Health" testid="overview-health" value=${d ? html`<${Badge} status=${d.health} />` : '…'}
				sub=${d && d.reasons ? d.reasons.join('; ') : null} />
			<${Card} label="Nodes alive" testid="overview-nodes" value=${d ? html`<span data-testid="overview-nodes-alive">${d.nodes_alive}</span> / <span data-testid="overview-nodes-total">${d.nodes_total}</span>` : '…'} />
			<${Card} label="Instances running" testid="overview-instances" value=${d ? html`<${Link} to="/instances">${d.instances_running} / ${d.instances_total}</${Link}>` : '…'} />
			<${Card} label="CPU" testid="overview-cpu" value=${d ? fmtPct(d.cpu_percent) : '…'} sub="average of the hosts" />
			<${Card} label="RAM" testid="overview-ram" value=${d ? fmtPct(d.ram_percent) : '…'} sub="average of the hosts" />
			<${Card} label="Network in" testid="overview-net-in" value=${d ? html`${fmtNum(d.network_in_mbps, 2)} <small>Mbit/s</small>` : '…'} />
			<${Card} label="Network out" testid="overview-net-out" value=${d ? html`${fmtNum(d.network_out_mbps, 2)} <small>Mbit/s</small>` : '…'} />
			<${Card} label="Active alerts" testid="overview-alerts" tone=${d && d.alerts_firing ? 'alarm' : ''}
				value=${d ? html`<${Link} to="/alerts">${d.alerts_firing}</${Link}>` : '…'} sub=${d && d.alerts_pending ? `${d.alerts_pending} pending` : null} />
		</section>
		${d && d.warnings && d.warnings.length ? html`<div class="warning" role="status">${d.warnings.join('; ')}</div>` : null}
		<section aria-labelledby="map-title" class="panel">
			<h2 id="map-title">Constellation</h2>
			${d ? html`<${StarMap} nodes=${nodes} links=${d.links || []} />
				<ul class="star-list" aria-label="Nodes">${nodes.map(n => html`<li>
					<strong>${n.name}</strong> <${Badge} status=${n.status} />${n.draining ? html` <${Badge} status="draining" />` : null}
					<span>CPU ${n.metrics ? fmtPct(n.cpu_percent) : '–'} · RAM ${n.metrics ? fmtBytes(n.ram_used_mb * 1048576) : '–'} / ${fmtBytes(n.ram_total_mb * 1048576)} · ${n.running} / ${n.instances} running</span>
				</li>`)}</ul>` : null}
		</section>`;
}

const STAR = { alive: 'var(--good)', suspect: 'var(--warn)', dead: 'var(--bad)', left: 'var(--muted)' };

// StarMap draws one star per node on a circle, sized by capacity (cores x RAM), labelled
// with CPU %, RAM used/total and its instance count; a line joins two nodes that measured
// a round-trip time, labelled with it, dashed when relayed.
export function StarMap({ nodes, links }) {
	const W = 760, H = nodes.length > 4 ? 520 : 420, cx = W / 2, cy = H / 2;
	const R = Math.min(W, H) / 2 - 90;
	const sorted = [...nodes].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
	const cap = n => Math.max(1, n.cpu_cores || 1) * Math.max(1, (n.ram_total_mb || 1024) / 1024);
	const maxCap = Math.max(...sorted.map(cap), 1);
	const pos = {};
	sorted.forEach((n, i) => {
		const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(sorted.length, 1);
		const r = sorted.length === 1 ? 0 : R;
		pos[n.name] = { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a), size: 10 + 16 * Math.sqrt(cap(n) / maxCap), n };
	});
	const lines = links.filter(l => pos[l.from] && pos[l.to]).map(l => ({
		...l, a: pos[l.from], b: pos[l.to], down: pos[l.from].n.status !== 'alive' || pos[l.to].n.status !== 'alive',
	}));
	return html`<div class="map-wrap">
		<svg viewBox=${`0 0 ${W} ${H}`} class="starmap" role="img" aria-labelledby="map-desc" data-testid="starmap">
			<desc id="map-desc">${sorted.length} nodes: ${sorted.map(n => `${n.name} ${n.status}, ${n.instances} instances`).join('; ')}</desc>
			${lines.map(l => html`<g class=${'link' + (l.down ? ' down' : '')} data-testid=${`link-${l.from}-${l.to}`}>
				<line x1=${l.a.x} y1=${l.a.y} x2=${l.b.x} y2=${l.b.y} stroke-dasharray=${l.connection === 'relayed' ? '6 5' : null} />
				${l.rtt_ms ? html`<text x=${(l.a.x + l.b.x) / 2} y=${(l.a.y + l.b.y) / 2 - 4} class="rtt">${fmtNum(l.rtt_ms, 1)} ms${l.connection && l.connection !== 'unknown' ? ' · ' + l.connection : ''}</text>` : null}
			</g>`)}
			${sorted.map(n => {
				const p = pos[n.name];
				const ramTotal = (n.ram_total_mb || 0) * 1024 * 1024;
				const below = p.y >= cy - 1;
				const ty = below ? p.y + p.size + 18 : p.y - p.size - 44;
				const figs = n.status !== 'alive' ? n.status
					: n.metrics ? `CPU ${fmtPct(n.cpu_percent)} · RAM ${fmtBytes(n.ram_used_mb * 1024 * 1024)} / ${fmtBytes(ramTotal)}`
					: `CPU – · RAM – / ${fmtBytes(ramTotal)}`;
				return html`<g class=${'star ' + n.status} data-testid=${'star-' + n.name} data-status=${n.status}>
					<title>${n.name}: ${n.status}</title>
					<circle cx=${p.x} cy=${p.y} r=${p.size + 6} class="halo" fill=${STAR[n.status] || 'var(--muted)'} />
					<path d=${starPath(p.x, p.y, p.size, p.size * 0.45)} fill=${STAR[n.status] || 'var(--muted)'} />
					<text x=${p.x} y=${ty} class="name">${n.name}${n.self ? ' (this node)' : ''}${n.draining ? ' · draining' : ''}</text>
					<text x=${p.x} y=${ty + 15} class="fig">${figs}</text>
					<text x=${p.x} y=${ty + 30} class="fig" data-testid=${'star-instances-' + n.name}>${n.running} / ${n.instances} instance${n.instances === 1 ? '' : 's'} running</text>
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
