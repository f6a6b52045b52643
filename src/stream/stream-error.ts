// RFC 6120 §4.9: stream errors. The close always follows the error element.
import type { StreamErrorCondition } from "../xml/errors.js";
import { escapeText, escapeAttr } from "../xml/serialize.js";
import { NS } from "./ns.js";

export interface AppCondition { name: string; xmlns: string; attrs?: Record<string, string> }

export function streamErrorXml(condition: StreamErrorCondition, text?: string, app?: AppCondition): string {
  let s = `<stream:error><${condition} xmlns='${NS.streams}'/>`;
  if (text) s += `<text xmlns='${NS.streams}' xml:lang='en'>${escapeText(text)}</text>`;
  if (app) {
    const attrs = Object.entries(app.attrs ?? {}).map(([k, v]) => ` ${k}='${escapeAttr(v)}'`).join("");
    s += `<${app.name} xmlns='${escapeAttr(app.xmlns)}'${attrs}/>`;
  }
  return `${s}</stream:error></stream:stream>`;
}

/** The condition of a received `<stream:error>` element, or undefined-condition. */
export function conditionOf(el: { getChildElements(): { name: string; attrs: Record<string, string> }[] }): string {
  for (const c of el.getChildElements()) {
    if (c.attrs.xmlns === NS.streams && c.name !== "text") return c.name;
  }
  return "undefined-condition";
}
