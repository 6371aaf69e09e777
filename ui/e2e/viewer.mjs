// A viewer token: the dashboard offers no mutating action, and a mutating request forged
// from the page (with or without the CSRF token) is refused with 403.
import { env, run, login, shot, assert } from './_harness.mjs';

const N = 'viewer';
await run(N, async ({ page }) => {
	await login(page, env.viewer);
	const who = await page.evaluate(async () => (await fetch('/ui/session')).json());
	assert(who.role === 'viewer' && !who.permissions.includes('instances:write'), 'session: ' + JSON.stringify(who));
	await page.goto(env.url + '#/instances');
	await page.waitForSelector('[data-testid="filter-node"]'); // the page drew its toolbar
	assert(await page.locator('[data-testid="instance-new"]').count() === 0, 'a viewer is offered "new instance"');
	await shot(page, N, 'instances');

	const forge = (csrf) => page.evaluate(async (csrf) => {
		const s = await (await fetch('/ui/session')).json();
		const headers = { 'Content-Type': 'application/json' };
		if (csrf) headers['X-CSRF-Token'] = s.csrf_token;
		const r = await fetch('/v1/instances', { method: 'POST', headers, body: JSON.stringify({ name: 'forged', command: ['true'] }) });
		return { status: r.status, body: await r.text() };
	}, csrf);
	let r = await forge(true);
	assert(r.status === 403 && r.body.includes('instances:write'), `viewer POST /v1/instances with the CSRF token = ${r.status} ${r.body}; want 403 naming instances:write`);
	r = await forge(false);
	assert(r.status === 403 && r.body.includes('csrf'), `POST without the CSRF token = ${r.status} ${r.body}; want 403 csrf`);
	const list = await page.evaluate(async () => (await fetch('/v1/instances')).json());
	assert(!list.some(i => i.name === 'forged'), 'the forged instance exists');
});
