// The widget demo: three <clip-widget>s (web/widget.js defines the element), a ?model= for all of
// them, and a log of the events they send. A module file, not an inline script: the pages' CSP
// runs scripts from 'self' only. Module scripts run after the document is parsed, so every widget
// is in the DOM here.

document.querySelector('#origin').textContent = location.origin;
const model = new URLSearchParams(location.search).get('model');
const log = document.querySelector('#events');
for (const w of document.querySelectorAll('clip-widget')) {
  if (model) w.setAttribute('model', model);
  for (const name of ['clip-ready', 'clip-embedding', 'clip-error']) {
    w.addEventListener(name, (e) => {
      const what = name === 'clip-embedding' ? `${e.detail.source}, ${e.detail.embedding.length} values`
        : name === 'clip-error' ? e.detail.message : e.detail.model.name;
      log.textContent = `${w.id}: ${name} (${what})\n` + log.textContent;
    });
  }
}
