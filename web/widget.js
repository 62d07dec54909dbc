// Public URL /widget.js: the one script other sites load to get <clip-widget>.
//
//   <script type="module" src="https://CLIP-WEB-HOST/widget.js"></script>
//   <clip-widget mode="image|text|match" model="PRESET" backend="wasm|webgpu|webgl"></clip-widget>
//
// The element lives in js/widget/clip-widget.js; this file only keeps the URL stable.

export { ClipWidget } from './js/widget/clip-widget.js';
