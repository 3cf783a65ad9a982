package cli

import (
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Parsers for option values. Each returns the reason printed after
// "invalid value 'X' for '--opt <OPT>': " when the value is rejected; the
// reasons are the reference daemon's.

// Reasons for integer parse failures, as the reference prints them.
const (
	errEmptyInt    = "cannot parse integer from empty string"
	errInvalidInt  = "invalid digit found in string"
	errIntTooLarge = "number too large to fit in target type"
	errIntTooSmall = "number too small to fit in target type"
)

// parseUint parses a decimal unsigned integer no larger than limit with the
// reference's rules: an optional leading '+', then digits only; the first
// offending character or the first overflow decides the reason.
func parseUint(s string, limit uint64) (uint64, string) {
	if s == "" {
		return 0, errEmptyInt
	}
	return parseDigits(strings.TrimPrefix(s, "+"), limit)
}

// parseDigits parses a non-empty run of decimal digits no larger than limit.
func parseDigits(digits string, limit uint64) (uint64, string) {
	if digits == "" {
		return 0, errInvalidInt
	}
	var v uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, errInvalidInt
		}
		d := uint64(c - '0')
		if v > (limit-d)/10 {
			return 0, errIntTooLarge
		}
		v = v*10 + d
	}
	return v, ""
}

// parseInt64 parses a decimal signed 64-bit integer with an optional sign.
func parseInt64(s string) (int64, string) {
	if s == "" {
		return 0, errEmptyInt
	}
	digits, neg := s, false
	switch s[0] {
	case '+':
		digits = s[1:]
	case '-':
		digits, neg = s[1:], true
	}
	if !neg {
		u, reason := parseDigits(digits, math.MaxInt64)
		return int64(u), reason
	}
	u, reason := parseDigits(digits, math.MaxInt64+1)
	if reason == errIntTooLarge {
		reason = errIntTooSmall
	}
	if reason != "" {
		return 0, reason
	}
	return -int64(u-1) - 1, ""
}

// parseFD parses --fd like the reference's 32-bit ranged integer parser.
func parseFD(s string) (int, string) {
	v, reason := parseInt64(s)
	if reason != "" {
		return 0, reason
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Sprintf("%d is not in %d..=%d", v, math.MinInt32, math.MaxInt32)
	}
	return int(v), ""
}

const tagMaxLen = 36

// checkTag checks a --tag value: 1 to 36 bytes of UTF-8.
func checkTag(s string) string {
	if s == "" || len(s) > tagMaxLen {
		return "The tag may not be empty or longer than 36 bytes (encoded as UTF-8)."
	}
	return ""
}

// checkIDMap checks a --uid-map/--gid-map value ":inside:outside:count:",
// where the last character, which must not be alphanumeric, is the
// delimiter and the value must also start with it.
func checkIDMap(s string) string {
	const (
		errDelim = "A delimiter has been found that does not match the delimiter the map started with"
		errCount = "The map is empty or incorrect number of values are provided"
	)
	if s == "" {
		return errCount
	}
	r := []rune(s)
	delim := r[len(r)-1]
	if isAlnum(delim) {
		return errDelim
	}
	d := string(delim)
	inner, ok := strings.CutPrefix(s, d)
	if ok {
		inner, ok = strings.CutSuffix(inner, d)
	}
	if !ok {
		return errDelim
	}
	fields := strings.Split(inner, d)
	if len(fields) != 3 {
		return errCount
	}
	for _, f := range fields {
		if _, reason := parseUint(f, math.MaxUint32); reason != "" {
			return reason
		}
	}
	return ""
}

// translateFields is the number of numbers each --translate-uid/gid type
// takes.
var translateFields = map[string]int{
	"guest":        3,
	"host":         3,
	"squash-guest": 3,
	"squash-host":  3,
	"forbid-guest": 2,
	"map":          3,
}

// checkTranslation checks a --translate-uid/--translate-gid value: a type
// name made of letters, digits, '-' and '_', a separator character, and
// numbers separated by that character.
func checkTranslation(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return !isAlnum(r) && r != '-' && r != '_' })
	if i < 0 {
		return "Invalid ID map length (expected 1 elements, got 0 elements)"
	}
	typ := s[:i]
	_, size := utf8.DecodeRuneInString(s[i:])
	sep, rest := s[i:i+size], s[i+size:]
	n, ok := translateFields[strings.ToLower(typ)]
	if !ok {
		return "Invalid ID map prefix " + typ
	}
	fields := strings.Split(rest, sep)
	for _, f := range fields {
		if _, reason := parseUint(f, math.MaxUint32); reason != "" {
			return fmt.Sprintf("Invalid value %s in ID map: %s", f, reason)
		}
	}
	if len(fields) != n {
		return fmt.Sprintf("Invalid ID map length (expected %d elements, got %d elements)", n, len(fields))
	}
	return ""
}

// isAlnum is Rust's char::is_alphanumeric.
func isAlnum(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Other_Alphabetic, r)
}
