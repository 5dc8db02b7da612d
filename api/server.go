package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxBodyBytes is the largest request body any endpoint accepts.
const MaxBodyBytes = 1 << 20

// WriteJSON writes v as a JSON answer with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError writes the JSON error body {"error": msg} with the given status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, Error{Error: msg})
}

// DecodeJSON reads a JSON request body of at most MaxBodyBytes into v,
// refusing unknown fields and trailing data. On failure it returns the HTTP
// status to answer with (400 or 413) and a readable error.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", MaxBodyBytes)
		case errors.Is(err, io.EOF):
			return http.StatusBadRequest, errors.New("request body is empty; expected a JSON object")
		case errors.As(err, &syn):
			return http.StatusBadRequest, fmt.Errorf("malformed JSON at byte %d: %v", syn.Offset, err)
		case errors.As(err, &typ):
			return http.StatusBadRequest, fmt.Errorf("field %q must be of type %s, not %s", jsonPath(typ.Field), typ.Type, typ.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return http.StatusBadRequest, fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return http.StatusBadRequest, fmt.Errorf("invalid JSON body: %v", err)
		}
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", MaxBodyBytes)
		}
		return http.StatusBadRequest, errors.New("invalid JSON body: trailing data after the object")
	}
	return 0, nil
}

// jsonPath drops from a decoding error's field path the Go names of
// embedded structs (such as Spec in a SubmitRequest), which a client never
// wrote: every JSON name of the API is lower case.
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	kept := parts[:0]
	for _, p := range parts {
		if r, _ := utf8.DecodeRuneInString(p); !unicode.IsUpper(r) {
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		return field
	}
	return strings.Join(kept, ".")
}

// RequireToken wraps h so that every request must carry
// "Authorization: Bearer TOKEN", compared in constant time. An empty token
// (insecure mode) lets every request through.
func RequireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="micro-orchestrator"`)
			WriteError(w, http.StatusUnauthorized, "missing or wrong cluster token")
			return
		}
		h.ServeHTTP(w, r)
	})
}
