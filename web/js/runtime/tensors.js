// Tensors as the workers pass them: { data: TypedArray, dims }.

// Same-shaped (1, ...) tensors -> one (n, ...) batch, in the order given.
export function stackTensors(tensors) {
  const size = tensors[0].data.length;
  const data = new tensors[0].data.constructor(tensors.length * size); // (n, ...)
  tensors.forEach((t, i) => data.set(t.data, i * size));
  return { data, dims: [tensors.length, ...tensors[0].dims.slice(1)] };
}
