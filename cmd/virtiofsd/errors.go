package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// osErrorText formats err the way the reference daemon prints operating
// system errors ("No such file or directory (os error 2)") when err wraps an
// errno, and with err.Error() otherwise.
func osErrorText(err error) string {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	msg := errno.Error()
	if msg != "" && msg[0] >= 'a' && msg[0] <= 'z' {
		msg = string(msg[0]-'a'+'A') + msg[1:]
	}
	return fmt.Sprintf("%s (os error %d)", msg, int(errno))
}
