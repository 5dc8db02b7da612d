package jobfile

import "strings"

// varEnvPrefix starts the environment variables that set job file
// variables: MO_VAR_<name>=value is var.<name>.
const varEnvPrefix = "MO_VAR_"

// VarsFromEnv returns the job file variables set in environ (as
// os.Environ gives it): MO_VAR_<name>=value gives var.<name> = value.
//
// Placeholder until the HCL decoder lands with its own.
func VarsFromEnv(environ []string) map[string]string {
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if name, ok := strings.CutPrefix(k, varEnvPrefix); ok && name != "" {
			vars[name] = v
		}
	}
	return vars
}
