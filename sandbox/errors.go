package sandbox

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps one of these (or an OS error),
// so callers classify with errors.Is.
var (
	// ErrInvalidSpec classifies every spec validation failure; the concrete error is a
	// *FieldError naming the offending field.
	ErrInvalidSpec = errors.New("sandbox: invalid spec")
	// ErrUnknownField: the spec JSON has a field this version does not know.
	ErrUnknownField = errors.New("sandbox: unknown field")
	// ErrMissingExecutable: the command, script or runtime cannot be found.
	ErrMissingExecutable = errors.New("sandbox: executable not found")
	// ErrPathNotAllowed: the code directory is outside Config.CodeRoots.
	ErrPathNotAllowed = errors.New("sandbox: path outside allowed roots")
	// ErrExists: an instance with this name already exists.
	ErrExists = errors.New("sandbox: instance already exists")
	// ErrNotFound: no instance (or snapshot) with this name.
	ErrNotFound = errors.New("sandbox: not found")
	// ErrRunning: the operation needs a stopped instance.
	ErrRunning = errors.New("sandbox: instance is running")
	// ErrNotRunning: the operation needs a running instance.
	ErrNotRunning = errors.New("sandbox: instance is not running")
	// ErrUnenforceable: a limit was requested that this host cannot enforce (missing
	// cgroup controller, no quota-capable filesystem, non-Linux OS). Limits are never
	// silently ignored.
	ErrUnenforceable = errors.New("sandbox: limit cannot be enforced on this host")
	// ErrNotPermitted: the spec asks for something this node's configuration forbids
	// (host_root without Config.AllowHostRoot).
	ErrNotPermitted = errors.New("sandbox: not permitted on this node")
	// ErrClosed: the runtime was closed.
	ErrClosed = errors.New("sandbox: runtime closed")
	// ErrUnsupported: the operation is not available on this OS.
	ErrUnsupported = errors.New("sandbox: not supported on this platform")
)

// FieldError is a spec error about one field. It wraps ErrInvalidSpec (or a more precise
// sentinel such as ErrUnknownField, ErrMissingExecutable, ErrPathNotAllowed,
// ErrUnenforceable), so both errors.Is(err, ErrInvalidSpec) and errors.As(err, &fe) work.
type FieldError struct {
	Field  string // JSON name of the field, e.g. "ram_mb" or "restart.policy"
	Reason string // human readable
	Err    error  // class: ErrInvalidSpec, ErrUnknownField, ...
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("sandbox: field %q: %s", e.Field, e.Reason)
}

// Unwrap returns the class and ErrInvalidSpec, so errors.Is matches both.
func (e *FieldError) Unwrap() []error {
	if e.Err == nil || e.Err == ErrInvalidSpec {
		return []error{ErrInvalidSpec}
	}
	return []error{e.Err, ErrInvalidSpec}
}

func fieldErr(field string, class error, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Err: class}
}
