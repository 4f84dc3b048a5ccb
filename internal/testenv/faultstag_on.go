//go:build faults

package testenv

// faultsBuild is true when the test binary was built with -tags faults: only
// then may the controls disrupt the shared services (see [MariaDB]).
const faultsBuild = true
