// The console's entry point: find out how to sign in, then route #/... to the views.
import { api, session, ApiError } from "./api.js";
import { h, notify, showFlashed } from "./dom.js";
import { signInView } from "./signin.js";
import { imagesView } from "./images.js";
import { detailView } from "./detail.js";
import { uploadView } from "./upload.js";
import { urlImportView } from "./imports.js";
import { sharedView } from "./shared.js";
import { adminView } from "./admin.js";

const ROUTES = [
  [/^#\/images$/, () => imagesView()],
  [/^#\/image\/([0-9a-fA-F-]{36})$/, (m) => detailView(m[1])],
  [/^#\/upload$/, () => uploadView()],
  [/^#\/import$/, () => urlImportView()],
  [/^#\/shared$/, () => sharedView()],
  [/^#\/admin$/, () => adminView()],
];

async function boot() {
  window.addEventListener("hashchange", route);
  try {
    session.config = await api("GET", "/console/api/config");
  } catch (error) {
    notify(`The service did not answer: ${error.message}`);
    return;
  }
  if (session.config.auth === "noauth" || session.token) await signedIn();
  else signInView(signedIn);
}

/** After a sign-in (or with a token kept in this tab): who am I, then the current page. */
export async function signedIn() {
  try {
    session.me = await api("GET", "/console/api/whoami");
  } catch (error) {
    session.token = null;
    if (error instanceof ApiError && error.status === 401) {
      signInView(signedIn);
      notify("The token was refused (unknown, revoked or expired): sign in again.");
      return;
    }
    notify(error.message);
    return;
  }
  const { user, project, admin } = session.me;
  document.getElementById("nav").hidden = false;
  document.getElementById("nav-admin").hidden = !admin;
  const who = document.getElementById("who");
  who.replaceChildren(h("span", {}, `${user || "?"} · project ${project || "none"}${admin ? " · admin" : ""}`));
  if (session.config.auth !== "noauth") {
    who.append(h("button", { type: "button", className: "secondary", onclick: signOut }, "Sign out"));
  }
  if (!location.hash || location.hash === "#/signin") location.hash = "#/images";
  else route();
}

function signOut() {
  session.token = null;
  session.me = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("who").replaceChildren();
  notify("");
  location.hash = "";
  signInView(signedIn);
}

/** Show the view of the current #/... address. */
export async function route() {
  if (!session.me) return;
  showFlashed();
  for (const link of document.querySelectorAll("nav a")) {
    if (location.hash.startsWith(link.getAttribute("href"))) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, view] of ROUTES) {
    const match = location.hash.match(pattern);
    if (match) {
      try {
        await view(match);
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) return signOut();
        notify(error.message);
      }
      return;
    }
  }
  location.hash = "#/images";
}

boot();
