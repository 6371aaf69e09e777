// The dashboard shell: session and login, navigation, the hash router.
import { html, render, useState, useEffect, useRef, session, hooks, get, prefetch, request, ErrorBox } from './lib.js';
import { Overview } from './pages/overview.js';
import { Nodes } from './pages/nodes.js';
import { Instances } from './pages/instances.js';
import { Deployments } from './pages/deployments.js';
import { Services } from './pages/services.js';
import { Files } from './pages/files.js';
import { Alerts } from './pages/alerts.js';
import { Metrics } from './pages/metrics.js';
import { Logs } from './pages/logs.js';
import { Traces } from './pages/traces.js';
import { Events } from './pages/events.js';

// PAGES: route, title, component. The route's first path segment picks the page; the rest
// (after '/') is its argument (an instance name, a directory).
export const PAGES = [
	{ id: 'overview', title: 'Overview', C: Overview },
	{ id: 'nodes', title: 'Nodes', C: Nodes },
	{ id: 'instances', title: 'Instances', C: Instances },
	{ id: 'deployments', title: 'Deployments', C: Deployments },
	{ id: 'services', title: 'Services', C: Services },
	{ id: 'files', title: 'Files', C: Files },
	{ id: 'alerts', title: 'Alerts', C: Alerts },
	{ id: 'metrics', title: 'Metrics', C: Metrics },
	{ id: 'logs', title: 'Logs', C: Logs },
	{ id: 'traces', title: 'Traces', C: Traces },
	{ id: 'events', title: 'Events', C: Events },
];

function parseHash() {
	const raw = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
	const [path, query = ''] = raw.split('?');
	const i = path.indexOf('/');
	const page = (i < 0 ? path : path.slice(0, i)) || 'overview';
	const arg = i < 0 ? '' : path.slice(i + 1);
	return { page, arg, query: new URLSearchParams(query) };
}

function useRoute() {
	const [r, setR] = useState(parseHash());
	useEffect(() => {
		const on = () => setR(parseHash());
		addEventListener('hashchange', on);
		return () => removeEventListener('hashchange', on);
	}, []);
	return r;
}

function Login({ onLogin, error: initial }) {
	const [token, setToken] = useState('');
	const [error, setError] = useState(initial);
	const [busy, setBusy] = useState(false);
	const submit = async e => {
		e.preventDefault();
		setBusy(true);
		setError(null);
		try {
			await request('POST', '/ui/login', { token: token.trim() });
			setToken('');
			await onLogin();
		} catch (err) {
			setError(err);
		}
		setBusy(false);
	};
	return html`<main id="main" class="login">
		<form onSubmit=${submit} data-testid="login-form" aria-labelledby="login-title">
			<h1 id="login-title"><span class="logo" aria-hidden="true">✦</span> Constellation</h1>
			<p class="muted">Sign in with an API token (<code>constellation token create</code>, or the node's
				<code>api.token</code>). It is kept in an HttpOnly cookie, never in this page.</p>
			<label for="login-token">Token</label>
			<input id="login-token" name="token" type="password" autocomplete="current-password" required
				data-testid="login-token" value=${token} onInput=${e => setToken(e.target.value)} />
			<${ErrorBox} error=${error} />
			<button class="primary" type="submit" disabled=${busy || !token} data-testid="login-submit">Sign in</button>
		</form>
	</main>`;
}

function Nav({ page, who, onLogout }) {
	const [open, setOpen] = useState(false);
	useEffect(() => setOpen(false), [page]);
	return html`<header class="top">
		<a class="brand" href="#/overview"><span class="logo" aria-hidden="true">✦</span> Constellation</a>
		<button type="button" class="menu-btn" aria-expanded=${open} aria-controls="nav" onClick=${() => setOpen(!open)}>Menu</button>
		<nav id="nav" aria-label="Pages" class=${open ? 'open' : ''}>
			<ul>${PAGES.map(p => html`<li><a href=${'#/' + p.id} data-testid=${'nav-' + p.id}
				aria-current=${p.id === page ? 'page' : undefined}>${p.title}</a></li>`)}</ul>
		</nav>
		<div class="who" data-testid="session-who">
			<span title="signed in as">${who.name || who.kind || 'signed in'}${who.role ? html` <small class="muted">(${who.role})</small>` : null}</span>
			<button type="button" class="link" onClick=${onLogout} data-testid="logout">Sign out</button>
		</div>
	</header>`;
}

function App() {
	const [state, setState] = useState({ phase: 'loading' });
	const route = useRoute();
	const load = async () => {
		try {
			session.current = await get('/ui/session');
			setState({ phase: 'in' });
		} catch (e) {
			session.current = null;
			setState({ phase: 'login', error: e.status === 401 ? null : e });
		}
	};
	useEffect(() => {
		// The overview is the usual first page: ask for its data with the session.
		if (route.page === 'overview') prefetch('/v1/cluster/overview');
		load();
		hooks.onUnauthorized = () => { session.current = null; setState({ phase: 'login' }); };
	}, []);
	const def = PAGES.find(p => p.id === route.page) || PAGES[0];
	const first = useRef(true);
	useEffect(() => {
		document.title = def.title + ' · Constellation';
		// After a page change, focus moves to the new page (screen readers announce it), not
		// on the first load.
		if (first.current) first.current = false;
		else document.getElementById('main')?.focus();
	}, [def.id]);
	if (state.phase === 'loading') return html`<p class="boot">Loading…</p>`;
	if (state.phase === 'login') return html`<${Login} onLogin=${load} error=${state.error} />`;
	const logout = async () => {
		try { await request('POST', '/ui/logout', {}); } catch { /* the session may be gone already */ }
		session.current = null;
		setState({ phase: 'login' });
	};
	const Page = def.C;
	return html`<${Nav} page=${def.id} who=${session.current} onLogout=${logout} />
		<main id="main" tabindex="-1" data-testid=${'page-' + def.id}>
			<${Page} key=${def.id} arg=${route.arg} query=${route.query} />
		</main>`;
}

// The skip link's #main would be taken for a route: it moves focus itself.
document.querySelector('.skip')?.addEventListener('click', e => {
	e.preventDefault();
	document.getElementById('main')?.focus();
});

render(html`<${App} />`, document.getElementById('app'));
