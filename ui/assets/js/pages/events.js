// Events: the node's live event stream (membership, instances, messages), starting with
// the events the node retains.
import { html, useState, useEffect, subscribeSSE, EVENT_TYPES, Table, Badge, Field } from '../lib.js';

export function Events() {
	const [events, setEvents] = useState([]);
	const [state, setState] = useState('connecting');
	const [filter, setFilter] = useState('');
	const [paused, setPaused] = useState(false);
	useEffect(() => subscribeSSE('/v1/events?since=0', EVENT_TYPES, (type, ev) => {
		setEvents(l => l.some(x => x.seq === ev.seq) ? l : [ev, ...l].slice(0, 500));
	}, st => setState(st === 'open' ? 'live' : st)), []);
	const [frozen, setFrozen] = useState(null);
	useEffect(() => setFrozen(paused ? events : null), [paused]);
	const shown = (frozen || events).filter(e => !filter || e.type === filter || (filter === 'node' && e.type.startsWith('node_')));
	return html`<h1>Events</h1>
		<div class="toolbar">
			<${Field} label="Type" id="ev-type"><select id="ev-type" value=${filter} onChange=${e => setFilter(e.target.value)}>
				<option value="">all</option><option value="node">node (all)</option>${EVENT_TYPES.map(t => html`<option>${t}</option>`)}</select><//>
			<label><input type="checkbox" checked=${paused} onChange=${e => setPaused(e.target.checked)} /> pause</label>
			<span class="muted" data-testid="events-state" role="status">${state}${paused ? ' (paused)' : ''}</span>
		</div>
		<div aria-live=${paused ? 'off' : 'polite'} aria-relevant="additions">
		<${Table} caption="Events, newest first" testid="events-table" rows=${shown} rowKey=${e => e.seq} empty="No event yet."
			columns=${[{ label: '#', key: 'seq', cls: 'num' }, { label: 'Time', render: e => new Date(e.time).toLocaleTimeString() },
				{ label: 'Type', render: e => html`<code>${e.type}</code>` },
				{ label: 'About', render: e => e.type === 'instance' ? html`${e.data.name} <${Badge} status=${e.data.status} /> on ${e.node && e.node.name}`
					: e.node ? html`${e.node.name} <${Badge} status=${e.node.status} />`
					: e.message ? html`${e.message.type} from ${e.message.from_name || e.message.from}` : '' },
				{ label: 'Detail', render: e => e.type === 'instance' ? (e.data.exit_reason || '') : e.message ? html`<code class="small">${JSON.stringify(e.message.data)}</code>` : '' }]} />
		</div>`;
}
