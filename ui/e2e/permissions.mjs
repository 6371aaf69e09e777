// The pages offer only what the session may do (permissions of GET /ui/session): a viewer
// gets no mutating control anywhere; an operator creates instances and uploads files but may
// not drain nodes (nodes:write), and sees no drain button.
import { env, run, login, shot, assert } from './_harness.mjs';
import { settle } from './_pages.mjs';

const N = 'permissions';
const count = (page, sel) => page.locator(sel).count();

async function visit(page, hash, ready) {
	await page.goto(env.url + '#' + hash);
	await page.waitForSelector(ready, { timeout: 15000 });
	await page.waitForTimeout(300); // the session's permissions are known before the first page renders; data rows follow
}

await run(N, async ({ page, context, problems }) => {
	await login(page, env.viewer);
	await visit(page, '/nodes', '[data-testid^="node-row-"]');
	assert(await count(page, '[data-testid^="drain-"]') === 0, 'a viewer is offered drain');
	await visit(page, '/instances', '[data-testid="page-instances"] h1');
	assert(await count(page, '[data-testid="instance-new"]') === 0, 'a viewer is offered "new instance"');
	await visit(page, '/files', '[data-testid="page-files"] h1');
	assert(await count(page, '[data-testid="file-upload"]') === 0, 'a viewer is offered upload');
	assert(await count(page, '#snap-name') === 0, 'a viewer is offered a snapshot');
	await visit(page, '/alerts', '[data-testid="tab-rules"]');
	await page.click('[data-testid="tab-rules"]');
	assert(await count(page, 'form[aria-label="New rule"]') === 0, 'a viewer is offered a new rule');
	await page.click('[data-testid="tab-silences"]');
	assert(await count(page, 'form[aria-label="New silence"]') === 0, 'a viewer is offered a new silence');
	await shot(page, N, 'viewer-alerts');

	// The operator, in a fresh context (its own session).
	const op = await context.browser().newContext({ ignoreHTTPSErrors: true });
	const p2 = await op.newPage();
	p2.on('pageerror', e => problems.push('page error: ' + e.message));
	await login(p2, env.operator);
	await visit(p2, '/instances', '[data-testid="instance-new"]');
	await visit(p2, '/files', '[data-testid="file-upload"]');
	await visit(p2, '/nodes', '[data-testid^="node-row-"]');
	assert(await count(p2, '[data-testid^="drain-"]') === 0, 'an operator (no nodes:write) is offered drain');
	await shot(p2, N, 'operator-nodes');
	await op.close();
	settle(problems);
});
