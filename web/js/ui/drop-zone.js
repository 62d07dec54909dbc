// One way to hand files to a page: a file input, a drop, a paste. Used by the image page, the
// search page and the widget (inside its shadow root), so they accept files the same way.
//
//   wireDropZone(zone, {
//     input,            // <input type=file>, or a list of them: a choice counts like a drop
//     dragTarget,       // what takes drags (default: the zone; the search page passes document)
//     pasteTarget,      // what takes pastes of files (default: none)
//     onFiles(files, how),      // File[] (never empty), how: 'input' | 'drop' | 'paste'
//     onDataTransfer(dt),       // optional: a drop's raw DataTransfer instead (folders)
//     onNothing(),              // optional: a drop without files
//   })
//
// The zone gets the class "over" while files are dragged over it.

function hasFiles(dataTransfer) {
  return [...(dataTransfer?.types ?? [])].includes('Files');
}

export function wireDropZone(zone, { input = null, dragTarget = zone, pasteTarget = null, onFiles, onDataTransfer = null, onNothing = () => {} }) {
  for (const one of [input].flat().filter(Boolean)) {
    one.addEventListener('change', () => {
      const files = [...(one.files ?? [])];
      one.value = ''; // choosing the same file again must fire 'change' again
      if (files.length) onFiles(files, 'input');
    });
  }
  dragTarget.addEventListener('dragover', (e) => {
    if (!hasFiles(e.dataTransfer)) return;
    e.preventDefault();
    zone.classList.add('over');
  });
  dragTarget.addEventListener('dragleave', (e) => {
    // Leaving a child for another child is not leaving the zone.
    if (!e.relatedTarget || !(dragTarget.contains?.(e.relatedTarget) ?? true)) zone.classList.remove('over');
  });
  dragTarget.addEventListener('drop', (e) => {
    zone.classList.remove('over');
    if (!hasFiles(e.dataTransfer)) {
      // Text dropped into a field is the field's business; anywhere else it is not an image.
      if (e.target?.closest?.('input, textarea')) return;
      e.preventDefault();
      return onNothing();
    }
    e.preventDefault();
    if (onDataTransfer && e.dataTransfer?.items?.length) return onDataTransfer(e.dataTransfer);
    const files = [...(e.dataTransfer?.files ?? [])];
    if (files.length) onFiles(files, 'drop');
    else onNothing();
  });
  pasteTarget?.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.items ?? [])].filter((i) => i.kind === 'file').map((i) => i.getAsFile());
    if (files.length) onFiles(files, 'paste');
  });
}
