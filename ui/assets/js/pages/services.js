// Services: the mesh's services with their endpoints and health, and per service the
// request rate, p95 latency and error rate measured by the mesh.
import { html, useState, useFetch, useInterval, get, enc, Table, Badge, ErrorBox, fmtNum, fmtPct, fmtAgo } from '../lib.js';

export function Services() {
	const svcs = useFetch('/v1/mesh/services');
	const [metrics, setMetrics] = useState({});
	const [open, setOpen] = useState(null);
	useInterval(() => {
		svcs.reload();
		for (const s of svcs.data || []) get(`/v1/mesh/metrics/${enc(s.name)}?namespace=${enc(s.namespace)}`)
			.then(m => setMetrics(x => ({ ...x, [s.namespace + '/' + s.name]: m })), () => {});
	}, 10000, [(svcs.data || []).map(s => s.name).join(',')]);
	const cols = [
		{ label: 'Service', render: s => html`<button type="button" class="link" aria-expanded=${open === s}
			onClick=${() => setOpen(open && open.name === s.name && open.namespace === s.namespace ? null : s)}>${s.name}</button>` },
		{ label: 'Namespace', key: 'namespace' },
		{ label: 'Protocol', key: 'protocol' },
		{ label: 'Healthy', render: s => html`<span class=${s.healthy < s.endpoints ? 'warn-text' : ''}>${s.healthy} / ${s.endpoints}</span>`, cls: 'num' },
		{ label: 'Nodes', render: s => (s.nodes || []).join(', ') },
		{ label: 'RPS', render: s => fmtNum(metrics[s.namespace + '/' + s.name]?.rps, 2), cls: 'num' },
		{ label: 'p95', render: s => { const m = metrics[s.namespace + '/' + s.name]; return m ? fmtNum(m.p95_latency_ms, 1) + ' ms' : '–'; }, cls: 'num' },
		{ label: 'Errors', render: s => fmtPct(metrics[s.namespace + '/' + s.name]?.error_rate), cls: 'num' },
	];
	return html`<h1>Services</h1>
		<${ErrorBox} error=${svcs.error} />
		<${Table} caption="Mesh services" testid="services-table" columns=${cols} rows=${svcs.data} rowKey=${s => s.namespace + '/' + s.name}
			empty="No service registered in the mesh (constellation mesh register)." />
		${open ? html`<${Endpoints} svc=${open} />` : null}`;
}

function Endpoints({ svc }) {
	const eps = useFetch(`/v1/mesh/services/${enc(svc.name)}?namespace=${enc(svc.namespace)}`);
	return html`<section class="panel" aria-labelledby="ep-title">
		<h2 id="ep-title">Endpoints of ${svc.name}</h2>
		<${ErrorBox} error=${eps.error} />
		<${Table} caption=${'Endpoints of ' + svc.name} rows=${eps.data} rowKey=${e => e.id}
			columns=${[{ label: 'Address', key: 'address' }, { label: 'Node', key: 'node' }, { label: 'Instance', render: e => e.instance || '–' },
				{ label: 'Version', render: e => e.version || '–' }, { label: 'Health', render: e => html`<${Badge} status=${e.health} />${e.reason ? html` <small class="muted">${e.reason}</small>` : null}` },
				{ label: 'Checked', render: e => fmtAgo(e.checked_at) }, { label: 'TLS', render: e => e.tls ? 'yes' : 'no' }]} />
	</section>`;
}
