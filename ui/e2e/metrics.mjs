// Run a PromQL query on the metrics page and see it graphed (uPlot draws on a canvas), then
// change the range; the query is kept in the address for a reload.
import { env, run, login, shot, assert } from './_harness.mjs';
import { settle } from './_pages.mjs';

const N = 'metrics';
await run(N, async ({ page, problems }) => {
	await login(page, env.admin);
	await page.click('[data-testid="nav-metrics"]');
	await page.fill('[data-testid="promql-input"]', 'constellation_node_cpu_percent');
	// The nodes sample every few seconds: a fresh cluster may need a moment for a first point,
	// and a node that answers the fan-out late (a restarted one, the race detector) is left
	// out of that answer with a warning, so the query is run again until every node is in it.
	const deadline = Date.now() + 90000;
	for (;;) {
		await page.click('[data-testid="promql-run"]');
		const r = await page.waitForSelector('[data-testid="promql-chart"] canvas, [data-testid="promql-empty"], .error', { timeout: 15000 });
		if (await r.evaluate(e => e.tagName === 'CANVAS')) {
			// One series per node, named in the legend and the table.
			const table = await page.locator('[data-testid="promql-table"]').textContent();
			const missing = env.nodes.filter(n => !table.includes(`node="${n.name}"`)).map(n => n.name);
			if (missing.length === 0) break;
			assert(Date.now() < deadline, 'no series of ' + missing.join(', ') + ' within 90 s: ' + table);
		} else {
			assert(Date.now() < deadline, 'no graph within 90 s: ' + await r.textContent());
		}
		await page.waitForTimeout(2000);
	}
	await shot(page, N, 'graph');
	await page.selectOption('[data-testid="promql-range"]', '15m');
	await page.waitForSelector('[data-testid="promql-chart"] canvas');
	assert(page.url().includes('q=constellation_node_cpu_percent'), 'the query is not in the address: ' + page.url());

	// A bad query is an error naming the problem, not a blank graph.
	await page.fill('[data-testid="promql-input"]', 'rate(constellation_node_cpu_percent[');
	await page.click('[data-testid="promql-run"]');
	const err = await page.waitForSelector('[data-testid="page-metrics"] .error', { timeout: 15000 });
	assert(/parse|unexpected|unclosed/i.test(await err.textContent()), 'error: ' + await err.textContent());
	// The browser logs that 400 as a console error: expected here.
	problems.splice(0, problems.length, ...problems.filter(p => !p.includes('status of 400')));
	settle(problems);
});
