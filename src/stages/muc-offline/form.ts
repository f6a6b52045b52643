// The room registration form (XEP-0045 §7.10, XEP-0004) with the Tigase offline field (SPEC D2, D3).
// Pure functions on elements, unit-tested in test/unit/offline/form.test.ts.
import { Element } from "@xmpp/xml";
import { clone, MUC_REGISTER_FORM, OFFLINE_FIELD, REGISTER, XDATA } from "./xml.js";

const ROOMNICK = "muc#register_roomnick";

/** XEP-0004 §3.3 boolean: `1|true|0|false` (SPEC D3); anything else is invalid. */
export function parseBoolean(v: string | null | undefined): boolean | "invalid" {
  const s = (v ?? "").trim();
  if (s === "1" || s === "true") return true;
  if (s === "0" || s === "false") return false;
  return "invalid";
}

function field(form: Element, name: string): Element | undefined {
  return form.getChildren("field").find((f) => f.attrs.var === name);
}

export interface Submission {
  /** undefined: the form has no offline field (SPEC D3: the flag stays as it is). */
  offline: boolean | "invalid" | undefined;
  nick: string | undefined;
}

export function readSubmission(form: Element): Submission {
  const f = field(form, OFFLINE_FIELD);
  const nick = field(form, ROOMNICK)?.getChildText("value")?.trim();
  return { offline: f ? parseBoolean(f.getChildText("value")) : undefined, nick: nick || undefined };
}

/** SPEC D3: the offline field never reaches upstream (the server does not know it). */
export function stripOfflineField(form: Element): void {
  form.children = form.children.filter((c) => typeof c === "string" || c.name !== "field" || c.attrs.var !== OFFLINE_FIELD);
}

/** A submitted form without a nick gets the one mucmux knows (the server requires it). */
export function fillNick(form: Element, nick: string): void {
  const f = field(form, ROOMNICK);
  if (f?.getChildText("value")?.trim()) return;
  if (f) f.children = [];
  (f ?? form.c("field", { var: ROOMNICK })).c("value").t(nick);
}

function setValue(f: Element, value: string): void {
  f.children = f.children.filter((c) => typeof c === "string" || c.name !== "value");
  f.c("value").t(value);
}

/**
 * SPEC D2: the registration answer a client gets, whatever upstream said: upstream's query (keeping
 * `<registered/>`, `<username/>`, instructions) with a fillable muc#register form carrying the nick
 * and the offline field set to the stored flag.
 */
export function offerForm(upstream: Element | undefined, opts: { offline: boolean; nick: string | undefined }): Element {
  const query = upstream ? clone(upstream) : new Element("query", { xmlns: REGISTER });
  let form = query.getChild("x", XDATA);
  if (!form) {
    form = query.c("x", { xmlns: XDATA, type: "form" });
    form.c("title").t("Room registration");
  }
  form.attrs.type = "form"; // a registered user's form may come as type=result; the client must be able to submit it
  if (!field(form, "FORM_TYPE")) form.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(MUC_REGISTER_FORM);
  const nickField = field(form, ROOMNICK) ?? form.c("field", { var: ROOMNICK, type: "text-single", label: "Nickname" }).c("required").up();
  if (opts.nick && !nickField.getChildText("value")) setValue(nickField, opts.nick);
  const offline = field(form, OFFLINE_FIELD) ??
    form.c("field", { var: OFFLINE_FIELD, type: "boolean", label: "Receive messages while not in the room" });
  setValue(offline, opts.offline ? "1" : "0");
  return query;
}
