package locks

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rads-lang/constellation/internal/httpapi"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("locks: service closed")

// unavailable is the 503 a request gets when no leader with a quorum answers.
func unavailable(format string, args ...any) error {
	return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Msg: "locks: unavailable: " + fmt.Sprintf(format, args...)}
}

// toError turns an FSM refusal into the API error.
func (e *opError) toError(path string) error {
	switch e.Code {
	case "held":
		return &httpapi.Error{Status: http.StatusConflict, Code: "held",
			Msg: fmt.Sprintf("locks: %s is held by %q with token %d until %s at least", path, e.Holder, e.Token, time.Unix(0, e.Until).UTC().Format(time.RFC3339Nano))}
	case "delay":
		return &httpapi.Error{Status: http.StatusConflict, Code: "held",
			Msg: fmt.Sprintf("locks: %s is in its lock-delay after an expired lease until %s", path, time.Unix(0, e.Until).UTC().Format(time.RFC3339Nano))}
	case "not_held":
		if e.Holder == "" {
			return &httpapi.Error{Status: http.StatusConflict, Code: "not_held",
				Msg: fmt.Sprintf("locks: %s is not held by anyone (expired or released); acquire it again", path)}
		}
		return &httpapi.Error{Status: http.StatusConflict, Code: "not_held",
			Msg: fmt.Sprintf("locks: %s is held by %q with token %d, not by the given token", path, e.Holder, e.Token)}
	case "conflict":
		return &httpapi.Error{Status: http.StatusConflict, Code: "conflict",
			Msg: fmt.Sprintf("locks: %s: expected revision %d, current revision is %d", path, e.Want, e.Current)}
	case "stale_token":
		return &httpapi.Error{Status: http.StatusConflict, Code: "stale_token",
			Msg: fmt.Sprintf("locks: %s: fencing token %d is older than token %d already seen", path, e.Want, e.Current)}
	}
	return httpapi.BadRequest("locks: %s: request refused (%s)", path, e.Code)
}

// IsCode reports whether err is an API error with code.
func IsCode(err error, code string) bool {
	var he *httpapi.Error
	return errors.As(err, &he) && he.Code == code
}
