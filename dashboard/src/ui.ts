/** DOM helpers and number formats (no framework: native elements keep keyboard and screen readers working). */

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

/** Creates an element: `on*` attributes become listeners, booleans toggle attributes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Appends children, skipping empty ones. */
export function append(el: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** Sets text only when it changed (so screen readers and selection are not disturbed by no-op updates). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

const MINUS = "\u2212";

/** A number with grouping; "—" for NaN. `signed` shows + for positives (and a true minus sign always). */
export function fmt(value: number, digits = 0, signed = false): string {
  if (!Number.isFinite(value)) return "—";
  const text = Math.abs(value).toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  if (value < 0 && text !== Number(0).toFixed(digits)) return MINUS + text;
  return signed && value > 0 ? `+${text}` : text;
}

/** Dollars: "+$1,234" / "−$56". */
export function money(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return "—";
  const body = fmt(Math.abs(value), digits);
  return value < 0 ? `${MINUS}$${body}` : value > 0 ? `+$${body}` : `$${body}`;
}

/** "gain" / "loss" / "" for CSS, so colour is never the only cue (the sign is always printed too). */
export function tone(value: number): string {
  return !Number.isFinite(value) || value === 0 ? "" : value > 0 ? "gain" : "loss";
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with attributes. */
export function svg(tag: string, attrs: Record<string, string | number>, ...children: SVGElement[]): SVGElement {
  const el = document.createElementNS(SVG, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(c);
  return el;
}
