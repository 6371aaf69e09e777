// Files: browse the DFS (live through GET /v1/fs/watch), download and upload with progress,
// a file's versions (download or revert), and snapshots (take, restore, delete).
import { html, useState, useEffect, useFetch, subscribeSSE, get, post, del, request, can, enc, qs, session, navigate,
	Table, Badge, ErrorBox, Link, Empty, fmtBytes, fmtTime, useConfirm } from '../lib.js';

const dirOf = arg => '/' + (arg || '').replace(/^\/+|\/+$/g, '');

export function Files({ arg }) {
	const dir = dirOf(arg);
	const list = useFetch('/v1/fs/list' + qs({ prefix: dir }));
	const [sel, setSel] = useState(null);
	const [progress, setProgress] = useState(null); // {what, done, total}
	const [error, setError] = useState(null);
	const [announce, setAnnounce] = useState('');
	const confirm = useConfirm();
	const mayWrite = can('files:write');
	useEffect(() => setSel(null), [dir]);
	useEffect(() => subscribeSSE('/v1/fs/watch' + qs({ prefix: dir }), ['created', 'modified', 'deleted'], (type, ev) => {
		setAnnounce(`${ev.path} ${type}`);
		list.reload();
	}), [dir]);

	const download = async (path, version) => {
		setError(null);
		const name = path.split('/').pop() + (version ? '.v' + version : '');
		try {
			const res = await request('GET', '/v1/fs/files' + qs({ path, version }), undefined, { raw: true });
			const total = Number(res.headers.get('Content-Length') || 0);
			const reader = res.body.getReader();
			const chunks = [];
			let done = 0;
			for (;;) {
				const r = await reader.read();
				if (r.done) break;
				chunks.push(r.value);
				done += r.value.length;
				setProgress({ what: 'Downloading ' + name, done, total });
			}
			const url = URL.createObjectURL(new Blob(chunks));
			const a = document.createElement('a');
			a.href = url;
			a.download = name;
			document.body.appendChild(a);
			a.click();
			a.remove();
			setTimeout(() => URL.revokeObjectURL(url), 10000);
			setAnnounce(`Downloaded ${name}`);
		} catch (e) { setError(e); }
		setProgress(null);
	};

	// upload PUTs with XMLHttpRequest: fetch reports no upload progress.
	const upload = file => new Promise(resolve => {
		const path = (dir === '/' ? '' : dir) + '/' + file.name;
		const xhr = new XMLHttpRequest();
		xhr.open('PUT', '/v1/fs/files' + qs({ path }));
		const t = session.current && session.current.csrf_token;
		if (t) xhr.setRequestHeader('X-CSRF-Token', t);
		xhr.setRequestHeader('Content-Type', 'application/octet-stream');
		xhr.upload.onprogress = e => setProgress({ what: 'Uploading ' + file.name, done: e.loaded, total: e.total });
		xhr.onload = () => {
			setProgress(null);
			if (xhr.status >= 200 && xhr.status < 300) { setAnnounce(`Uploaded ${path}`); list.reload(); }
			else {
				let m = `upload of ${file.name}: HTTP ${xhr.status}`;
				try { m = JSON.parse(xhr.responseText).error || m; } catch { /* not JSON */ }
				setError(new Error(m));
			}
			resolve();
		};
		xhr.onerror = () => { setProgress(null); setError(new Error(`upload of ${file.name} failed: network error`)); resolve(); };
		xhr.send(file);
	});

	const crumbs = dir.split('/').filter(Boolean);
	const entries = list.data || null;
	const cols = [
		{ label: 'Name', render: e => e.path.endsWith('/')
			? html`<${Link} to=${'/files' + e.path.replace(/\/$/, '')}>📁 ${e.path.replace(/\/$/, '').split('/').pop()}/</${Link}>`
			: html`<button type="button" class="link" onClick=${() => setSel(e.path)} aria-pressed=${sel === e.path}>${e.path.split('/').pop()}</button>
				${e.conflict ? html` <${Badge} status="conflict" kind="warn" />` : null}` },
		{ label: 'Size', render: e => fmtBytes(e.size), cls: 'num' },
		{ label: 'Modified', render: e => fmtTime(e.mtime) },
		{ label: 'Version', render: e => e.version || '', cls: 'num' },
		{ label: 'Writer', render: e => e.writer || '' },
		{ label: 'Actions', render: e => e.path.endsWith('/') ? null : html`<button type="button" data-testid=${'file-download-' + e.path}
			onClick=${() => download(e.path)} aria-label=${'Download ' + e.path}>Download</button>
			${mayWrite ? html` <button type="button" class="danger" aria-label=${'Delete ' + e.path} onClick=${() => confirm.ask({
				title: `Delete ${e.path}?`, label: 'Delete', body: html`<p>Its versions stay (see Versions) while the tree keeps them.</p>`,
				action: async () => { await del('/v1/fs/files' + qs({ path: e.path })); list.reload(); } })}>Delete</button>` : null}` },
	];
	return html`<h1>Files</h1>
		<nav aria-label="Directory" class="crumbs"><${Link} to="/files">/</${Link}>${crumbs.map((c, i) =>
			html`<${Link} to=${'/files/' + crumbs.slice(0, i + 1).join('/')}>${c}</${Link}>/`)}</nav>
		<${ErrorBox} error=${list.error || error || confirm.error} />
		<p class="sr-only" aria-live="polite">${announce}</p>
		${progress ? html`<div class="progress" data-testid="transfer-progress"><label for="xfer">${progress.what}</label>
			<progress id="xfer" max=${progress.total || undefined} value=${progress.total ? progress.done : undefined}></progress>
			<span>${fmtBytes(progress.done)}${progress.total ? ' / ' + fmtBytes(progress.total) : ''}</span></div>` : null}
		${mayWrite ? html`<div class="toolbar"><label class="button" for="upload">Upload files to ${dir}</label>
			<input id="upload" type="file" multiple class="file-input" data-testid="file-upload"
				onChange=${async e => { for (const f of e.target.files) await upload(f); e.target.value = ''; }} /></div>` : null}
		<${Table} caption=${'Files in ' + dir} testid="files-table" columns=${cols} rows=${entries} rowKey=${e => e.path}
			rowProps=${e => ({ 'data-testid': 'file-row-' + e.path })} empty="This directory is empty." />
		${sel ? html`<${Versions} path=${sel} onDownload=${download} mayWrite=${mayWrite} confirm=${confirm} onChange=${list.reload} />` : null}
		<${Snapshots} dir=${dir} mayWrite=${mayWrite} confirm=${confirm} onChange=${list.reload} />
		${confirm.dialog}`;
}

function Versions({ path, onDownload, mayWrite, confirm, onChange }) {
	const v = useFetch('/v1/fs/versions' + qs({ path }));
	const stat = useFetch('/v1/fs/stat' + qs({ path }));
	return html`<section class="panel" aria-labelledby="ver-title">
		<h2 id="ver-title">${path}</h2>
		${stat.data ? html`<p class="muted">Copies: ${(stat.data.copies || []).map(c => html`${c.node} <${Badge} status=${c.status} /> `)}
			· tree ${stat.data.tree?.prefix} (replication ${stat.data.tree?.replication}, ${stat.data.tree?.consistency})</p>` : null}
		<${ErrorBox} error=${v.error} />
		<${Table} caption=${'Versions of ' + path} testid="file-versions" rows=${v.data} rowKey=${x => x.version}
			columns=${[{ label: 'Version', render: x => html`${x.version}${x.current ? html` <${Badge} status="current" kind="good" />` : ''}${x.deleted ? html` <${Badge} status="deleted" kind="bad" />` : ''}`, cls: 'num' },
				{ label: 'Size', render: x => fmtBytes(x.size), cls: 'num' }, { label: 'Modified', render: x => fmtTime(x.mtime) },
				{ label: 'Writer', key: 'writer' },
				{ label: 'Actions', render: x => x.deleted ? null : html`<button type="button" onClick=${() => onDownload(path, x.version)}>Download</button>
					${mayWrite && !x.current ? html` <button type="button" onClick=${() => confirm.ask({ title: `Revert ${path} to version ${x.version}?`,
						label: 'Revert', danger: false, body: html`<p>Writes version ${x.version}'s content as a new version.</p>`,
						action: async () => { await post('/v1/fs/revert', { path, version: x.version }); v.reload(); onChange(); } })}>Revert</button>` : null}` }]} />
	</section>`;
}

function Snapshots({ dir, mayWrite, confirm, onChange }) {
	const snaps = useFetch('/v1/fs/snapshots');
	const [name, setName] = useState('');
	const [error, setError] = useState(null);
	const take = async e => {
		e.preventDefault();
		setError(null);
		try { await post('/v1/fs/snapshots', { prefix: dir, name: name.trim() }); setName(''); snaps.reload(); } catch (err) { setError(err); }
	};
	return html`<section class="panel" aria-labelledby="snap-title">
		<h2 id="snap-title">Snapshots</h2>
		<${ErrorBox} error=${snaps.error || error} />
		${mayWrite ? html`<form class="inline" onSubmit=${take}>
			<label for="snap-name">Snapshot ${dir} as</label>
			<input id="snap-name" required value=${name} onInput=${e => setName(e.target.value)} placeholder="backup-1" />
			<button type="submit">Take snapshot</button></form>` : null}
		<${Table} caption="Snapshots" rows=${snaps.data} rowKey=${s => s.name} empty="No snapshot."
			columns=${[{ label: 'Name', key: 'name' }, { label: 'Prefix', key: 'prefix' }, { label: 'Created', render: s => fmtTime(s.created) },
				{ label: 'Files', key: 'files', cls: 'num' }, { label: 'Size', render: s => fmtBytes(s.bytes), cls: 'num' }, { label: 'Node', key: 'node' },
				...(mayWrite ? [{ label: 'Actions', render: s => html`<button type="button" onClick=${() => confirm.ask({ title: `Restore ${s.name}?`, label: 'Restore',
					body: html`<p>Files under ${s.prefix} are written back to their content in the snapshot (as new versions).</p>`,
					action: async () => { await post('/v1/fs/restore', { name: s.name, prefix: s.prefix }); onChange(); } })}>Restore</button>
					<button type="button" class="danger" onClick=${() => confirm.ask({ title: `Delete snapshot ${s.name}?`, label: 'Delete',
						body: html`<p>The files themselves are not touched.</p>`, action: async () => { await del('/v1/fs/snapshots/' + enc(s.name)); snaps.reload(); } })}>Delete</button>` }] : [])]} />
	</section>`;
}
