// Every page renders without an error, at desktop width and at 360 px (no sideways
// scrolling), and is screenshotted in both; the keyboard reaches the navigation.
import { env, run, login, shot, assert } from './_harness.mjs';
import { settle } from './_pages.mjs';

const N = 'pages';
const PAGES = ['overview', 'nodes', 'instances', 'deployments', 'services', 'files', 'alerts', 'metrics', 'logs', 'traces', 'events'];

await run(N, async ({ page, problems }) => {
	await login(page, env.admin);
	// Keyboard: the first Tab reaches the skip link, which moves focus to the content.
	await page.goto(env.url + '#/overview');
	await page.reload();
	await page.waitForSelector('[data-testid="page-overview"]');
	await page.keyboard.press('Tab');
	assert(await page.evaluate(() => document.activeElement.classList.contains('skip')), 'the first Tab does not reach the skip link');
	await page.keyboard.press('Enter');
	assert(await page.evaluate(() => document.activeElement.id === 'main'), 'the skip link does not move focus to the content');
	// A page change by the keyboard moves focus to the new page's content.
	await page.focus('[data-testid="nav-nodes"]');
	await page.keyboard.press('Enter');
	await page.waitForFunction(() => document.activeElement.id === 'main' && document.querySelector('[data-testid="page-nodes"]'), null, { timeout: 5000 })
		.catch(() => assert(false, 'focus stays in the navigation after a page change'));
	// Tabs follow the arrow keys (alerts: firing -> pending).
	await page.goto(env.url + '#/alerts');
	await page.focus('[data-testid="tab-alerts"]');
	await page.keyboard.press('ArrowRight');
	await page.waitForSelector('[data-testid="tab-pending"][aria-selected="true"]:focus', { timeout: 5000 });
	for (const [w, h, suffix] of [[1280, 800, ''], [360, 740, '-phone']]) {
		await page.setViewportSize({ width: w, height: h });
		for (const p of PAGES) {
			await page.goto(env.url + '#/' + p);
			await page.waitForSelector(`[data-testid="page-${p}"] h1`);
			await page.waitForTimeout(p === 'overview' ? 2500 : 800); // live data arrives
			const alerts = page.locator(`[data-testid="page-${p}"] [role="alert"]`);
			if (await alerts.count()) assert(false, `${p} shows an error: ${await alerts.first().textContent()}`);
			if (suffix) {
				const sw = await page.evaluate(() => document.documentElement.scrollWidth);
				assert(sw <= w + 1, `${p} is ${sw} px wide at ${w} px`);
			}
			await shot(page, N, p + suffix);
		}
	}
	settle(problems);
});
