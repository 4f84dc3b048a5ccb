// Package km manages per-customer secrets: cloud API credentials and guest
// SSH keys. It seals them with envelope encryption under rotating master
// keys, keeps them in a de-identified table or behind a key service reached
// over mutual TLS, and makes sure they never reach logs or error messages.
//
// # Threat model
//
// Who holds which key:
//   - The master keys (a key file or an environment variable, see
//     [LoadKeyFile]) are held by whoever runs a [LocalStore]: the key
//     service, or an embedded worker. They seal every credential and key the
//     references that stand for names in the database.
//   - Each worker holds its own client certificate and key, and, only where
//     an intermediary terminates TLS, its own payload key
//     ([DeriveClientPayloadKey]). The key service holds its server
//     certificate and the payload root keys. The private CA's key stays with
//     the operator.
//
// What each attacker can and cannot do:
//   - On the network: sees TLS 1.3 only. Recorded traffic cannot be opened
//     later, even with a worker's or the service's keys (ephemeral key
//     exchange); it cannot be replayed; without a certificate from the
//     pinned CA nobody can pose as the service or as a worker.
//   - At a TLS-terminating intermediary, with the payload layer: sees who
//     talks to whom and the names in the paths, not secrets (sealed per
//     request; responses under an ephemeral X25519 exchange); cannot forge,
//     alter or replay a request (signed for one client, one audience, one
//     nonce stored in the service's database).
//   - With a dump of the database: sees ciphertext, keyed references and
//     timestamps; no customer, account or credential name, no metadata, no
//     secret. Changing rows is detected ([ErrTampered]) but can still
//     destroy them.
//   - With a stolen master key file and the database: can read everything
//     sealed under it. Without the database, nothing. A planted or replaced
//     key file is refused unless it is private and in a place no other user
//     can change; a new current key is logged.
//   - With one compromised worker: can read and write the customers its
//     [Grant] names, and nothing else, until its certificate is revoked
//     ([ServerConfig].Revoked); it can neither pose as the service nor
//     derive another worker's payload key. Every request it makes is in the
//     audit log. (With the payload layer, its own key also opens the bodies of
//     its own past PUT requests if an intermediary recorded them; responses
//     stay closed.)
//   - Not covered: a compromised key service or master key holder, and code
//     running inside the process (Go cannot wipe every copy of a secret:
//     strings, the garbage collector's moves, AES key schedules; this
//     package wipes the buffers it owns).
//
// # Secrets
//
// A [Secret] wraps sensitive bytes and redacts itself everywhere: every fmt
// verb, JSON and text marshalling, and [log/slog] all produce "[REDACTED]".
// It is an opaque handle: its bytes are held by a closure, which reflection
// cannot look into, so reflection-based printers (fmt's %#v of a struct
// holding it in an unexported field, testify's diffs, go-spew) show at most
// a pointer. The bytes come out only through [Secret.Reveal] (a copy the
// caller owns) or [Secret.Use] (a copy wiped when the callback returns), and
// [Secret.Destroy] wipes them. Decoding a Secret from JSON or text is
// refused, since the only thing an encoder ever wrote is the redaction
// marker. A [Credential] prints, logs and marshals its identifiers, metadata
// and field names, never field values.
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
// # Storage
//
// [LocalStore] keeps credentials in the table [TableName] of the
// provisioning database (SQLite or MySQL/MariaDB). The table is created by
// persist's migrations (version 9), its one owner; km creates no table and
// checks the schema instead ([CheckSchema], [ErrSchema]). It is
// de-identified: a row holds
//
//	credential ref = HMAC-SHA256(indexKey, "credential\x00" | customer | account | name)
//	customer ref   = HMAC-SHA256(indexKey, "customer\x00" | customer)
//	info           = envelope of the names, provider, kind, field names and metadata
//	envelope       = envelope of the whole credential
//
// plus the master key id and version, a revision and timestamps, where
// indexKey = HKDF-SHA256(master key, info "stratusworks/km index v1") for
// the master key the row is sealed under. Get finds a row by its credential
// reference (under every key version the keyring holds), List by its
// customer reference, opening only info envelopes; reading checks the
// names in the info against the row's references, so moving envelopes or
// references between rows is detected. Identifiers are compared byte for
// byte: the references are hashes of the exact bytes, and every compared
// column is binary. Identifiers with leading or trailing white space,
// control or invisible formatting characters, or invalid UTF-8 are refused
// ([ErrInvalid]), so "acme " can never be written, and "ACME" is another
// customer that cannot touch acme's row. Writes can be made conditional on
// the revision last read ([ConditionalStore], [ErrConflict]). Rows of the
// clear-text table of persist versions 7 and 8 ([LegacyTableName]) are moved
// on [NewLocalStore] ([LocalStore.MigrateLegacy]).
//
// # Master keys and rotation
//
// Master keys come from a file ([LoadKeyFile]: lines "id:version:key", key
// in hex or base64) or from the environment ([KeyFromEnv]), never from the
// main configuration. A key file must be mode 0600 or stricter, owned by
// the effective user or root, and below no directory (up to /) that another
// user could write or owns, as OpenSSH's StrictModes requires; otherwise
// [ErrInsecureKeyFile] says what to fix. A [Keyring] holds several versions;
// the highest version is current, and which key is current is logged when
// the file is loaded and whenever it changes. To rotate:
//
//  1. Append a new line with a higher version to the key file on every host
//     and restart (or [Keyring.Add]). New seals use it at once; old
//     envelopes still open with the version they record. Hosts that do not
//     yet have the new key do not find rows sealed under it (a miss matching
//     [ErrNotFound] and [ErrUnknownKey]), so distribute the key before
//     writing with it.
//  2. Run [LocalStore.RewrapAll]: each row's data keys are unwrapped with the
//     old master key and wrapped with the new one, in memory, and wiped, and
//     its references recomputed; no secret payload is decrypted.
//  3. When RewrapAll reports no failures or conflicts, remove the old line.
//
// [Keyring.Close] zeroes the keys it holds.
//
// # The key service
//
// [Server] serves a [Store] (normally a [LocalStore]) to [Client]s, as an
// [net/http.Handler] behind [Server.TLSConfig]:
//   - Mutual TLS 1.3 with a private CA that both sides pin ([TLSConfig]).
//     Each worker has its own client certificate; its subject CommonName is
//     its identity. A client certificate must have the client usage and not
//     the server one, the server's the reverse, so the roles cannot be
//     swapped. Certificates are reloaded per handshake
//     ([CertificateFiles]), and a CA bundle may hold the old and the new CA,
//     so certificates and CAs rotate without a flag day. Revoked
//     certificates are refused at the handshake and at every request
//     ([ServerConfig].Revoked, [CRLRevoked]). Plain http is refused on both
//     sides unless a test-only option allows it.
//   - Authorization by client identity: [ServerConfig].Clients says which
//     customers each client may read and write ([Grant]); anything else gets
//     403 ([ErrForbidden]).
//   - An audit log in the service's database ([AuditLog], table
//     [AuditTableName]): who read or wrote which credential, when, from
//     where and how it ended, including refused handshakes; never a secret,
//     and names de-identified as in the credential table. A request is
//     recorded before it is carried out; if it cannot be, it is refused.
//   - The payload layer, optional, for deployments where an intermediary
//     terminates TLS ([ServerConfig].PayloadKeys, [ClientConfig].PayloadKey):
//     see the protocol below. The intermediary connects with its own
//     certificate, whose grant has Relay set.
//
// # Remote protocol (version 2)
//
// Endpoints: PUT, GET and DELETE /v1/credentials/{customer}/{account}/{name}
// and GET /v1/credentials/{customer} (the listing), each identifier
// path-escaped as one segment. PUT and DELETE accept the query
// if_revision=N (a conditional write; N = 0 for "only if absent"). A PUT
// body and a GET response body are the credential codec below; a listing is
// a JSON array of [CredentialInfo]. Responses to GET and PUT carry the
// credential's revision in X-KM-Revision. Errors are a status and a short
// code: 401 "unauthorized" (authentication: certificate, signature,
// timestamp, replay), 403 "forbidden", 404 "not_found", 409 "conflict", 400
// "invalid" or "tampered", 500 "tampered", "wrong_key", "unknown_key" or
// "internal", 503 "unavailable" (for example when the audit log cannot be
// written).
//
// The payload layer. The service holds root keys P by id; client C holds
// only K = HKDF-SHA256(P, salt "", info "stratusworks/km/v2 client\n" + C),
// from which both derive signKey = HKDF(K, info "stratusworks/km/v2 sign")
// and sealRoot = HKDF(K, info "stratusworks/km/v2 seal"). A request carries
// X-KM-Key-ID, X-KM-Client (C), X-KM-Timestamp (Unix seconds), X-KM-Nonce
// (32 random hex digits), X-KM-Ephemeral (the hex X25519 public key of a
// key pair made for this request), X-KM-Content-SHA256 and
//
//	Authorization: KM2-HMAC-SHA256 <hex HMAC-SHA256(signKey, S)>
//	S = "KM2-HMAC-SHA256\n" + key id + "\n" + C + "\n" + audience + "\n" + method + "\n" +
//	    escaped path + "\n" + raw query + "\n" + timestamp + "\n" + nonce + "\n" +
//	    ephemeral + "\n" + hex(SHA-256(body))
//
// where the audience is the service's identity (the DNS name in its
// certificate) and the path is relative to the client's BaseURL. A body is
// 12-byte nonce || AES-256-GCM(HKDF(sealRoot, salt nonce, info
// "stratusworks/km/v2 request"), payload) with additional data "KM2
// request\n" + key id + "\n" + C + "\n" + audience + "\n" + method + "\n" +
// path + "\n" + query + "\n" + timestamp + "\n" + nonce. The service accepts
// a timestamp within MaxSkew of its clock, both bounds inclusive, and a
// nonce only if inserting it into [NonceTableName] succeeds; rows are kept
// until MaxSkew after the last instant their timestamp passes, so a replay
// fails on every replica sharing the database, and after a restart.
// Responses carry X-KM-Ephemeral (the service's own fresh X25519 key) and
// X-KM-Signature = hex HMAC-SHA256(signKey, "KM2 response\n" + audience +
// "\n" + request nonce + "\n" + status + "\n" + ephemeral + "\n" + revision
// + "\n" + hex(SHA-256(body))); a 200's body is sealed like a request's
// under HKDF(sealRoot || X25519(client ephemeral, service ephemeral), salt
// nonce, info "stratusworks/km/v2 response") with additional data "KM2
// response\n" + method + "\n" + path + "\n" + nonce. 401 responses are
// unsigned.
//
// The credential codec: byte 1 (codec version); then the strings customer,
// account, name, provider, kind; a count of metadata entries followed by key
// and value strings; a count of fields followed by name and value strings;
// and the created-at and updated-at times as signed varints of Unix
// nanoseconds (0 = unset). A string is a uvarint length followed by its
// bytes; counts are uvarints; entries are sorted by key.
//
// # Stores
//
// [LocalStore] (above), [Client] (the key service), [Cache] (a TTL cache in
// front of any Store) and [MemoryStore] (tests) implement [Store] and
// [ConditionalStore]. [SSHLogins] turns SSH credentials into guest logins.
//
// # What is never logged
//
// Secret values, master keys, data keys, index keys, payload keys and keys
// derived from them, and private keys never appear in errors, log records,
// audit records or panics from this package, and neither does any text of a
// key file or key environment variable. Errors name credentials by
// customer/account/name (or, where only the database is at hand, by row id)
// and master keys by id and version only. [Server] logs and audits why it
// refused a request (the client gets only "unauthorized" or "forbidden"),
// and [Client] logs method, path, status and duration at debug level.
package km
