// Per-file download progress bars: bytes / total, rate and time left, and what a download that
// lost its connection is doing about it (retrying in N s, resumed from, paused).

function formatBytes(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} kB`;
  return `${n} B`;
}

function formatSeconds(s) {
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  if (s >= 90) return `${Math.round(s / 60)} min`;
  return `${Math.max(1, Math.round(s))} s`;
}

// The words after a file's bytes, e.g. "4.1 MB/s, 1 min left" or "connection lost: retrying in 3 s".
export function progressDetails(f) {
  if (f.done) return f.resumedFrom ? [`resumed from ${formatBytes(f.resumedFrom)}`] : [];
  const parts = [];
  if (f.paused) parts.push('paused');
  else if (f.retryInS) parts.push(`connection lost: retrying in ${f.retryInS} s`);
  else if (f.rate > 0) parts.push(`${formatBytes(f.rate)}/s` + (f.etaS != null ? `, ${formatSeconds(f.etaS)} left` : ''));
  if (f.resumedFrom) parts.push(`resumed from ${formatBytes(f.resumedFrom)}`);
  if (f.rangeIgnored) parts.push('this server cannot resume downloads: the whole file again');
  return parts;
}

export function renderProgress(container, files) {
  if (!container) return;
  container.replaceChildren(
    ...files.map((f) => {
      const row = document.createElement('div');
      row.className = 'progress-row';
      const label = document.createElement('span');
      const details = progressDetails(f);
      label.textContent = `${f.file}: ${formatBytes(f.loaded)}${f.total ? ' / ' + formatBytes(f.total) : ''}` +
        (details.length ? ` (${details.join('; ')})` : '');
      const bar = document.createElement('progress');
      bar.max = f.total || 1;
      bar.value = f.done ? bar.max : f.loaded;
      row.append(label, bar);
      return row;
    }),
  );
}
