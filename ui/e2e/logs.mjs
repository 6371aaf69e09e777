// Search the cluster's logs for an entry, then follow a query live and see a new entry
// arrive without reloading.
import { env, run, login, shot, assert } from './_harness.mjs';
import { settle } from './_pages.mjs';

const N = 'logs';

// submit writes a structured entry through the API as the page would (CSRF header).
const submit = (page, message) => page.evaluate(async message => {
	const s = await (await fetch('/ui/session')).json();
	const r = await fetch('/v1/monitor/logs', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token },
		body: JSON.stringify({ level: 'error', message, fields: { user_id: 123 } }) });
	return r.status;
}, message);

await run(N, async ({ page, problems }) => {
	await login(page, env.admin);
	const tag = 'card-declined-' + Date.now().toString(36);
	assert(await submit(page, `payment failed: ${tag}`) < 300, 'submitting a log entry failed');
	await page.click('[data-testid="nav-logs"]');
	await page.fill('[data-testid="logs-query"]', `"${tag}" AND level:error`);
	const deadline = Date.now() + 30000;
	for (;;) {
		await page.click('[data-testid="logs-search"]');
		await page.waitForSelector('[data-testid="logs-results"], [data-testid="page-logs"] .empty', { timeout: 15000 });
		if (await page.locator('[data-testid="logs-results"]', { hasText: tag }).count()) break;
		assert(Date.now() < deadline, 'the entry was not found within 30 s');
		await page.waitForTimeout(1000);
	}
	await page.locator('[data-testid="logs-results"]', { hasText: 'user_id=123' }).waitFor();
	await shot(page, N, 'search');

	await page.fill('[data-testid="logs-query"]', 'live-' + tag);
	await page.check('[data-testid="logs-tail"]');
	await page.waitForSelector('[data-testid="page-logs"] [aria-live] .empty');
	await page.waitForTimeout(1000); // the stream is open on every node
	await submit(page, `live-${tag} arrived`);
	await page.locator('[data-testid="logs-live"]', { hasText: `live-${tag} arrived` }).waitFor({ timeout: 20000 });
	await shot(page, N, 'tail');
	settle(problems);
});
