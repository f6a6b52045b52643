// Public surface of the TLS material module.
export { createTlsMaterial, TlsMaterial, type TlsLogger, type TlsMaterialOptions, type ReloadResult } from "./context.js";
export { generateSelfSigned, type SelfSignedOptions } from "./selfsigned.js";
export { TlsError } from "./pair.js";
export { serverNameOf } from "./sni.js";
