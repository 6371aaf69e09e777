// Deployments: desired against placed and running (live through a blocking query), the
// placement of each instance by node, scaling, and the instance events of the deployment.
import { html, useState, useBlocking, useEvents, post, del, can, enc, Table, Badge, ErrorBox, Link, Empty, useConfirm } from '../lib.js';

export function Deployments({ arg }) {
	const list = useBlocking('/v1/deployments');
	const [events, setEvents] = useState([]);
	const confirm = useConfirm();
	const [scale, setScale] = useState(null); // {name, n}
	const mayWrite = can('deployments:write');
	const deps = list.data || [];
	useEvents((type, ev) => {
		const name = ev && ev.data && ev.data.name;
		if (!name) return;
		const d = deps.find(d => (d.instance_list || []).some(i => i.name === name) || name.startsWith(d.name + '-'));
		if (!d) return;
		setEvents(e => [{ seq: ev.seq, time: ev.time, deployment: d.name, instance: name, status: ev.data.status, node: ev.node && ev.node.name, reason: ev.data.exit_reason }, ...e].slice(0, 200));
	}, ['instance']);
	const doScale = async e => {
		e.preventDefault();
		await post(`/v1/deployments/${enc(scale.name)}/scale`, { instances: Number(scale.n) }).then(() => setScale(null), err => setScale({ ...scale, error: err }));
	};
	const cols = [
		{ label: 'Name', render: d => html`<${Link} to=${'/deployments/' + d.name}>${d.name}</${Link}>` },
		{ label: 'Namespace', key: 'namespace' },
		{ label: 'Running / desired', render: d => html`<span data-testid=${'deployment-running-' + d.name}
			class=${d.running < d.instances ? 'warn-text' : ''}>${d.running} / ${d.instances}</span>`, cls: 'num' },
		{ label: 'Placed', key: 'placed', cls: 'num' },
		{ label: 'Pending', key: 'pending', cls: 'num' },
		{ label: 'Strategy', key: 'strategy' },
		{ label: 'Placed by', key: 'owner' },
		{ label: 'Message', render: d => d.message || '' },
	];
	if (mayWrite) cols.push({ label: 'Actions', render: d => html`<button type="button" data-testid=${'deployment-scale-' + d.name}
			onClick=${() => setScale({ name: d.name, n: d.instances })}>Scale</button>
		<button type="button" class="danger" data-testid=${'deployment-rm-' + d.name} onClick=${() => confirm.ask({ title: `Remove deployment ${d.name}?`, label: 'Remove',
			body: html`<p>Stops and removes its ${d.instances} instance(s).</p>`, action: () => del('/v1/deployments/' + enc(d.name)) })}>Remove</button>` });
	const sel = arg ? deps.find(d => d.name === arg) : null;
	return html`<h1>Deployments</h1>
		<${ErrorBox} error=${list.error || confirm.error} />
		<${Table} caption="Deployments" testid="deployments-table" columns=${cols} rows=${list.data} rowKey=${d => d.namespace + '/' + d.name}
			empty="No deployment. Create one with constellation deploy FILE." />
		${scale ? html`<form class="panel inline" onSubmit=${doScale} aria-label=${'Scale ' + scale.name}>
			<label for="scale-n">Instances of ${scale.name}</label>
			<input id="scale-n" type="number" min="0" value=${scale.n} data-testid="scale-count" onInput=${e => setScale({ ...scale, n: e.target.value })} />
			<button type="submit" class="primary" data-testid="scale-submit">Scale</button> <button type="button" onClick=${() => setScale(null)}>Cancel</button>
			<${ErrorBox} error=${scale.error} />
		</form>` : null}
		${sel ? html`<${Placement} d=${sel} />` : deps.length ? html`<section class="panel"><h2>Placement by node</h2>
			${deps.map(d => html`<${Placement} d=${d} compact />`)}</section>` : null}
		<section class="panel" aria-labelledby="dep-events">
			<h2 id="dep-events">Events</h2>
			<div aria-live="polite">
			<${Table} caption="Deployment events" testid="deployment-events" rows=${events} empty="No instance of a deployment changed since this page opened."
				columns=${[{ label: 'Time', render: e => new Date(e.time).toLocaleTimeString() }, { label: 'Deployment', key: 'deployment' },
					{ label: 'Instance', key: 'instance' }, { label: 'Status', render: e => html`<${Badge} status=${e.status} />` },
					{ label: 'Node', key: 'node' }, { label: 'Reason', render: e => e.reason || '' }]} />
			</div>
		</section>
		${confirm.dialog}`;
}

function Placement({ d, compact }) {
	const byNode = {};
	for (const i of d.instance_list || []) (byNode[i.node || '(unplaced)'] = byNode[i.node || '(unplaced)'] || []).push(i);
	const nodes = Object.keys(byNode).sort();
	return html`<div class=${compact ? 'placement compact' : 'panel placement'} data-testid=${'placement-' + d.name}>
		<h3>${d.name}</h3>
		${nodes.length ? html`<ul class="place">${nodes.map(n => html`<li><strong>${n}</strong>
			${byNode[n].map(i => html` <${Link} to=${'/instances/' + i.name}><${Badge} status=${i.status} /> ${i.name}</${Link}>`)}</li>`)}</ul>`
			: html`<${Empty}>No instance placed.<//>`}
	</div>`;
}
