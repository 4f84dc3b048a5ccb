// Package km manages per-customer secrets: cloud API credentials and guest
// SSH keys. It seals them with envelope encryption under rotating master
// keys, keeps them behind a small [Store] interface (a local database table,
// a remote key manager, a TTL cache), and makes sure they never reach logs
// or error messages.
//
// # Secrets
//
// A [Secret] wraps sensitive bytes and redacts itself everywhere: every fmt
// verb, JSON and text marshalling, and [log/slog] all produce "[REDACTED]".
// The bytes come out only through [Secret.Reveal] (a copy the caller owns)
// or [Secret.Use] (a copy wiped when the callback returns), and
// [Secret.Destroy] wipes them. Decoding a Secret from JSON or text is refused,
// since the only thing an encoder ever wrote is the redaction marker. A
// [Credential] prints, logs and marshals its identifiers, metadata and field
// names, never field values.
//
// # Envelope encryption
//
// [Keyring.Seal] encrypts each payload with a fresh random 256-bit data key
// using AES-256-GCM with a random 12-byte nonce, and wraps the data key with
// the keyring's current master key, also AES-256-GCM. The envelope (format
// version 1, integers big-endian) is
//
//	"KM" | format version (1 byte) | key id length (1) | key id |
//	master key version (4) | key check value (8) |
//	wrapped data key (60: nonce 12 | encrypted key 32 | tag 16) |
//	payload nonce (12) | payload ciphertext with tag
//
// The payload's additional authenticated data is the [Binding] (customer,
// account, credential name), so an envelope moved to another credential's
// row fails to open with [ErrTampered]. The wrapped key's additional data is
// the master key id and version. The key check value, the first 8 bytes of
// HMAC-SHA256(master key, "stratusworks/km key check v1"), tells a wrong
// master key ([ErrWrongKey]: same id and version, different bytes) from a
// modified envelope ([ErrTampered]); it reveals nothing usable about the key.
// An envelope naming a key version the keyring lacks fails with
// [ErrUnknownKey].
//
// # Master keys and rotation
//
// Master keys come from a file ([LoadKeyFile]: lines "id:version:key", key
// in hex or base64; the file must be mode 0600 or stricter, else
// [ErrInsecureKeyFile]) or from the environment ([KeyFromEnv]), never from
// the main configuration. A [Keyring] holds several versions; the highest
// version is current. To rotate:
//
//  1. Append a new line with a higher version to the key file on every host
//     and restart (or [Keyring.Add]). New seals use it at once; old
//     envelopes still open with the version they record. Hosts that do not
//     yet have the new key fail on new envelopes with [ErrUnknownKey], so
//     distribute the key before writing with it.
//  2. Run [LocalStore.RewrapAll]: each row's data key is unwrapped with the
//     old master key and wrapped with the new one, in memory, and wiped; the
//     secret payload is never decrypted ([Keyring.Rewrap]).
//  3. When RewrapAll reports no failures or conflicts, remove the old line.
//
// [Keyring.Close] zeroes the keys it holds.
//
// # Stores
//
// [LocalStore] keeps sealed credentials in the table worker_km_credentials
// of a GORM database (SQLite or MySQL/MariaDB), created by [Migrate] from
// [NewLocalStore]; the provisioning database's versioned migrations may take
// the table over later, with the same columns. [Client] talks to a remote
// key manager and [Server] is the matching [net/http.Handler]: requests are
// signed with HMAC-SHA256 over the method, path, timestamp, nonce and body
// digest under a key derived (HKDF-SHA256) from the shared provisioning key;
// the server rejects bad signatures, stale timestamps and replayed nonces
// with a bare 401; request and response payloads are sealed with AES-256-GCM
// under per-request keys derived from the same provisioning key, so secrets
// never cross the network in the clear, even over plain HTTP. [Cache] adds a
// TTL cache in front of any Store. [MemoryStore] is for tests.
//
// # Remote protocol (version 1)
//
// [Client] and [Server] speak it; other implementations may too.
//
// Keys. Both sides derive two keys from the provisioning key P with
// HKDF-SHA256 and keep only those:
//
//	signKey  = HKDF(P, salt = "", info = "stratusworks/km/v1 sign")
//	sealRoot = HKDF(P, salt = "", info = "stratusworks/km/v1 seal")
//
// and for each request a sealing key bound to its nonce:
//
//	reqKey = HKDF(sealRoot, salt = nonce (its 32 hex characters), info = "stratusworks/km/v1 request")
//
// Endpoints: PUT, GET and DELETE /v1/credentials/{customer}/{account}/{name}
// and GET /v1/credentials/{customer} (the listing), each identifier
// path-escaped as one segment.
//
// Requests. Every request carries X-KM-Timestamp (Unix seconds), X-KM-Nonce
// (32 hex digits, random), optionally X-KM-Content-SHA256 (hex SHA-256 of the
// body), and
//
//	Authorization: KM1-HMAC-SHA256 <hex HMAC-SHA256(signKey, S)>
//	S = "KM1-HMAC-SHA256\n" + method + "\n" + escaped path + "\n" + raw query + "\n" +
//	    timestamp + "\n" + nonce + "\n" + hex(SHA-256(body))
//
// where the path is relative to the client's BaseURL (so mount the server
// with http.StripPrefix when BaseURL has a path). A body is
// 12-byte nonce || AES-256-GCM(reqKey, payload) with additional data
// "KM1 request\n" + method + "\n" + path + "\n" + timestamp + "\n" + nonce.
//
// Responses carry X-KM-Signature = hex HMAC-SHA256(signKey,
// "KM1 response\n" + request nonce + "\n" + status + "\n" + hex(SHA-256(body))),
// which ties the response to its request, and a body of 200 responses is
// sealed like a request body with additional data "KM1 response\n" + method +
// "\n" + path + "\n" + request nonce. Error responses (other than 401) carry
// a short error code in the clear: "not_found" (404), "invalid" (400),
// "tampered", "wrong_key", "unknown_key" or "internal" (500); 401 responses
// are unsigned and say only "unauthorized".
//
// Payloads. A listing is a JSON array of [CredentialInfo]. A credential is
// encoded as: byte 1 (codec version); then the strings customer, account,
// name, provider, kind; a count of metadata entries followed by key and
// value strings; a count of fields followed by name and value strings; and
// the created-at and updated-at times as signed varints of Unix nanoseconds
// (0 = unset). A string is a uvarint length followed by its bytes; counts
// are uvarints; entries are sorted by key.
//
// # What is never logged
//
// Secret values, master keys, data keys, the provisioning key and keys
// derived from it never appear in errors, log records or panics from this
// package, and neither does any text of a key file or key environment
// variable. Errors name credentials by customer/account/name and master keys
// by id and version only. [Server] logs why it rejected a request (to its
// Logger only; the client gets "unauthorized"), and [Client] logs method,
// path, status and duration at debug level.
//
// Go cannot wipe every copy of a secret (strings, the garbage collector's
// moves, AES key schedules); this package wipes the buffers it owns.
package km
