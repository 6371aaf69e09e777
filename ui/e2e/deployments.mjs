// A deployment made through the API shows desired against running and its placement by
// node; scaling it from the page starts one more instance (seen in the events), and removing
// it through the confirmation dialog empties the list.
import { env, run, login, shot, assert } from './_harness.mjs';
import { settle } from './_pages.mjs';

const N = 'deployments';
await run(N, async ({ page, problems }) => {
	await login(page, env.admin);
	const name = 'uidep' + Date.now().toString(36);
	const status = await page.evaluate(async name => {
		const s = await (await fetch('/ui/session')).json();
		const r = await fetch('/v1/deployments', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token },
			body: JSON.stringify({ name, instances: 2, command: ['sleep', '600'], cpu_percent: 5, ram_mb: 32 }) });
		return r.status + ' ' + await r.text();
	}, name);
	assert(status.startsWith('20'), 'POST /v1/deployments: ' + status);

	await page.click('[data-testid="nav-deployments"]');
	const running = `[data-testid="deployment-running-${name}"]`;
	await page.locator(running, { hasText: '2 / 2' }).waitFor({ timeout: 60000 });
	await page.waitForSelector(`[data-testid="placement-${name}"] [data-status="running"]`);
	await shot(page, N, 'running');

	await page.click(`[data-testid="deployment-scale-${name}"]`);
	await page.fill('[data-testid="scale-count"]', '3');
	await page.click('[data-testid="scale-submit"]');
	await page.locator(running, { hasText: '3 / 3' }).waitFor({ timeout: 60000 });
	await page.locator('[data-testid="deployment-events"]', { hasText: name + '-2' }).waitFor({ timeout: 15000 });
	await shot(page, N, 'scaled');

	await page.click(`[data-testid="deployment-rm-${name}"]`);
	await page.click('[data-testid="confirm-ok"]');
	await page.waitForSelector(running, { state: 'detached', timeout: 30000 });
	settle(problems);
});
