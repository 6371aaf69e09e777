// Chart draws time series with uPlot: x in Unix seconds, one or more y series. It follows
// the container's width (ResizeObserver) and the colour theme. uPlot (the largest file) is
// loaded on the first chart, not with the app: the overview needs none.
import { html, useEffect, useRef } from './lib.js';

let uPlotModule = null;
const loadUPlot = () => (uPlotModule ||= import('../vendor/uplot.mjs').then(m => m.default));

const PALETTE = ['#4f8cff', '#f5a524', '#17c964', '#f31260', '#9353d3', '#06b7db', '#ff7eb6', '#a3a3a3'];

function themeColor(name, fallback) {
	const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
	return v || fallback;
}

// Chart props: data = [xs, ys1, ys2, ...]; series = [{label}, ...] for the ys; unit for
// the axis; height; label for screen readers (the figure's accessible name).
export function Chart({ data, series, unit = '', height = 240, label, testid }) {
	const el = useRef(null);
	const plot = useRef(null);
	const key = series.map(s => s.label).join('\u0000');
	const dataRef = useRef(data);
	dataRef.current = data;
	useEffect(() => {
		const node = el.current;
		if (!node) return;
		let gone = false, ro = null;
		const build = uPlot => {
			const fg = themeColor('--muted', '#888'), grid = themeColor('--grid', 'rgba(128,128,128,.2)');
			const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
			const opts = {
				width: Math.max(node.clientWidth, 200),
				height,
				series: [{}, ...series.map((s, i) => ({
					label: s.label,
					stroke: PALETTE[i % PALETTE.length],
					width: 1.5,
					value: (u, v) => v === null || v === undefined ? '–' : fmtAxis(v) + (unit ? ' ' + unit : ''),
				}))],
				axes: [axis, { ...axis, values: (u, vals) => vals.map(v => fmtAxis(v)), size: 56 }],
				legend: { live: true },
				cursor: { drag: { x: true, y: false } },
			};
			plot.current = new uPlot(opts, dataRef.current, node);
			ro = new ResizeObserver(() => plot.current && plot.current.setSize({ width: Math.max(node.clientWidth, 200), height }));
			ro.observe(node);
		};
		loadUPlot().then(uPlot => { if (!gone) build(uPlot); });
		return () => {
			gone = true;
			if (ro) ro.disconnect();
			if (plot.current) { plot.current.destroy(); plot.current = null; }
		};
	}, [key, height, unit]);
	useEffect(() => { if (plot.current) plot.current.setData(data); }, [data]);
	return html`<figure class="chart" role="img" aria-label=${label} data-testid=${testid}>
		<div ref=${el} class="chart-body"></div>
	</figure>`;
}

function fmtAxis(v) {
	const a = Math.abs(v);
	if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
	if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
	if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
	if (a >= 100 || a === 0) return String(Math.round(v));
	if (a >= 1) return v.toFixed(2);
	return v.toPrecision(2);
}

// matrixToChart turns a Prometheus matrix result into uPlot data: a shared, sorted time
// axis and one aligned series per result (null where a series has no point).
export function matrixToChart(result) {
	const times = new Set();
	for (const s of result) for (const [t] of s.values || []) times.add(t);
	const xs = [...times].sort((a, b) => a - b);
	const pos = new Map(xs.map((t, i) => [t, i]));
	const ys = result.map(s => {
		const col = new Array(xs.length).fill(null);
		for (const [t, v] of s.values || []) col[pos.get(t)] = Number(v);
		return col;
	});
	const series = result.map(s => ({ label: seriesLabel(s.metric) }));
	return { data: [xs, ...ys], series };
}

export function seriesLabel(metric) {
	const m = { ...(metric || {}) };
	const name = m.__name__ || '';
	delete m.__name__;
	const parts = Object.entries(m).map(([k, v]) => `${k}="${v}"`);
	return (name + (parts.length ? '{' + parts.join(', ') + '}' : '')) || '{}';
}
