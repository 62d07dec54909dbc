// Per-file download progress bars (bytes / total).

function formatBytes(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} kB`;
  return `${n} B`;
}

export function renderProgress(container, files) {
  if (!container) return;
  container.replaceChildren(
    ...files.map((f) => {
      const row = document.createElement('div');
      row.className = 'progress-row';
      const label = document.createElement('span');
      label.textContent = `${f.file}: ${formatBytes(f.loaded)}${f.total ? ' / ' + formatBytes(f.total) : ''}`;
      const bar = document.createElement('progress');
      bar.max = f.total || 1;
      bar.value = f.done ? bar.max : f.loaded;
      row.append(label, bar);
      return row;
    }),
  );
}
