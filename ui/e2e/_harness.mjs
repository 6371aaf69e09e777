// Helpers of the browser scenarios (ui/e2e_test.go runs every *.mjs but these _ files).
// Environment: see TestBrowserScenarios in ui/e2e_test.go.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const env = {
	url: need('C7N_URL'),
	nodes: JSON.parse(need('C7N_NODES')),
	admin: need('C7N_ADMIN_TOKEN'),
	operator: process.env.C7N_OPERATOR_TOKEN,
	viewer: need('C7N_VIEWER_TOKEN'),
	bin: process.env.C7N_BIN,
	chromium: process.env.C7N_CHROMIUM || '/usr/bin/chromium',
	shots: process.env.C7N_SCREENSHOTS || '.',
};

function need(name) {
	const v = process.env[name];
	if (!v) throw new Error(`${name} is not set: run the scenarios through 'go test ./ui -run TestBrowserScenarios'`);
	return v;
}

// launch starts headless chromium (no sandbox: CI runs as root) with a context that
// accepts the nodes' self-signed certificates. Console errors and CSP violations of the
// page fail the scenario at the end (check()).
export async function launch({ width = 1280, height = 800 } = {}) {
	const browser = await chromium.launch({
		executablePath: env.chromium, headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
	});
	const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width, height } });
	const page = await context.newPage();
	const problems = [];
	page.on('console', m => {
		if (m.type() === 'error' && !/the server responded with a status of (401|403|404)/.test(m.text())) problems.push('console error: ' + m.text());
	});
	page.on('pageerror', e => problems.push('page error: ' + e.message));
	// Failed requests are logged (aborted streams on navigation are normal), to debug a failure.
	page.on('requestfailed', r => console.log(`request failed: ${r.method()} ${r.url()}: ${r.failure() && r.failure().errorText}`));
	return { browser, context, page, problems };
}

// login opens the dashboard and signs in with token through the login form.
export async function login(page, token) {
	await page.goto(env.url);
	await page.fill('[data-testid="login-token"]', token);
	await page.click('[data-testid="login-submit"]');
	await page.waitForSelector('[data-testid="session-who"]', { timeout: 15000 });
}

let shotN = 0;
// shot saves a full-page screenshot as <scenario>-<n>-<name>.png.
export async function shot(page, scenario, name) {
	mkdirSync(env.shots, { recursive: true });
	const file = join(env.shots, `${scenario}-${String(++shotN).padStart(2, '0')}-${name}.png`);
	await page.screenshot({ path: file, fullPage: true });
	console.log('screenshot ' + file);
}

// metric prints a figure the Go test reports.
export function metric(name, value, unit) {
	console.log(`METRIC ${name} ${Math.round(value * 10) / 10} ${unit}`);
}

export function assert(cond, msg) {
	if (!cond) throw new Error('assertion failed: ' + msg);
}

// run wraps a scenario: a failure prints its error (and a screenshot) and exits 1.
export async function run(scenario, fn) {
	let b;
	try {
		b = await launch();
		await fn(b);
		if (b.problems.length) throw new Error(b.problems.join('\n'));
		console.log(`scenario ${scenario} ok`);
	} catch (e) {
		console.error(`scenario ${scenario} FAILED: ${e.stack || e}`);
		if (b) {
			try { await shot(b.page, scenario, 'failure'); } catch { /* the page may be gone */ }
		}
		process.exitCode = 1;
	} finally {
		if (b) await b.browser.close();
	}
}
