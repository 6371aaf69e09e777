// Upload a file into a DFS directory from the files page, see it listed with its version,
// and download it back through the browser: the bytes are the same.
import { env, run, login, shot, assert } from './_harness.mjs';
import { settle } from './_pages.mjs';
import { readFileSync } from 'node:fs';

const N = 'files';
await run(N, async ({ page, problems }) => {
	await login(page, env.admin);
	const dir = '/ui-e2e-' + Date.now().toString(36);
	const body = 'constellation dfs ' + 'x'.repeat(200000) + '\nend\n';
	await page.goto(env.url + '#/files' + dir);
	await page.waitForSelector('[data-testid="page-files"]');
	await page.setInputFiles('[data-testid="file-upload"]', { name: 'report.txt', mimeType: 'text/plain', buffer: Buffer.from(body) });
	const path = dir + '/report.txt';
	await page.waitForSelector(`[data-testid="file-row-${path}"]`, { timeout: 20000 });
	await shot(page, N, 'listed');

	const dl = page.waitForEvent('download', { timeout: 20000 });
	await page.click(`[data-testid="file-download-${path}"]`);
	const d = await dl;
	assert(d.suggestedFilename() === 'report.txt', 'download named ' + d.suggestedFilename());
	const got = readFileSync(await d.path(), 'utf8');
	assert(got === body, `downloaded ${got.length} bytes; want the ${body.length} uploaded`);

	// Its versions, from the row's name.
	await page.click(`[data-testid="file-row-${path}"] button.link`);
	await page.locator('[data-testid="file-versions"]', { hasText: 'current' }).waitFor({ timeout: 15000 });
	await shot(page, N, 'versions');
	// The directory is listed at the root.
	await page.goto(env.url + '#/files');
	await page.locator('[data-testid="files-table"]', { hasText: dir.slice(1) + '/' }).waitFor({ timeout: 15000 });
	settle(problems);
});
