// An area's own stylesheet (pages/<name>.css), linked once when its pages load: the CSP refuses
// inline styles, console.css stays the frame's.
export function areaStylesheet(name) {
  if (typeof document === "undefined" || document.querySelector(`link[data-area="${name}"]`)) return;
  const sheet = document.createElement("link");
  sheet.rel = "stylesheet";
  sheet.href = new URL(`../pages/${name}.css`, import.meta.url).href;
  sheet.dataset.area = name;
  document.head.appendChild(sheet);
}
