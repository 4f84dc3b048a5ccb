package km

// Test hooks for the external test package.

func SetRewrapBatch(s *LocalStore, n int) { s.batch = n }

func SetBeforeRewrapUpdate(s *LocalStore, fn func()) { s.beforeRewrapUpdate = fn }
