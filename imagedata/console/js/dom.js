// Small DOM and formatting helpers shared by the views.

/** An element: h("button", {type: "button", onclick}, "text", child...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "className") el.className = value;
    else if (key in el && key !== "list" && key !== "form") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

let counter = 0;

/** A labelled field: its <label> and control, tied by a fresh id. */
export function field(label, control) {
  control.id = control.id || `f${++counter}`;
  return h("div", {}, h("label", { htmlFor: control.id }, label), control);
}

/** Replace the content of the main region and move focus to its heading. */
export function show(...children) {
  const main = document.getElementById("main");
  main.replaceChildren(...children);
  const heading = main.querySelector("h2");
  if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
}

let flashed = "";

/** A notice for the page shown next (after a change of address). */
export function flash(message) { flashed = message; }

/** Show the flashed notice, if any, or clear the alert region (each new page). */
export function showFlashed() {
  notify(flashed, "info");
  flashed = "";
}

/** Show an error (or, with kind "info", a notice) in the alert region. */
export function notify(message, kind = "error") {
  const box = document.getElementById("alert");
  box.className = kind === "info" ? "alert info" : "alert";
  box.textContent = message;
  box.hidden = !message;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** 1536 -> "1.5 KiB"; null -> "". */
export function bytes(value) {
  if (value === null || value === undefined) return "";
  let n = Number(value), unit = 0;
  while (n >= 1024 && unit < UNITS.length - 1) { n /= 1024; unit++; }
  return unit === 0 ? `${n} B` : `${n.toFixed(1)} ${UNITS[unit]}`;
}

/** An ISO time as the reader's local date and time. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso.endsWith("Z") ? iso : `${iso}Z`);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** Seconds as "1 h 02 min", "3 min 05 s" or "12 s". */
export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "…";
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${s} s`;
}

/** A dialog asking to confirm; resolves true for the confirming button. */
export function confirmDialog(question, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-label": question },
      h("p", {}, question),
      h("form", { method: "dialog", className: "actions" },
        h("button", { value: "yes", className: "danger" }, confirmLabel),
        h("button", { value: "no", className: "secondary", autofocus: true }, "Cancel")));
    dialog.addEventListener("close", () => { dialog.remove(); resolve(dialog.returnValue === "yes"); });
    document.body.append(dialog);
    dialog.showModal();
  });
}
