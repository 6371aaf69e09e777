// Log in with a token, see the 3 nodes on the overview, kill one and watch it turn dead
// without reloading; measure the time to a meaningful paint on loopback.
import { env, run, login, shot, metric, assert } from './_harness.mjs';

const N = 'overview';
await run(N, async ({ context, page }) => {
	await login(page, env.admin);
	await page.waitForSelector('[data-testid="star-alpha"][data-status="alive"]', { timeout: 20000 });
	for (const n of env.nodes) {
		await page.waitForSelector(`[data-testid="star-${n.name}"][data-status="alive"]`, { timeout: 20000 });
	}
	const alive = await page.textContent('[data-testid="overview-nodes-alive"]');
	const total = await page.textContent('[data-testid="overview-nodes-total"]');
	assert(alive.trim() === '3' && total.trim() === '3', `overview shows ${alive}/${total} nodes alive; want 3/3`);
	await shot(page, N, 'overview');

	// A fresh load in a new tab with the session cookie: time until the three stars are drawn.
	const tab = await context.newPage();
	await tab.goto(env.url);
	const ready = await (await tab.waitForFunction(
		() => document.querySelectorAll('[data-testid^="star-"][data-status="alive"]').length >= 3 && performance.now(),
		null, { polling: 'raf', timeout: 20000 })).jsonValue();
	const fcp = await tab.evaluate(() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0);
	metric('first_contentful_paint', fcp, 'ms');
	metric('first_meaningful_paint', ready, 'ms'); // the overview with every node drawn
	const bytes = await tab.evaluate(() => performance.getEntriesByType('resource')
		.concat(performance.getEntriesByType('navigation'))
		.reduce((s, e) => s + (e.transferSize || 0), 0));
	metric('page_transfer', bytes / 1024, 'KB'); // revalidated files count their headers only
	const proto = await tab.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
	assert(proto === 'h2', `the dashboard is served over ${proto}; want h2 (streams and blocking reads share one connection)`);
	await tab.close();

	// Kill gamma: the page shows it dead by itself (no reload).
	const gamma = env.nodes.find(n => n.name === 'gamma');
	const loads = await page.evaluate(() => performance.getEntriesByType('navigation').length);
	const t0 = Date.now();
	process.kill(gamma.pid, 'SIGKILL');
	await page.waitForSelector('[data-testid="star-gamma"][data-status="dead"]', { timeout: 60000 });
	metric('dead_shown_after', Date.now() - t0, 'ms');
	assert(await page.evaluate(() => performance.getEntriesByType('navigation').length) === loads, 'the page reloaded');
	await page.waitForFunction(() => document.querySelector('[data-testid="overview-nodes-alive"]')?.textContent.trim() === '2', null, { timeout: 30000 });
	await shot(page, N, 'node-dead');
});
