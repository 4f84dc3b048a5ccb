package service

// Secret is the resolved secret of key ("mq.password"), for tests.
func (c *Config) Secret(key string) string { return c.secrets[key] }

// EnvKeys is envKeys, for tests.
func EnvKeys() map[string]string { return envKeys() }
