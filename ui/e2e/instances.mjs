// Create an instance from the instances page's form, see it running with its output in the
// live log view, restart it through the confirmation dialog, then remove it.
import { env, run, login, shot, assert } from './_harness.mjs';
import { settle } from './_pages.mjs';

const N = 'instances';
await run(N, async ({ page, problems }) => {
	await login(page, env.admin);
	await page.click('[data-testid="nav-instances"]');
	await page.click('[data-testid="instance-new"]');
	const name = 'ui-web-' + Date.now().toString(36);
	await page.fill('[data-testid="create-name"]', name);
	await page.fill('[data-testid="create-command"]', `sh -c "echo hello from ${name}; sleep 600"`);
	await page.fill('[data-testid="create-ram"]', '64');
	await page.fill('[data-testid="create-cpu"]', '20');
	// On the first node: the test's nodes share one host, where only one may hold the
	// default instance bridge.
	await page.selectOption('[data-testid="create-node"]', env.nodes[0].name);
	await shot(page, N, 'create-form');
	await page.click('[data-testid="create-submit"]');

	// The form leads to the instance's page, which follows its status by itself.
	const st = await page.waitForSelector('[data-testid="instance-detail-status"][data-status="running"], [data-testid="create-form"] .error', { timeout: 30000 });
	assert(await st.getAttribute('data-status') === 'running', 'create failed: ' + await st.textContent());
	await page.locator('[data-testid="instance-logs"]', { hasText: `hello from ${name}` }).waitFor({ timeout: 20000 });
	await page.click('[data-testid="tab-stats"]');
	await page.waitForSelector('[data-testid="instance-cpu-chart"] canvas', { timeout: 15000 });
	await shot(page, N, 'detail');

	// Restart asks first; Cancel does nothing, confirming restarts (restarts goes up).
	await page.click('[data-testid="instance-restart"]');
	await page.waitForSelector('[data-testid="confirm-dialog"][open]');
	await page.keyboard.press('Escape');
	await page.waitForSelector('[data-testid="confirm-dialog"][open]', { state: 'detached' });
	await page.click('[data-testid="instance-restart"]');
	await page.click('[data-testid="confirm-ok"]');
	await page.waitForFunction(n => fetch('/v1/instances/' + n).then(r => r.json()).then(i => i.restarts >= 1 && i.status === 'running'), name, { timeout: 30000, polling: 500 });

	// Back in the list, filtered by status: the row is there and running.
	await page.click('[data-testid="nav-instances"]');
	await page.selectOption('[data-testid="filter-status"]', 'running');
	await page.waitForSelector(`[data-testid="instance-status-${name}"][data-status="running"]`, { timeout: 15000 });
	await shot(page, N, 'list');

	await page.click(`[data-testid="instance-link-${name}"]`);
	await page.click('[data-testid="instance-rm"]');
	await page.click('[data-testid="confirm-ok"]');
	await page.waitForSelector('[data-testid="instances-table"], [data-testid="page-instances"] .empty', { timeout: 15000 });
	await page.waitForFunction(n => !document.querySelector(`[data-testid="instance-row-${n}"]`), name, { timeout: 30000 });
	const left = await page.evaluate(n => fetch('/v1/instances/' + n).then(r => r.status), name);
	assert(left === 404, `GET /v1/instances/${name} after remove = ${left}; want 404`);
	settle(problems);
});
