// DOM helpers shared by the viewer's modules. Data is only ever written with textContent (never parsed as HTML).
const SVG_NS = "http://www.w3.org/2000/svg";

function assign(node, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.setAttribute("class", v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  return node;
}

export function el(tag, attrs = {}, ...children) {
  const node = assign(document.createElement(tag), attrs);
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function svg(tag, attrs = {}) {
  return assign(document.createElementNS(SVG_NS, tag), attrs);
}
