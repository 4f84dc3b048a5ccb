package km

import "context"

// Test hooks for the external test package.

func SetRewrapBatch(s *LocalStore, n int) { s.batch = n }

func SetBeforeRewrapUpdate(s *LocalStore, fn func()) { s.beforeRewrapUpdate = fn }

// RowID returns the id of the credential's row (0 if none): the test's way
// to find a row, since the table holds no names.
func RowID(s *LocalStore, customer, account, name string) uint64 {
	rows, _, err := s.find(context.Background(), Binding{customer, account, name}, "id", "key_id", "key_version", "updated_at")
	if err != nil || len(rows) == 0 {
		return 0
	}
	return rows[0].ID
}

// LegacyEnvelope seals c as the legacy table's rows were sealed.
func LegacyEnvelope(kr *Keyring, c Credential) []byte {
	env, err := sealCredential(kr, c)
	if err != nil {
		panic(err)
	}
	return env
}
