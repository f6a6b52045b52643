-- Prosody 0.12 behind mucmux (example; adapt to your server). mucmux owns the public client ports of the
-- pod and connects to Prosody's client port on loopback, authenticating users with SCRAM.
-- See "Adapting your XMPP server" in mucmux's README.

c2s_interfaces = { "127.0.0.1" }
c2s_ports = { 15222 }
c2s_direct_tls_ports = { }
-- The loopback hop is plaintext: SCRAM needs no TLS, PLAIN stays forbidden.
c2s_require_encryption = false
allow_unencrypted_plain_auth = false

-- The example does not federate; to enable s2s, mount a certificate for Prosody and add port 5269 to the
-- Service, pointing at this container.
modules_disabled = { "s2s" }
http_ports = { }
https_ports = { }

modules_enabled = {
  "roster"; "saslauth"; "disco"; "carbons"; "pep"; "private"; "blocklist"; "vcard4"; "vcard_legacy";
  "version"; "uptime"; "time"; "ping"; "offline"; "mam"; "csi_simple"; "limits";
}

-- mucmux's anchor carries the room traffic of all of an account's devices over one connection: raise
-- the default 10 KB/s per c2s connection.
limits = { c2s = { rate = "1mb/s"; burst = "5s" } }

authentication = "internal_hashed"
storage = "internal"
data_path = "/var/lib/prosody"
pidfile = "/tmp/prosody.pid"
log = { info = "*console" }

VirtualHost "example.test"

Component "conference.example.test" "muc"
  modules_enabled = { "muc_mam" }
