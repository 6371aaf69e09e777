// Every page renders without an error, at desktop width and at 360 px (no sideways
// scrolling), and is screenshotted in both; the keyboard reaches the navigation.
import { env, run, login, shot, assert } from './_harness.mjs';

const N = 'pages';
const PAGES = ['overview', 'nodes', 'instances', 'deployments', 'services', 'files', 'alerts', 'metrics', 'logs', 'traces', 'events'];

await run(N, async ({ page }) => {
	await login(page, env.admin);
	// Keyboard: the first Tab reaches the skip link, which moves focus to the content.
	await page.goto(env.url + '#/overview');
	await page.waitForSelector('[data-testid="page-overview"]');
	await page.keyboard.press('Tab');
	assert(await page.evaluate(() => document.activeElement.classList.contains('skip')), 'the first Tab does not reach the skip link');
	for (const [w, h, suffix] of [[1280, 800, ''], [360, 740, '-phone']]) {
		await page.setViewportSize({ width: w, height: h });
		for (const p of PAGES) {
			await page.goto(env.url + '#/' + p);
			await page.waitForSelector(`[data-testid="page-${p}"] h1`);
			await page.waitForTimeout(p === 'overview' ? 2500 : 800); // live data arrives
			assert(await page.locator(`[data-testid="page-${p}"] [role="alert"]`).count() === 0,
				`${p}: ${await page.locator(`[data-testid="page-${p}"] [role="alert"]`).first().textContent().catch(() => '')}`);
			if (suffix) {
				const sw = await page.evaluate(() => document.documentElement.scrollWidth);
				assert(sw <= w + 1, `${p} is ${sw} px wide at ${w} px`);
			}
			await shot(page, N, p + suffix);
		}
	}
});
